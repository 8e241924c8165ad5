// Unit tests of the explorer's page-free logic (run by tests/ui/test_frontend.py).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { queryString } from '../../../src/engramdb/adapters/ui/static/api.mjs';
import {
  busiestDomain, canEdit, describeEvent, diffNodes, domainColor, eventMemory, formatTime, fromFragment,
  graphElements, label, newElements, parseFilters, parseTime, pickNamespace, provenanceFields, signalRows,
  windowStart,
} from '../../../src/engramdb/adapters/ui/static/logic.mjs';

test('times parse from microseconds and from ISO strings alike', () => {
  const iso = '2024-03-20T10:00:00+00:00';
  const fromUs = parseTime(Date.parse(iso) * 1000);
  assert.equal(fromUs.toISOString(), '2024-03-20T10:00:00.000Z');
  assert.equal(parseTime(iso).getTime(), fromUs.getTime());
  assert.equal(parseTime(String(Date.parse(iso) * 1000)).getTime(), fromUs.getTime());
  assert.equal(parseTime(null), null);
  assert.equal(parseTime('not a time'), null);
  assert.equal(formatTime(iso), '2024-03-20 10:00:00 UTC');
  assert.equal(formatTime(undefined), '');
});

test('a diff lists changed fields and attributes, nothing else', () => {
  const v1 = { text: 'Maya lives in Berlin', name: 'Maya', domain: 'people', kind: 'entity', attrs: { city: 'Berlin', since: 2020 } };
  const v2 = { ...v1, text: 'Maya lives in Lisbon', attrs: { city: 'Lisbon', team: 'infra' } };
  assert.deepEqual(diffNodes(v1, v2), [
    { field: 'text', before: 'Maya lives in Berlin', after: 'Maya lives in Lisbon' },
    { field: 'attrs.city', before: 'Berlin', after: 'Lisbon' },
    { field: 'attrs.since', before: 2020, after: null },
    { field: 'attrs.team', before: null, after: 'infra' },
  ]);
  assert.deepEqual(diffNodes(v2, v2), []);
  const first = diffNodes(null, v1).map((c) => c.field);
  assert.deepEqual(first, ['text', 'name', 'domain', 'kind', 'attrs.city', 'attrs.since']);
});

test('graph elements mark bridges, supersession and the selected node', () => {
  const graph = {
    nodes: [
      { id: 'a', name: 'Maya', text: 'Maya lives in Lisbon', domain: 'people', kind: 'entity' },
      { id: 'b', name: null, text: 'x'.repeat(40), domain: 'companies', kind: 'memory' },
    ],
    edges: [
      { src: 'a', rel: 'works_at', dst: 'b', bridge: true },
      { src: 'b', rel: 'supersedes', dst: 'b', bridge: false },
    ],
  };
  const els = graphElements(graph, { selected: 'a' });
  const byId = Object.fromEntries(els.map((e) => [e.data.id, e]));
  assert.equal(byId.a.classes, 'entity selected');
  assert.equal(byId.b.data.label.length, 28);
  assert.equal(byId['a|works_at|b'].classes, 'bridge');
  assert.equal(byId['a|works_at|b'].data.source, 'a');
  assert.equal(byId['b|supersedes|b'].classes, 'supersedes');
  assert.notEqual(byId.a.data.color, byId.b.data.color);
  assert.equal(domainColor('people'), domainColor('people'));
  const added = newElements(new Set(['a', 'a|works_at|b']), els);
  assert.deepEqual(added.map((e) => e.data.id), ['b', 'b|supersedes|b']);
});

test('signals are listed strongest rank first with their numbers', () => {
  const rows = signalRows({ signals: { text: { rank: 2, score: 3.5 }, vector: { rank: 1, score: 0.8123 }, recency: { score: 0.01 } } });
  assert.deepEqual(rows.map((r) => r.name), ['vector', 'text', 'recency']);
  assert.equal(rows[0].parts, 'rank 1 · score 0.812');
  assert.deepEqual(signalRows({}), []);
});

