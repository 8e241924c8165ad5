// The explorer page: wires the panels to the HTTP API. Logic that needs no page
// lives in logic.mjs (unit-tested); every call goes through api.mjs.
import cytoscape from './vendor/cytoscape.esm.min.mjs';
import { Api, ApiError } from './api.mjs';
import {
  busiestDomain, canEdit, describeEvent, diffNodes, eventMemory, formatTime, fromFragment, graphElements, label,
  newElements, parseFilters, parseTime, pickNamespace, provenanceFields, signalRows, windowStart,
} from './logic.mjs';

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = 'engram.token';
const FAR = 2 ** 62; // a seq past any head: an empty window that still reports the head
const RECENT = 20000; // seqs looked back through for the last event and consolidation moves
const NS_KEY = 'engram.namespace';

/** An element with attributes and children (text is always set as text, never HTML). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const state = {
  api: null, who: null, editable: false,
  head: 0, first: 0, firstTime: null, headTime: null,
  point: null, // null: now (the head); else a seq
  selected: null, graphMode: { domain: null, center: null }, names: {},
  cy: null, lastQuery: null, draws: 0,
};

function setStatus(text, isError = false) {
  const status = $('status');
  status.textContent = text;
  status.classList.toggle('error', isError);
}

function fail(err) {
  const text = err instanceof ApiError ? `${err.code}: ${err.message}` : String(err.message || err);
  setStatus(text, true);
  return null;
}

const asOf = () => (state.point === null ? undefined : state.point);
const POINT = () => state.point;
const SELECTED = () => state.selected;
const GRAPH = () => state.graphMode;

/** A check that what a drawing depends on (the given getters) has not changed since it
 * started: answers arriving after a newer move of the slider are dropped, not drawn. */
function still(...getters) {
  const key = JSON.stringify(getters.map((get) => get()));
  return () => JSON.stringify(getters.map((get) => get())) === key;
}

// -- signing in ---------------------------------------------------------------

async function start() {
  const { token, ns } = fromFragment(window.location.hash);
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  if (ns) sessionStorage.setItem(NS_KEY, ns);
  if (token || ns) history.replaceState(null, '', window.location.pathname + window.location.search);
  $('login-form').addEventListener('submit', (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $('token').value.trim());
    signIn();
  });
  $('signout').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    window.location.reload();
  });
  await signIn();
}

async function signIn() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const api = new Api({ token });
  try {
    state.who = await api.whoami();
  } catch (err) {
    $('app').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = token && err instanceof ApiError
      ? `Refused: ${err.message} (${err.code})` : (token ? String(err.message) : '');
    return;
  }
  $('login').hidden = true;
  $('app').hidden = false;
  $('signout').hidden = !state.who.auth;
  const ns = pickNamespace(sessionStorage.getItem(NS_KEY) || new URLSearchParams(location.search).get('ns'), state.who);
  api.namespace = ns;
  state.api = api;
  $('ns').value = ns;
  wire();
  await openNamespace();
}

function showGrant() {
  const who = state.who;
  const badge = $('who');
  state.editable = canEdit(who, state.api.namespace);
  badge.textContent = who.auth ? `${who.scope} token ${who.label ? `“${who.label}”` : who.id}` : 'no auth (loopback)';
  badge.className = `badge ${state.editable ? 'write' : 'read'}`;
  if (!state.editable) {
    // A read-only token gets no edit controls at all (the server would refuse them).
    for (const node of document.querySelectorAll('[data-edit]')) node.remove();
  }
}

// -- the namespace and its timeline --------------------------------------------

