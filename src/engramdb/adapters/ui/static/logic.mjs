// The explorer's logic that touches no page: times, diffs, graph elements, event
// labels. Pure functions, tested by tests/ui/js/logic.test.mjs (node --test).

/** A time from the API as a Date: microseconds since the epoch (a number) or an
 * ISO-8601 string; null for null/undefined. Invalid input gives null. */
export function parseTime(value) {
  if (value === null || value === undefined || value === '') return null;
  if (typeof value === 'number') return Number.isFinite(value) ? new Date(value / 1000) : null;
  if (typeof value === 'string') {
    if (/^-?\d+$/.test(value)) return new Date(Number(value) / 1000);
    const date = new Date(value);
    return Number.isNaN(date.getTime()) ? null : date;
  }
  return null;
}

/** "2024-03-20 10:00:00 UTC", or "" when there is no time. */
export function formatTime(value) {
  const date = value instanceof Date ? value : parseTime(value);
  if (date === null) return '';
  return date.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC').replace(/Z$/, ' UTC');
}

/** A short label for a memory: its name, else the start of its text. */
export function label(node, max = 28) {
  if (!node) return '';
  const text = node.name || node.text || node.id || '';
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

const FIELDS = ['text', 'name', 'domain', 'kind', 'valid_from', 'valid_to'];

function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** What changed from memory state `before` to `after`: [{field, before, after}], top
 * fields first, then attributes (`attrs.<key>`) in key order. `before` null: all set. */
export function diffNodes(before, after) {
  const changes = [];
  const a = before || {};
  const b = after || {};
  for (const field of FIELDS) {
    const was = a[field] ?? null;
    const now = b[field] ?? null;
    if (!same(was, now)) changes.push({ field, before: was, after: now });
  }
  const attrsA = a.attrs || {};
  const attrsB = b.attrs || {};
  const keys = [...new Set([...Object.keys(attrsA), ...Object.keys(attrsB)])].sort();
  for (const key of keys) {
    const was = key in attrsA ? attrsA[key] : null;
    const now = key in attrsB ? attrsB[key] : null;
    if (!same(was, now)) changes.push({ field: `attrs.${key}`, before: was, after: now });
  }
  return changes;
}

/** The fields of a memory whose provenance can be asked for (those with a value). */
export function provenanceFields(node) {
  const fields = ['text', 'name', 'domain', 'kind'].filter((f) => node[f] !== null && node[f] !== undefined);
  return fields.concat(Object.keys(node.attrs || {}).sort().map((k) => `attrs.${k}`));
}

/** A stable colour per domain (same domain, same colour, on every page). */
export function domainColor(domain) {
  if (!domain) return 'hsl(0, 0%, 62%)';
  let hash = 0;
  for (const ch of domain) hash = (hash * 31 + ch.codePointAt(0)) % 360;
  return `hsl(${hash}, 62%, 46%)`;
}

/** cytoscape elements for a /graph answer: nodes coloured by domain, bridges and
 * supersession edges classed so the stylesheet can set them apart. */
export function graphElements(graph, { selected = null } = {}) {
  const nodes = graph.nodes.map((n) => ({
    group: 'nodes',
    data: { id: n.id, label: label(n), domain: n.domain || '', kind: n.kind, color: domainColor(n.domain) },
    classes: [n.kind === 'entity' ? 'entity' : 'memory', n.id === selected ? 'selected' : ''].filter(Boolean).join(' '),
  }));
  const edges = graph.edges.map((e) => ({
    group: 'edges',
    data: { id: `${e.src}|${e.rel}|${e.dst}`, source: e.src, target: e.dst, label: e.rel },
    classes: [e.bridge ? 'bridge' : '', e.rel === 'supersedes' ? 'supersedes' : ''].filter(Boolean).join(' '),
  }));
  return nodes.concat(edges);
}

/** Elements of `more` not already among `present` (ids): what expanding adds. */
export function newElements(present, more) {
  return more.filter((el) => !present.has(el.data.id));
}

/** Each signal that found a recall hit, strongest first: [{name, parts}] where parts
 * is "rank 1 · score 0.83" style text. */
export function signalRows(hit) {
  const rows = Object.entries(hit.signals || {}).map(([name, detail]) => {
    const parts = Object.entries(detail).map(([key, value]) => `${key} ${formatNumber(value)}`);
    return { name, parts: parts.join(' · '), rank: detail.rank ?? Infinity };
  });
  rows.sort((x, y) => x.rank - y.rank || x.name.localeCompare(y.name));
  return rows.map(({ name, parts }) => ({ name, parts }));
}

export function formatNumber(value) {
  if (typeof value !== 'number') return String(value);
  if (Number.isInteger(value)) return String(value);
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(3);
}

/** The memory an event is about (to select it when the event is clicked), or null. */
export function eventMemory(event) {
  const p = event.payload || {};
  if (event.type === 'tier.changed' || event.type === 'outcome.recorded') return p.memory_id || null;
  if (event.type === 'edge.added' || event.type === 'edge.removed') return p.src || null;
  if (event.type.startsWith('node.') || event.type === 'event.redacted') return event.stream;
  return null;
}

/** An id cut to its last 8 characters (ids share their time-ordered prefix). */
export function shortId(id) {
  return id && id.length > 12 ? `…${id.slice(-8)}` : id;
}

/** What an event did, in words: {kind, text}. `names` maps ids to labels. kind is
 * one of created, updated, superseded, forgotten, tier, related, unrelated, outcome,
 * redacted (for styling and tests). */
export function describeEvent(event, names = {}) {
  const p = event.payload || {};
  const name = (id) => names[id] || shortId(id);
  switch (event.type) {
    case 'node.created':
      return { kind: 'created', text: `created ${label({ name: p.name, text: p.text, id: event.stream }, 60)}` };
    case 'node.updated': {
      const set = Object.keys(p).filter((k) => !['attrs', 'unset', 'reopen'].includes(k));
      const attrs = Object.keys(p.attrs || {}).map((k) => `attrs.${k}`);
      const fields = set.concat(attrs, (p.unset || []).map((k) => `-attrs.${k}`));
      if (p.reopen) fields.push('reopened');
      const what = p.text !== undefined ? `: ${label({ text: p.text }, 60)}` : '';
      const shown = fields.length ? fields.join(', ') : 'validity';
      return { kind: 'updated', text: `updated ${name(event.stream)} (${shown})${what}` };
    }
    case 'node.forgotten':
      return { kind: 'forgotten', text: `forgot ${name(event.stream)}${p.reason ? ` (${p.reason})` : ''}` };
    case 'edge.added':
      if (p.rel === 'supersedes') return { kind: 'superseded', text: `${name(p.src)} superseded ${name(p.dst)}` };
      return { kind: 'related', text: `${name(p.src)} —${p.rel}→ ${name(p.dst)}` };
    case 'edge.removed':
      return { kind: 'unrelated', text: `removed ${name(p.src)} —${p.rel}→ ${name(p.dst)}` };
    case 'tier.changed':
      return { kind: 'tier', text: `${name(p.memory_id)}: ${p.from_tier} → ${p.to_tier} (${p.reason})` };
    case 'outcome.recorded':
      return { kind: 'outcome', text: `outcome ${p.outcome} for ${name(p.memory_id)}` };
    case 'event.redacted':
      return { kind: 'redacted', text: `redacted (was ${p.was || 'an event'}) of ${name(event.stream)}` };
    default:
      return { kind: 'other', text: event.type };
  }
}

/** "key=value, key2=value2" as a recall filters object (numbers and true/false as
 * such); empty text gives null. Throws Error on a piece without "=". */
export function parseFilters(text) {
  const out = {};
  for (const piece of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const at = piece.indexOf('=');
    if (at <= 0) throw new Error(`filter "${piece}" is not key=value`);
    const key = piece.slice(0, at).trim();
    const raw = piece.slice(at + 1).trim();
    let value = raw;
    if (raw === 'true' || raw === 'false') value = raw === 'true';
    else if (/^-?\d+(\.\d+)?$/.test(raw)) value = Number(raw);
    if (key in out) out[key] = [].concat(out[key], value);
    else out[key] = value;
  }
  return Object.keys(out).length ? out : null;
}

/** The explorer's token, namespace and the rest from the address's fragment
 * (`engram ui` passes them there: browsers never send a fragment to the server). */
export function fromFragment(hash) {
  const params = new URLSearchParams((hash || '').replace(/^#/, ''));
  return { token: params.get('token'), ns: params.get('ns') };
}

/** Whether a /v1/whoami answer allows edits in namespace `ns`. */
export function canEdit(who, ns) {
  if (!who || who.scope !== 'write') return false;
  return who.namespaces === '*' || (Array.isArray(who.namespaces) && who.namespaces.includes(ns));
}

/** The namespace to open: the one asked for, else the token's only one, else "default". */
export function pickNamespace(asked, who) {
  if (asked) return asked;
  if (who && Array.isArray(who.namespaces) && who.namespaces.length) return who.namespaces[0];
  return 'default';
}

/** The events window that ends at `seq` and is `width` seqs wide ("all": from 0). */
export function windowStart(seq, width) {
  if (width === 'all') return 0;
  return Math.max(0, seq - Number(width));
}

/** The domain to show first: the one most cross-domain bridges touch, else the
 * biggest; null when there are no domains. */
export function busiestDomain(bridges, domains) {
  const touches = new Map();
  for (const b of bridges) {
    for (const d of [b.src_domain, b.dst_domain]) touches.set(d, (touches.get(d) || 0) + 1);
  }
  let best = null;
  for (const { domain, count } of domains) {
    const score = [touches.get(domain) || 0, count];
    if (best === null || score[0] > best.score[0] || (score[0] === best.score[0] && score[1] > best.score[1])) {
      best = { domain, score };
    }
  }
  return best === null ? null : best.domain;
}