test('events are described and point at the memory they concern', () => {
  const names = { m1: 'Maya', m2: 'Old Maya' };
  const created = { type: 'node.created', stream: 'm1', payload: { text: 'Maya lives in Berlin', name: 'Maya' } };
  assert.deepEqual(describeEvent(created, names), { kind: 'created', text: 'created Maya' });
  const updated = { type: 'node.updated', stream: 'm1', payload: { text: 'Maya lives in Lisbon', attrs: { city: 'Lisbon' } } };
  assert.equal(describeEvent(updated, names).text, 'updated Maya (text, attrs.city): Maya lives in Lisbon');
  const sup = { type: 'edge.added', stream: 'edge:1', payload: { src: 'm1', rel: 'supersedes', dst: 'm2' } };
  assert.equal(describeEvent(sup, names).kind, 'superseded');
  assert.equal(eventMemory(sup), 'm1');
  const tier = { type: 'tier.changed', stream: 'tier:m1', payload: { memory_id: 'm1', from_tier: 'short_term', to_tier: 'long_term', reason: 'salient' } };
  assert.equal(describeEvent(tier, names).kind, 'tier');
  assert.equal(eventMemory(tier), 'm1');
  const forgot = { type: 'node.forgotten', stream: 'a-very-long-memory-id-0123456789', payload: {} };
  assert.equal(describeEvent(forgot, names).text, 'forgot …23456789');
  assert.equal(eventMemory({ type: 'vectors.model_activated', stream: 'x', payload: {} }), null);
});

test('filters parse from key=value text, repeated keys become lists', () => {
  assert.deepEqual(parseFilters('kind=entity, attrs.city=Lisbon, attrs.n=3, attrs.ok=true, kind=memory'),
    { kind: ['entity', 'memory'], 'attrs.city': 'Lisbon', 'attrs.n': 3, 'attrs.ok': true });
  assert.equal(parseFilters('  '), null);
  assert.throws(() => parseFilters('city'), /not key=value/);
});

test('the token decides edit controls and the namespace opened', () => {
  assert.equal(canEdit({ scope: 'write', namespaces: '*' }, 'x'), true);
  assert.equal(canEdit({ scope: 'write', namespaces: ['a'] }, 'a'), true);
  assert.equal(canEdit({ scope: 'write', namespaces: ['a'] }, 'b'), false);
  assert.equal(canEdit({ scope: 'read', namespaces: '*' }, 'a'), false);
  assert.equal(canEdit(null, 'a'), false);
  assert.equal(pickNamespace('demo', { namespaces: ['a'] }), 'demo');
  assert.equal(pickNamespace(null, { namespaces: ['a', 'b'] }), 'a');
  assert.equal(pickNamespace(null, { namespaces: '*' }), 'default');
  assert.deepEqual(fromFragment('#token=eng_abc&ns=demo'), { token: 'eng_abc', ns: 'demo' });
  assert.deepEqual(fromFragment(''), { token: null, ns: null });
});

test('small helpers: labels, provenance fields, windows, query strings, first domain', () => {
  assert.equal(label({ name: null, text: 'short' }), 'short');
  assert.deepEqual(provenanceFields({ text: 't', name: null, domain: 'd', kind: 'memory', attrs: { b: 1, a: 2 } }),
    ['text', 'domain', 'kind', 'attrs.a', 'attrs.b']);
  assert.equal(windowStart(60, '50'), 10);
  assert.equal(windowStart(20, '50'), 0);
  assert.equal(windowStart(60, 'all'), 0);
  assert.equal(queryString({ a: 1, b: null, c: ['x', 'y'], d: '' }), '?a=1&c=x&c=y');
  assert.equal(queryString({}), '');
  const domains = [{ domain: 'chat', count: 40 }, { domain: 'people', count: 2 }, { domain: 'projects', count: 1 }];
  const bridges = [{ src_domain: 'people', dst_domain: 'projects' }, { src_domain: 'people', dst_domain: 'chat' }];
  assert.equal(busiestDomain(bridges, domains), 'people');
  assert.equal(busiestDomain([], domains), 'chat');
  assert.equal(busiestDomain([], []), null);
});