let wired = false;
function wire() {
  if (wired) return;
  wired = true;
  $('ns-form').addEventListener('submit', (event) => {
    event.preventDefault();
    state.api.namespace = $('ns').value.trim() || 'default';
    sessionStorage.setItem(NS_KEY, state.api.namespace);
    window.location.reload();
  });
  $('recall-form').addEventListener('submit', (event) => { event.preventDefault(); runRecall(); });
  $('graph-domain').addEventListener('change', () => {
    state.graphMode = { domain: $('graph-domain').value, center: null };
    drawGraph();
  });
  $('show-around').addEventListener('click', () => {
    if (!state.selected) return setStatus('select a memory first', true);
    state.graphMode = { domain: null, center: state.selected };
    return drawGraph();
  });
  $('depth').addEventListener('change', () => state.graphMode.center && drawGraph());
  let timer = null;
  $('slider').addEventListener('input', () => {
    clearTimeout(timer);
    showPoint();
    timer = setTimeout(moveTo, 120);
  });
  for (const radio of document.querySelectorAll('input[name=tmode]')) radio.addEventListener('change', setupSlider);
  $('to-now').addEventListener('click', () => { state.point = null; setupSlider(); refresh(); });
  $('window').addEventListener('change', drawEvents);
  const on = (id, type, fn) => { if ($(id)) $(id).addEventListener(type, fn); };
  on('remember-form', 'submit', doRemember);
  on('update-form', 'submit', doUpdate);
  on('relate-form', 'submit', doRelate);
  on('forget', 'click', askForget);
  on('confirm', 'close', () => $('confirm').returnValue === 'forget' && doForget());
}

async function openNamespace() {
  showGrant();
  setStatus('');
  await loadBounds();
  setupSlider();
  const domains = await state.api.domains().catch(fail);
  const list = domains ? domains.items.map((d) => d.domain) : [];
  const pick = $('graph-domain');
  pick.replaceChildren(...list.map((d) => el('option', { value: d }, d)));
  $('recall-domain').replaceChildren(el('option', { value: '' }, 'any'), ...list.map((d) => el('option', { value: d }, d)));
  if (list.length) {
    const bridges = await state.api.bridges().catch(() => null);
    const first = busiestDomain(bridges ? bridges.items : [], domains.items);
    state.graphMode = { domain: first, center: null };
    pick.value = first;
  }
  await refresh();
}

/** The namespace's first and last events: the slider's ends. */
async function loadBounds() {
  // Every read is bounded: the head from an empty window past it, the last event from
  // a recent window (a big store's log is never scanned whole on a page load).
  const probe = await state.api.timeline({ after: FAR, limit: 1 }).catch(fail);
  state.head = probe ? probe.seq : 0;
  const [first, last] = await Promise.all([
    state.api.timeline({ limit: 1 }).catch(fail),
    state.api.timeline({ limit: 1, newest: true, after: windowStart(state.head, RECENT) }).catch(fail),
  ]);
  state.first = first && first.items.length ? Math.max(0, first.items[0].seq - 1) : 0;
  state.firstTime = first && first.items.length ? parseTime(first.items[0].recorded_at) : null;
  state.headTime = last && last.items.length ? parseTime(last.items[0].recorded_at) : new Date();
}

const mode = () => document.querySelector('input[name=tmode]:checked').value;

function setupSlider() {
  const slider = $('slider');
  if (mode() === 'seq' || !state.firstTime) {
    slider.min = state.first;
    slider.max = state.head;
    slider.step = 1;
    slider.value = state.point === null ? state.head : state.point;
  } else {
    slider.min = state.firstTime.getTime() - 1000;
    slider.max = state.headTime.getTime();
    slider.step = 1000;
    slider.value = slider.max;
  }
  showPoint();
}

function showPoint(seq = null) {
  const slider = $('slider');
  const atEnd = Number(slider.value) >= Number(slider.max);
  const text = mode() === 'seq' || !state.firstTime
    ? `seq ${slider.value}`
    : `${formatTime(new Date(Number(slider.value)))}${seq === null ? '' : ` (seq ${seq})`}`;
  $('point').textContent = atEnd ? `${text} · now` : `${text} · as of then`;
  $('point').classList.toggle('past', !atEnd);
}

/** The slider moved: resolve the point to a seq, then re-render everything as of it. */
async function moveTo() {
  const slider = $('slider');
  if (Number(slider.value) >= Number(slider.max)) {
    state.point = null;
  } else if (mode() === 'seq' || !state.firstTime) {
    state.point = Number(slider.value);
  } else {
    const at = new Date(Number(slider.value)).toISOString();
    const fresh = still(() => slider.value);
    const found = await state.api.timeline({ as_of: at, limit: 1, newest: true }).catch(fail);
    if (!found || !fresh()) return;
    state.point = found.seq;
    showPoint(found.seq);
  }
  await refresh();
}

