// The HTTP API as the explorer calls it: the same routes and bearer token as any
// client, so the token's namespaces and scope decide what works.

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
  }
}

/** A query string from an object: null/undefined values left out, arrays repeated. */
export function queryString(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value === null || value === undefined || value === '') continue;
    for (const item of Array.isArray(value) ? value : [value]) search.append(key, String(item));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

export class Api {
  constructor({ token = null, namespace = 'default', fetcher = globalThis.fetch.bind(globalThis) } = {}) {
    this.token = token;
    this.namespace = namespace;
    this.fetcher = fetcher;
  }

  /** `path` under this namespace (`/recall` -> `/v1/namespaces/<ns>/recall`). */
  ns(path) {
    return `/v1/namespaces/${encodeURIComponent(this.namespace)}${path}`;
  }

  async request(method, path, { params = null, body = undefined } = {}) {
    const headers = { Accept: 'application/json' };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const response = await this.fetcher(path + queryString(params), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      const err = (data && data.error) || {};
      throw new ApiError(response.status, err.code || 'http_error', err.message || `HTTP ${response.status}`, err.details);
    }
    return data;
  }

  get(path, params) {
    return this.request('GET', path, { params });
  }

  whoami() {
    return this.get('/v1/whoami');
  }

  // reads (a read or write token)
  memory(id, asOf) { return this.get(this.ns(`/memories/${encodeURIComponent(id)}`), { as_of: asOf }); }
  history(id, asOf) { return this.get(this.ns(`/memories/${encodeURIComponent(id)}/history`), { as_of: asOf, limit: 1000 }); }
  provenance(id, field, asOf) { return this.get(this.ns(`/memories/${encodeURIComponent(id)}/provenance`), { field, as_of: asOf }); }
  tier(id, asOf) { return this.get(this.ns(`/memories/${encodeURIComponent(id)}/tier`), { as_of: asOf }); }
  salience(id) { return this.get(this.ns(`/memories/${encodeURIComponent(id)}/salience`)); }
  find(name, asOf) { return this.get(this.ns('/find'), { name, as_of: asOf }); }
  domains(asOf) { return this.get(this.ns('/domains'), { as_of: asOf, limit: 1000 }); }
  bridges(asOf) { return this.get(this.ns('/bridges'), { as_of: asOf, limit: 1000 }); }
  graph(params) { return this.get(this.ns('/graph'), params); }
  timeline(params) { return this.get(this.ns('/timeline'), params); }
  recall(body) { return this.request('POST', this.ns('/recall'), { body }); }
  working(agent) { return this.get(this.ns('/working'), { agent }); }
  tiers() { return this.get(this.ns('/tiers')); }
  contexts() { return this.get(this.ns('/contexts')); }
  contextChanges(name) { return this.get(this.ns(`/contexts/${encodeURIComponent(name)}/changes`)); }

  // writes (a write token)
  remember(body) { return this.request('POST', this.ns('/memories'), { body }); }
  update(id, body) { return this.request('PATCH', this.ns(`/memories/${encodeURIComponent(id)}`), { body }); }
  relate(body) { return this.request('POST', this.ns('/edges'), { body }); }
  forget(id, reason) {
    return this.request('DELETE', this.ns(`/memories/${encodeURIComponent(id)}`), { params: { reason } });
  }
  commitContext(name) { return this.request('POST', this.ns(`/contexts/${encodeURIComponent(name)}/commit`)); }
  discardContext(name) { return this.request('POST', this.ns(`/contexts/${encodeURIComponent(name)}/discard`)); }
}