function jumpTo(seq) {
  state.point = seq >= state.head ? null : seq;
  if (mode() !== 'seq') document.querySelector('input[name=tmode][value=seq]').checked = true;
  setupSlider();
  return refresh();
}

async function refresh() {
  await drawGraph(); // first: it names the nodes the events and moves mention
  await Promise.all([drawEvents(), drawSelected(), drawSide(), state.lastQuery ? runRecall() : null]);
}

async function drawEvents() {
  const upto = state.point === null ? state.head : state.point;
  const fresh = still(POINT, () => $('window').value);
  const found = await state.api.timeline({
    as_of: asOf(), after: windowStart(upto, $('window').value), newest: true, limit: 200,
  }).catch(fail);
  if (!found || !fresh()) return;
  const items = found.items.slice().reverse();
  for (const e of found.items) {
    if (e.type === 'node.created' && !state.names[e.stream]) state.names[e.stream] = label({ ...e.payload, id: e.stream });
  }
  $('events').replaceChildren(...(items.length ? items.map(eventItem)
    : [el('li', { class: 'muted' }, 'No events in this window.')]));
}

function eventItem(event) {
  const { kind, text } = describeEvent(event, state.names);
  const target = eventMemory(event);
  return el('li', {
    class: `ev-${kind}`, dataset: { seq: event.seq, type: event.type },
    onclick: async () => { if (target) state.selected = target; await jumpTo(event.seq); },
  }, el('span', { class: 'seq' }, `#${event.seq}`), el('span', { class: 'when' }, formatTime(event.recorded_at)),
  el('span', {}, text));
}

// -- graph ----------------------------------------------------------------------

const STYLE = [
  { selector: 'node', style: { 'background-color': 'data(color)', label: 'data(label)', 'font-size': 10, color: '#1d2430', 'text-valign': 'bottom', 'text-margin-y': 3, width: 18, height: 18 } },
  { selector: 'node.entity', style: { shape: 'round-rectangle', width: 26, height: 20 } },
  { selector: 'node.selected', style: { 'border-width': 3, 'border-color': '#2f6fdf' } },
  { selector: 'edge', style: { width: 1.5, 'line-color': '#b6bdca', 'target-arrow-color': '#b6bdca', 'target-arrow-shape': 'triangle', 'curve-style': 'bezier', label: 'data(label)', 'font-size': 9, color: '#4a5263', 'text-rotation': 'autorotate', 'text-background-color': '#fbfcfe', 'text-background-opacity': 0.9, 'text-background-padding': 1 } },
  { selector: 'edge.bridge', style: { width: 3, 'line-color': '#e0532f', 'target-arrow-color': '#e0532f', 'line-style': 'dashed', color: '#b8401f' } },
  { selector: 'edge.supersedes', style: { 'line-color': '#7b1fa2', 'target-arrow-color': '#7b1fa2', 'line-style': 'dotted' } },
];

function layout() {
  return { name: 'cose', animate: false, padding: 20, nodeRepulsion: () => 9000, idealEdgeLength: () => 70 };
}

async function drawGraph() {
  const { domain, center } = state.graphMode;
  if (!domain && !center) return;
  const params = center ? { center, depth: $('depth').value } : { domain };
  const fresh = still(POINT, GRAPH, () => $('depth').value);
  const graph = await state.api.graph({ ...params, as_of: asOf(), limit: 150 }).catch((err) => {
    if (err instanceof ApiError && err.status === 404) return { nodes: [], edges: [], seq: state.point, truncated: false };
    return fail(err);
  });
  if (!graph || !fresh()) return;
  for (const n of graph.nodes) state.names[n.id] = label(n);
  const elements = graphElements(graph, { selected: state.selected });
  if (!state.cy) {
    state.cy = cytoscape({ container: $('graph'), elements, style: STYLE, layout: layout(), maxZoom: 1.6, minZoom: 0.2 });
    state.cy.on('tap', 'node', (event) => select(event.target.id()));
    state.cy.on('dbltap', 'node', (event) => expand(event.target.id()));
  } else {
    state.cy.elements().remove();
    state.cy.add(elements);
    state.cy.layout(layout()).run();
  }
  const bridges = graph.edges.filter((e) => e.bridge).length;
  $('graph-info').textContent = `${graph.nodes.length} nodes, ${graph.edges.length} edges, ${bridges} bridges`
    + `${graph.truncated ? ' (more in reach: narrow it)' : ''}${center ? '' : ` · domain ${domain}`}`;
  $('graph').dataset.nodes = graph.nodes.map((n) => n.id).join(' ');
  state.draws += 1; // tests wait for a new drawing before clicking on the canvas
}

async function expand(id) {
  const graph = await state.api.graph({ center: id, depth: 1, as_of: asOf(), limit: 60 }).catch(fail);
  if (!graph) return;
  for (const n of graph.nodes) state.names[n.id] = label(n);
  const present = new Set(state.cy.elements().map((e) => e.id()));
  const added = newElements(present, graphElements(graph, { selected: state.selected }));
  state.cy.add(added);
  state.cy.layout(layout()).run();
  setStatus(`expanded ${label(graph.nodes.find((n) => n.id === id))}: ${added.length} new elements`);
}

function markSelected() {
  if (!state.cy) return;
  state.cy.nodes().removeClass('selected');
  if (state.selected) state.cy.getElementById(state.selected).addClass('selected');
}

// -- the selected memory ----------------------------------------------------------

async function select(id) {
  state.selected = id;
  markSelected();
  await drawSelected();
}

async function drawSelected() {
  const id = state.selected;
  const box = $('detail');
  const editBox = $('edit-selected');
  if (!id) return;
  const fresh = still(POINT, SELECTED);
  let node;
  try {
    node = await state.api.memory(id, asOf());
  } catch (err) {
    if (!fresh()) return;
    if (editBox) editBox.hidden = true;
    box.replaceChildren(el('p', { class: 'muted' }, err instanceof ApiError && err.status === 404
      ? `${state.names[id] || id} does not exist at this point (not yet written, or forgotten).` : String(err.message)));
    return;
  }
  state.names[id] = label(node);
  const [tier, salience, history] = await Promise.all([
    state.api.tier(id, asOf()).catch(() => null),
    state.api.salience(id).catch(() => null),
    state.api.history(id, asOf()).catch(() => null),
  ]);
  const provs = await Promise.all(provenanceFields(node).map((f) => state.api.provenance(id, f, asOf()).catch(() => null)));
  const versions = await versionList(id, history ? history.items : []);
  if (!fresh()) return;
  const rows = [
    ['id', node.id], ['kind', node.kind], ['name', node.name], ['domain', node.domain],
    ['version', `${node.version} (seq ${node.seq})`], ['tier', tier ? tier.tier : '?'],
    ['salience', salience ? salience.score.toFixed(3) : '?'],
    ['created', formatTime(node.created_at)], ['updated', formatTime(node.updated_at)],
    ['valid', `${formatTime(node.valid_from) || '…'} → ${formatTime(node.valid_to) || 'open'}`],
  ];
  for (const [key, value] of Object.entries(node.attrs || {})) rows.push([`attrs.${key}`, JSON.stringify(value)]);
  box.replaceChildren(
    el('p', { class: 'big-text', id: 'selected-text' }, node.text),
    el('table', { class: 'props' }, rows.filter(([, v]) => v !== null && v !== undefined)
      .map(([k, v]) => el('tr', {}, el('th', {}, k), el('td', {}, v)))),
    el('h3', {}, 'Provenance per field'),
    el('table', { class: 'props', id: 'provenance' }, provs.filter(Boolean).map((p) => el('tr', {},
      el('th', {}, p.field),
      el('td', {}, el('div', {}, JSON.stringify(p.value)), el('div', { class: 'prov' },
        `${p.type} #${p.seq} · ${formatTime(p.recorded_at)} · agent ${p.agent || '—'} · source ${p.source || '—'} · session ${p.session || '—'}`))))),
    el('h3', {}, 'Versions'),
    versions,
    salience ? el('details', {}, el('summary', {}, 'Salience components'),
      el('pre', { class: 'prov' }, JSON.stringify(salience, null, 1))) : null,
    el('button', { type: 'button', class: 'link', onclick: () => expand(id) }, 'Expand neighbours in the graph'),
  );
  if (editBox) {
    editBox.hidden = false;
    $('update-text').value = node.text;
  }
}

/** Each version of the memory with what changed from the one before (a diff). */
async function versionList(id, events) {
  const versions = events.filter((e) => e.type === 'node.created' || e.type === 'node.updated').slice(-20);
  const states = await Promise.all(versions.map((e) => state.api.memory(id, e.seq).catch(() => null)));
  const items = versions.map((event, i) => {
    const changes = diffNodes(i ? states[i - 1] : null, states[i]);
    return el('li', { dataset: { seq: event.seq } },
      el('button', { type: 'button', class: 'link', onclick: () => jumpTo(event.seq) }, `v${event.version}`),
      ` #${event.seq} · ${formatTime(event.recorded_at)} · ${event.meta.agent || '—'}`,
      el('div', { class: 'diff' }, changes.map((c) => el('div', {}, `${c.field}: `,
        c.before === null ? '' : el('del', {}, JSON.stringify(c.before)), c.before === null ? '' : ' → ',
        el('ins', {}, JSON.stringify(c.after))))));
  });
  return el('ol', { class: 'versions', id: 'versions' }, items);
}

// -- recall -------------------------------------------------------------------------

async function runRecall() {
  const query = $('query').value.trim();
  if (!query) return;
  state.lastQuery = query;
  let filters;
  try {
    filters = parseFilters($('recall-filters').value);
  } catch (err) {
    fail(err);
    return;
  }
  const agent = $('recall-agent').value.trim() || undefined;
  const body = { query, k: Number($('k').value) || 5, with_index: true, as_of: asOf(), agent, tiers: $('recall-tiers').value };
  if ($('recall-domain').value) body.domains = [$('recall-domain').value];
  for (const [field, id] of [['user_id', 'recall-user'], ['agent_id', 'recall-by'], ['run_id', 'recall-run']]) {
    if ($(id).value.trim()) body[field] = $(id).value.trim();
  }
  if (filters) body.filters = filters;
  const fresh = still(POINT, () => $('query').value);
  const found = await state.api.recall(body).catch(fail);
  if (!found || !fresh()) return;
  setStatus('');
  $('recall-info').textContent = `${found.hits.length} hits at seq ${found.seq}${state.point === null ? '' : ' (as of then)'}`;
  $('hits').replaceChildren(...found.hits.map((hit) => el('li', { onclick: () => select(hit.id), dataset: { id: hit.id } },
    el('span', { class: 'hit-score' }, hit.score.toFixed(3)), el('span', { class: 'hit-text' }, hit.text),
    el('div', { class: 'signals' }, signalRows(hit).map((s) => el('span', { class: 'signal', dataset: { signal: s.name } }, `${s.name} ${s.parts}`))))));
  $('index').textContent = found.index || '';
  await drawPrefetch(agent);
}

async function drawPrefetch(agent) {
  const box = $('prefetch');
  if (!agent || state.point !== null) {
    box.replaceChildren(el('p', { class: 'muted' }, 'Name an agent to see what the prefetcher warms for it next.'));
    return;
  }
  const work = await state.api.working(agent).catch(fail);
  if (!work) return;
  box.replaceChildren(el('h3', {}, `Prefetched for ${agent}`),
    work.stats.enabled ? el('ol', {}, work.nodes.map((n) => el('li', { onclick: () => select(n.id) }, label(n, 60))))
      : el('p', { class: 'muted' }, 'The working tier is off on this server.'),
    el('p', { class: 'prov' }, `reads ${work.stats.accesses}, hit rate ${(work.stats.hit_rate * 100).toFixed(0)}%`));
}

// -- tiers and contexts -------------------------------------------------------------

async function drawSide() {
  const fresh = still(POINT);
  const [tiers, moves, contexts] = await Promise.all([
    state.api.tiers().catch(fail),
    state.api.timeline({
      type: 'tier.changed', newest: true, limit: 20, as_of: asOf(),
      after: windowStart(state.point === null ? state.head : state.point, RECENT),
    }).catch(fail),
    state.api.contexts().catch(fail),
  ]);
  if (!fresh()) return;
  if (tiers) $('tiers').replaceChildren(el('table', { class: 'props' }, Object.entries(tiers).map(([t, n]) => el('tr', {}, el('th', {}, t), el('td', {}, n)))));
  if (moves) {
    $('moves').replaceChildren(...(moves.items.length ? moves.items.reverse().map(eventItem) : [el('li', { class: 'muted' }, 'No consolidation has moved anything yet.')]));
  }
  if (contexts) {
    $('contexts').replaceChildren(...(contexts.length ? contexts.map(contextItem) : [el('p', { class: 'muted' }, 'No open contexts.')]));
  }
}

function contextItem(ctx) {
  const changes = el('ol', { class: 'events' });
  const show = async () => {
    const staged = await state.api.contextChanges(ctx.name).catch(fail);
    if (staged) changes.replaceChildren(...staged.map((e) => el('li', {}, describeEvent(e, state.names).text)));
  };
  const act = (fn) => async () => { if (await fn(ctx.name).catch(fail)) await afterWrite(); };
  return el('div', { class: 'context' },
    el('div', { class: 'row' }, el('strong', {}, ctx.name), ` ${ctx.agent || ''} · ${ctx.pending} staged · reads at #${ctx.read_seq}`,
      el('button', { type: 'button', class: 'link', onclick: show }, 'show'),
      state.editable ? el('button', { type: 'button', dataset: { edit: '' }, onclick: act((n) => state.api.commitContext(n)) }, 'commit') : null,
      state.editable ? el('button', { type: 'button', class: 'danger', dataset: { edit: '' }, onclick: act((n) => state.api.discardContext(n)) }, 'discard') : null),
    changes);
}

// -- edits (the same write routes as any client) -------------------------------------

async function afterWrite(selectId = state.selected) {
  state.selected = selectId;
  await loadBounds();
  state.point = null;
  setupSlider();
  await refresh();
}

async function doRemember(event) {
  event.preventDefault();
  const text = $('remember-text').value.trim();
  if (!text) return;
  const body = { text, domain: $('remember-domain').value.trim() || undefined, name: $('remember-name').value.trim() || undefined };
  if (body.name) body.kind = 'entity';
  const node = await state.api.remember(body).catch(fail);
  if (!node) return;
  $('remember-text').value = '';
  setStatus(`remembered ${label(node)}`);
  await afterWrite(node.id);
}

async function doUpdate(event) {
  event.preventDefault();
  const node = await state.api.update(state.selected, { text: $('update-text').value }).catch(fail);
  if (node) { setStatus(`updated ${label(node)} to version ${node.version}`); await afterWrite(); }
}

async function doRelate(event) {
  event.preventDefault();
  const rel = $('relate-rel').value.trim();
  const target = $('relate-dst').value.trim();
  if (!rel || !target) return;
  const dst = await state.api.memory(target).catch(() => state.api.find(target).catch(fail));
  if (!dst) return;
  const edge = await state.api.relate({ src: state.selected, rel, dst: dst.id }).catch(fail);
  if (edge) { setStatus(`related: ${rel} ${label(dst)}`); await afterWrite(); }
}

function askForget() {
  $('confirm-what').textContent = `“${state.names[state.selected] || state.selected}”`;
  $('forget-reason').value = '';
  $('confirm').showModal();
}

async function doForget() {
  const id = state.selected;
  const done = await state.api.forget(id, $('forget-reason').value.trim() || undefined).catch(fail);
  if (!done) return;
  setStatus(`forgot ${state.names[id] || id} (seq ${done.seq}); compaction removes its bytes`);
  $('detail').replaceChildren(el('p', { class: 'muted', id: 'forgotten' }, 'Forgotten.'));
  if ($('edit-selected')) $('edit-selected').hidden = true;
  await afterWrite(null);
}

window.explorer = state; // a handle for the browser tests and the console
start();
