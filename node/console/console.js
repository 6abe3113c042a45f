// knoop's operator console (spec: specs/console.md). Every figure comes from, and every action
// goes to, the RPC routes the CLI uses (/status, /metrics, /v1/dids, /v1/directory,
// /v1/audit, ...), with the browser's credentials for the RPC. Nothing that identifies a
// patient is shown: the audit log holds pseudonyms only.
'use strict';

const SAMPLE_MS = 2000;
const KEEP_SAMPLES = 3600 / 2; // an hour of samples
// A peer whose clock differs from this node's by more than this is warned about (a node
// refuses transactions signed more than 5 minutes in its future: specs/transaction.md).
const CLOCK_WARNING_MS = 60 * 1000;
const KEEP_EVENTS = 200;

// ------------------------------------------------------------------------------------ helpers

async function rpc(path, options = {}) {
  const r = await fetch(path, {
    credentials: 'same-origin',
    ...options,
    headers: { Accept: 'application/json', ...(options.headers || {}) },
  });
  const text = await r.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch (_) {
    body = text;
  }
  if (!r.ok) {
    const why = body && body.message ? body.message : r.statusText;
    throw new Error(`${options.method || 'GET'} ${path}: ${r.status} ${why}`);
  }
  return body;
}

function $(selector) {
  return document.querySelector(selector);
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    e.append(c instanceof Node ? c : document.createTextNode(c == null ? '' : String(c)));
  }
  return e;
}

function svg(tag, attrs = {}) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function setText(selector, value) {
  $(selector).textContent = value == null ? '' : String(value);
}

function ago(ms) {
  if (ms == null) return 'never';
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

function bytes(n) {
  if (n == null) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function showError(e) {
  const p = $('#error');
  if (e) {
    p.textContent = String(e.message || e);
    p.hidden = false;
  } else {
    p.hidden = true;
  }
}

function fillRows(tbody, rows) {
  tbody.replaceChildren(...rows);
}

// ---------------------------------------------------------------------------------- sampling

// Samples of /status (and /metrics totals) while the page is open: what the charts draw.
const samples = [];
let lastStatus = null;
// The same per peer, from each peer's traffic counters: peer id -> [{t, received, served,
// bytes}].
const peerSamples = new Map();

function total(s) {
  return (s.sync.received_push || 0) + (s.sync.received_fetched || 0);
}

async function sample() {
  const s = await rpc('/status');
  lastStatus = s;
  samples.push({
    t: Date.now(),
    push: s.sync.received_push || 0,
    fetched: s.sync.received_fetched || 0,
    pushed: s.sync.pushed || 0,
    served: s.sync.served_fetched || 0,
    rejected: s.sync.rejected || 0,
    // Rejections by reason, under `reason:<code>`.
    ...Object.fromEntries(Object.entries(s.sync.rejected_by_reason || {}).map(([k, n]) => [`reason:${k}`, n])),
  });
  if (samples.length > KEEP_SAMPLES) samples.shift();
  const t = Date.now();
  for (const p of s.peer_list || []) {
    const c = p.traffic || {};
    const list = peerSamples.get(p.peer_id) || [];
    list.push({
      t,
      received: (c.received_push || 0) + (c.received_fetched || 0),
      served: c.served_fetched || 0,
      bytes: (c.bytes_sync_in || 0) + (c.bytes_sync_out || 0),
    });
    if (list.length > KEEP_SAMPLES) list.shift();
    peerSamples.set(p.peer_id, list);
  }
  return s;
}

// The per-sample differences of `key` in a list of samples (by default the node's): [{t, v}].
// A key missing from a sample counts as 0 (a rejection reason seen for the first time).
function deltas(key, list = samples) {
  const out = [];
  for (let i = 1; i < list.length; i += 1) {
    out.push({ t: list[i].t, v: Math.max(0, (list[i][key] || 0) - (list[i - 1][key] || 0)) });
  }
  return out;
}

const REASON_COLOURS = ['#b00020', '#9a5b00', '#6a1b9a', '#37474f', '#ad1457', '#4e342e'];

// Bars of per-sample counts, one group per series side by side, the latest on the right.
function drawChart(target, series) {
  const [w, h, pad] = [600, (target.viewBox && target.viewBox.baseVal.height) || 160, 24];
  target.replaceChildren();
  const all = series.flatMap((s) => s.points);
  const max = Math.max(1, ...all.map((p) => p.v));
  const n = Math.max(1, ...series.map((s) => s.points.length));
  const slot = (w - pad - 4) / Math.max(n, 30);
  target.append(svg('line', { x1: pad, y1: h - pad, x2: w - 4, y2: h - pad, stroke: '#d8dde6' }));
  const label = svg('text', { x: 2, y: 12 });
  label.textContent = String(max);
  target.append(label);
  series.forEach((s, k) => {
    const g = svg('g', {
      fill: s.color, 'data-series': s.name,
      'data-sum': String(s.points.reduce((a, p) => a + p.v, 0)),
      'data-points': String(s.points.length),
    });
    const barWidth = Math.max(1, slot / series.length - 1);
    s.points.forEach((p, i) => {
      if (p.v <= 0) return;
      const height = (p.v * (h - 2 * pad)) / max;
      const x = w - 4 - (s.points.length - i) * slot + k * (slot / series.length);
      g.append(svg('rect', {
        x: x.toFixed(1), y: (h - pad - height).toFixed(1), width: barWidth.toFixed(1),
        height: height.toFixed(1),
      }));
    });
    target.append(g);
  });
}

// ----------------------------------------------------------------------------------- network

// Organisations by the node that hosts them (their DID documents' KnoopHost service).
let hostsCache = { at: 0, byNode: new Map() };

async function organisationsByNode() {
  if (Date.now() - hostsCache.at < 30000) return hostsCache.byNode;
  const dir = await rpc('/v1/directory?limit=200');
  const byNode = new Map();
  await Promise.all((dir.organizations || []).map(async (o) => {
    try {
      const r = await rpc(`/v1/dids/${encodeURIComponent(o.did)}`);
      const services = (r.didDocument && r.didDocument.service) || [];
      for (const s of services) {
        if (s.type === 'KnoopHost' && typeof s.serviceEndpoint === 'string') {
          const list = byNode.get(s.serviceEndpoint) || [];
          list.push(o.legal_name || o.legalName || o.did);
          byNode.set(s.serviceEndpoint, list);
        }
      }
    } catch (_) {
      // An organisation whose DID does not resolve here is shown without a host.
    }
  }));
  hostsCache = { at: Date.now(), byNode };
  return byNode;
}

function warnings(s) {
  const out = [];
  if (s.peers === 0) out.push('No peers: this node is not connected to the network.');
  const last = s.sync.last_sync_ago_ms;
  if (s.peers > 0 && (last == null || last > 5 * 60 * 1000)) {
    out.push(`No reconciliation for ${ago(last)}: the node may be out of sync.`);
  }
  const never = (s.peer_list || []).filter((p) => !p.last_sync_ms).length;
  if (never > 0) out.push(`${never} of ${s.peers} peers not reconciled with yet.`);
  if (s.pending > 0) out.push(`${s.pending} transactions wait for their parents.`);
  if (s.sync.rejected > 0) out.push(`${s.sync.rejected} transactions rejected (see Throughput).`);
  if (s.banned_peers > 0) out.push(`${s.banned_peers} peers banned for misbehaviour.`);
  if (s.disk && s.disk.total_bytes > 0 && s.disk.free_bytes / s.disk.total_bytes < 0.1) {
    out.push(`The data disk is nearly full: ${bytes(s.disk.free_bytes)} free of ${bytes(s.disk.total_bytes)}.`);
  }
  const skewed = (s.peer_list || []).filter((p) => p.state
    && Math.abs(p.state.clock_offset_ms) > CLOCK_WARNING_MS);
  const known = (s.peer_list || []).filter((p) => p.state);
  if (known.length >= 2 && skewed.length === known.length
    && skewed.every((p) => Math.sign(p.state.clock_offset_ms) === Math.sign(skewed[0].state.clock_offset_ms))) {
    out.push(`This node's clock differs from every peer's by ${seconds(-skewed[0].state.clock_offset_ms)}: `
      + 'check its time synchronisation (NTP).');
  } else {
    for (const p of skewed) {
      out.push(`The clock of peer ${p.peer_id.slice(-8)} is ${clockText(p.state.clock_offset_ms)}: `
        + 'transactions more than 5 min ahead of a node are refused.');
    }
  }
  const expires = s.public_certificate_expires_ms;
  if (expires != null && expires - Date.now() < 30 * 24 * 3600 * 1000) {
    out.push(expires <= Date.now()
      ? `The public API's certificate expired on ${new Date(expires).toISOString().slice(0, 10)}.`
      : `The public API's certificate expires on ${new Date(expires).toISOString().slice(0, 10)}.`);
  }
  return out;
}

function drawGraph(s, byNode) {
  const g = $('#graph');
  g.replaceChildren();
  const [cx, cy, r] = [200, 130, 95];
  const peers = s.peer_list || [];
  peers.forEach((p, i) => {
    const a = (2 * Math.PI * i) / Math.max(1, peers.length) - Math.PI / 2;
    const [x, y] = [cx + r * Math.cos(a), cy + r * Math.sin(a)];
    const inSync = p.last_sync_differences === 0;
    g.append(svg('line', { x1: cx, y1: cy, x2: x, y2: y, stroke: inSync ? '#0b6e4f' : '#9a5b00' }));
    g.append(svg('circle', { cx: x, cy: y, r: 9, fill: '#ffffff', stroke: '#1d2330' }));
    const t = svg('text', { x: x + 12, y: y + 4 });
    const orgs = p.did ? (byNode.get(p.did) || []) : [];
    t.textContent = orgs.length ? orgs.join(', ') : p.peer_id.slice(-8);
    g.append(t);
  });
  g.append(svg('circle', { cx, cy, r: 12, fill: '#0b6e4f' }));
  const me = svg('text', { x: cx - 14, y: cy + 26 });
  me.textContent = 'this node';
  g.append(me);
}

// "+2 min 0 s" style offsets.
function seconds(ms) {
  const sign = ms < 0 ? '-' : '+';
  const s = Math.abs(ms) / 1000;
  if (s < 120) return `${sign}${s.toFixed(1)} s`;
  return `${sign}${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

function clockText(offset) {
  const s = seconds(offset).slice(1);
  if (Math.abs(offset) < 1000) return 'in step with ours';
  return offset > 0 ? `${s} ahead of ours` : `${s} behind ours`;
}

// The peer's set, from its state answer, against ours: [state, text].
function digestState(p, ours) {
  if (!p.state) return ['unknown', 'not known (protocol 1.0, or not asked yet)'];
  if (p.state.digest === ours) return ['same', 'same as ours'];
  const count = (d) => d.split('-')[0];
  return ['differs', `${count(p.state.digest)} transactions (ours ${count(ours)}), `
    + `${ago(Date.now() - p.state.at_ms)}`];
}

// A peer is in sync when the last reconciliation with it, in the last two minutes, found no
// difference.
function syncState(p, now) {
  if (!p.last_sync_ms) return 'not reconciled yet';
  if (now - p.last_sync_ms > 120000) return 'stale';
  return p.last_sync_differences === 0 ? 'in sync' : `${p.last_sync_differences} differences`;
}

async function network() {
  const s = lastStatus || (await sample());
  setText('#digest', s.digest);
  setText('#transactions', s.transactions);
  setText('#peer-count', s.peers);
  setText('#peers-in-sync', s.sync.peers_in_sync);
  setText('#last-sync', ago(s.sync.last_sync_ago_ms));
  setText('#pending', s.pending);
  setText('#peer-id', s.peer_id);
  setText('#public-url', s.public_url || '(none)');
  setText('#certificate', s.public_certificate_expires_ms == null
    ? '(no TLS)' : `valid until ${new Date(s.public_certificate_expires_ms).toISOString().slice(0, 10)}`);
  setText('#disk', s.disk ? `${bytes(s.disk.free_bytes)} free of ${bytes(s.disk.total_bytes)}` : '(unknown)');
  const w = warnings(s);
  fillRows($('#warnings'), w.length
    ? w.map((t) => el('li', {}, t))
    : [el('li', { class: 'ok' }, 'Connected and in sync.')]);
  const byNode = await organisationsByNode();
  drawGraph(s, byNode);
  const now = Date.now();
  fillRows($('#peers tbody'), (s.peer_list || []).map((p) => el('tr', { 'data-peer': p.peer_id },
    el('td', { class: 'mono' }, p.peer_id),
    el('td', { class: 'mono' }, p.did || ''),
    el('td', {}, (p.did && byNode.get(p.did) || []).join(', ')),
    el('td', { class: 'mono' }, p.address),
    el('td', {}, p.last_sync_ms ? ago(now - p.last_sync_ms) : 'not yet'),
    el('td', { 'data-sync': syncState(p, now) }, syncState(p, now)),
    (() => {
      const [state, text] = digestState(p, s.digest);
      return el('td', { 'data-digest': state }, text);
    })(),
    el('td', p.state ? { 'data-clock-offset': String(p.state.clock_offset_ms) } : {},
      p.state ? `${clockText(p.state.clock_offset_ms)} (±${Math.ceil(p.state.round_trip_ms / 2)} ms)` : ''),
    el('td', {}, p.score))));
  drawPeerTraffic(s.peer_list || [], byNode);
}

// One chart per peer: transactions received from it (pushed or fetched) and fetched by it,
// per sample, with its reconciliation bytes since it connected.
function drawPeerTraffic(peers, byNode) {
  const figures = peers.map((p) => {
    const list = peerSamples.get(p.peer_id) || [];
    const chart = svg('svg', { class: 'chart small', viewBox: '0 0 600 90', 'data-peer': p.peer_id });
    drawChart(chart, [
      { name: 'received', color: '#0b6e4f', points: deltas('received', list) },
      { name: 'served', color: '#1f4e9a', points: deltas('served', list) },
    ]);
    const c = p.traffic || {};
    const orgs = (p.did && byNode.get(p.did)) || [];
    return el('figure', {},
      el('figcaption', {}, `${orgs.length ? orgs.join(', ') : p.peer_id.slice(-8)}: received (green) and `
        + `served (blue) per sample; since connecting ${c.sync_sessions || 0} reconciliations, `
        + `${bytes(c.bytes_sync_in)} in, ${bytes(c.bytes_sync_out)} out`),
      chart);
  });
  $('#peer-traffic').replaceChildren(...figures);
}

// -------------------------------------------------------------------------------- throughput

// Sums and counts of the http_request_duration histograms in a Prometheus text exposition.
function httpFigures(text) {
  let count = 0;
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = line.match(/^knoop_http_request_duration_seconds_(count|sum)\{[^}]*\} ([0-9.eE+-]+)$/);
    if (!m) continue;
    if (m[1] === 'count') count += Number(m[2]);
    else sum += Number(m[2]);
  }
  return { count, sum };
}

async function throughput() {
  const s = lastStatus || (await sample());
  drawChart($('#chart-received'), [
    { name: 'push', color: '#0b6e4f', points: deltas('push') },
    { name: 'fetched', color: '#5fa88a', points: deltas('fetched') },
  ]);
  drawChart($('#chart-pushed'), [
    { name: 'pushed', color: '#1f4e9a', points: deltas('pushed') },
    { name: 'served', color: '#7d9fd6', points: deltas('served') },
  ]);
  const reasons = [...new Set(samples.flatMap((x) => Object.keys(x).filter((k) => k.startsWith('reason:'))))].sort();
  drawChart($('#chart-rejected'), reasons.map((k, i) => ({
    name: k.slice('reason:'.length), color: REASON_COLOURS[i % REASON_COLOURS.length], points: deltas(k),
  })));
  $('#rejected-legend').textContent = reasons.length
    ? reasons.map((k, i) => `${k.slice('reason:'.length)} (${['red', 'amber', 'purple', 'slate', 'pink', 'brown'][i % 6]})`).join(', ')
    : 'none';
  setText('#received-total', total(s));
  setText('#pushed-total', s.sync.pushed);
  setText('#served-total', s.sync.served_fetched);
  setText('#rejected-total', s.sync.rejected);
  setText('#store-bytes', bytes(s.store_bytes));
  setText('#uptime', `${Math.round(s.uptime_s / 60)} min`);
  const r = await fetch('/metrics', { credentials: 'same-origin', headers: { Accept: 'text/plain' } });
  if (r.ok) {
    const h = httpFigures(await r.text());
    setText('#http-requests', h.count);
    setText('#http-latency', h.count ? `${((1000 * h.sum) / h.count).toFixed(1)} ms` : '');
  }
  const byReason = Object.entries(s.sync.rejected_by_reason || {});
  fillRows($('#rejections tbody'), byReason.length
    ? byReason.map(([why, n]) => el('tr', {}, el('td', {}, why), el('td', {}, n)))
    : [el('tr', {}, el('td', {}, 'nothing rejected'), el('td', {}, '0'))]);
}

// ----------------------------------------------------------------------------------- tenants

function keyRows(doc) {
  return (doc.verificationMethod || []).map((k) => {
    const pub = k.publicKeyMultibase || (k.publicKeyJwk && JSON.stringify(k.publicKeyJwk)) || '';
    return el('tr', {},
      el('td', { class: 'mono' }, k.id),
      el('td', {}, k.type),
      el('td', { class: 'mono' }, pub));
  });
}

async function tenant(did, didWeb) {
  const r = await rpc(`/v1/dids/${encodeURIComponent(did)}`);
  const doc = r.didDocument || {};
  const box = el('div', { class: 'tenant', 'data-did': did });
  const org = await rpc(`/v1/directory?did=${encodeURIComponent(did)}`);
  const entry = (org.organizations || [])[0];
  const heading = entry
    ? `${entry.legal_name || entry.legalName} (URA ${entry.ura})`
    : (lastStatus && did === lastStatus.did ? 'This node' : 'No organisation credential');
  box.append(el('h3', {}, heading));
  box.append(el('p', { class: 'mono' }, did), el('p', { class: 'mono' }, didWeb || ''));
  const keys = el('table', {}, el('thead', {}, el('tr', {}, el('th', {}, 'Key'), el('th', {}, 'Type'), el('th', {}, 'Public key'))));
  keys.append(el('tbody', {}, ...keyRows(doc)));
  box.append(keys);
  const services = (doc.service || []).map((s) => el('li', { class: 'mono' },
    `${s.type}: ${typeof s.serviceEndpoint === 'string' ? s.serviceEndpoint : JSON.stringify(s.serviceEndpoint)}`));
  box.append(el('ul', {}, ...services));
  let held = null;
  try {
    held = await rpc(`/v1/wallet/credentials?holder=${encodeURIComponent(did)}`);
  } catch (_) {
    // No wallet answer: nothing to show.
  }
  if (held) {
    const list = held.credentials || [];
    box.append(el('p', {}, `${list.length} credentials in its wallet`));
    const items = await Promise.all(list.map(walletItem));
    box.append(el('ul', { class: 'wallet' }, ...items));
  }
  if (entry) {
    box.append(el('p', {}, `Organisation credential: verified and trusted, issued by ${entry.issuer}`));
  }
  // Publish (add or replace) a service endpoint in the DID document.
  const publish = el('form', { class: 'publish', 'data-publish': did },
    el('label', {}, 'Service type ', el('input', { name: 'type', value: 'FHIR', required: 'required' })),
    el('label', {}, 'URL ', el('input', { name: 'url', type: 'url', required: 'required', size: '40' })),
    el('button', { type: 'submit' }, 'Publish endpoint'));
  publish.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = new FormData(publish);
    const type = String(f.get('type')).trim();
    try {
      await rpc(`/v1/dids/${encodeURIComponent(did)}/services/${encodeURIComponent(type.toLowerCase())}`, {
        method: 'PUT',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ type, serviceEndpoint: String(f.get('url')).trim() }),
      });
      await tenants();
    } catch (e) {
      showError(e);
    }
  });
  box.append(publish);
  const rotate = el('button', { type: 'button', 'data-rotate': did }, 'Rotate key-1');
  rotate.addEventListener('click', async () => {
    try {
      await rpc(`/v1/dids/${encodeURIComponent(did)}/keys/key-1/rotate`, { method: 'POST' });
      await tenants();
    } catch (e) {
      showError(e);
    }
  });
  box.append(rotate);
  return box;
}

// One wallet credential, verified now by the node (POST /v1/credentials/verify: proof, issuer
// key at issuance, validity, revocation and status lists, trust).
async function walletItem(c) {
  const what = `${[].concat(c.types || c.type || []).join(', ')} from ${c.issuer && (c.issuer.id || c.issuer)}`;
  const until = c.validUntil || c.expirationDate;
  let verdict = 'unknown';
  let text = 'not verified';
  try {
    const v = await rpc('/v1/credentials/verify', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ credential: c.credential }),
    });
    verdict = v.valid ? 'valid' : v.code;
    text = v.valid ? 'verified and trusted' : `not valid: ${v.code}${v.reason ? ` (${v.reason})` : ''}`;
  } catch (e) {
    text = `not verified: ${e.message}`;
  }
  const soon = until && Date.parse(until) - Date.now() < 30 * 24 * 3600 * 1000;
  return el('li', { 'data-verdict': verdict, class: verdict === 'valid' && !soon ? 'valid' : 'invalid' },
    `${what}, until ${until || '(no end)'}${soon ? ' (expires within 30 days)' : ''}: ${text}`);
}

async function tenants() {
  const d = await rpc('/v1/dids');
  const boxes = await Promise.all((d.hosted || []).map((did) => tenant(did, (d.did_web || {})[did])));
  $('#tenant-list').replaceChildren(...boxes);
}

async function createTenant() {
  const r = await rpc('/v1/dids', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: '{}',
  });
  setText('#created', r.did);
  $('#created').setAttribute('data-did', r.did);
  await tenants();
}

// --------------------------------------------------------------------------------- directory

async function directory() {
  const form = new FormData($('#directory-search'));
  const q = new URLSearchParams();
  for (const [k, v] of form.entries()) if (v) q.set(k, v);
  q.set('limit', '200');
  const r = await rpc(`/v1/directory?${q}`);
  fillRows($('#organisations tbody'), (r.organizations || []).map((o) => el('tr', { 'data-did': o.did },
    el('td', {}, o.legal_name || o.legalName),
    el('td', {}, o.city),
    el('td', {}, o.organization_type || o.organizationType),
    el('td', {}, o.ura),
    el('td', { class: 'mono' }, o.did))));
}

// ------------------------------------------------------------------------------------- audit

let auditEntries = [];

function auditFiltered() {
  const f = new FormData($('#audit-filter'));
  const kind = f.get('kind');
  const outcome = (f.get('outcome') || '').toLowerCase();
  const requester = (f.get('requester') || '').toLowerCase();
  const from = f.get('from') ? Date.parse(f.get('from')) : null;
  const to = f.get('to') ? Date.parse(f.get('to')) : null;
  return auditEntries.filter((e) => (!kind || e.kind === kind)
    && (!outcome || String(e.outcome).toLowerCase().includes(outcome))
    && (!requester || String(e.requester).toLowerCase().includes(requester))
    && (from == null || e.time_ms >= from)
    && (to == null || e.time_ms <= to));
}

// Today's decisions (since local midnight): per kind, how many were granted or served, and how
// many refused, with the refusals' reasons.
function drawToday() {
  const midnight = new Date();
  midnight.setHours(0, 0, 0, 0);
  const today = auditEntries.filter((e) => e.time_ms >= midnight.getTime());
  const kinds = new Map();
  for (const e of today) {
    const k = kinds.get(e.kind) || { all: 0, refused: 0, reasons: new Map() };
    k.all += 1;
    const outcome = String(e.outcome);
    // A refusal is written as `<code>: <why>` (RFC 6749 errors, FHIR issue codes, ...).
    const code = outcome.includes(': ') ? outcome.split(': ')[0] : '';
    const refused = /^(invalid|access_denied|unauthorized|forbidden|not-|expired|security|login|unsupported|too-|rate)/.test(code);
    if (refused) {
      k.refused += 1;
      k.reasons.set(code, (k.reasons.get(code) || 0) + 1);
    }
    kinds.set(e.kind, k);
  }
  fillRows($('#today tbody'), [...kinds.entries()].sort().map(([kind, k]) => el('tr', { 'data-kind': kind },
    el('td', {}, kind),
    el('td', {}, k.all),
    el('td', { 'data-refused': String(k.refused) }, k.refused),
    el('td', {}, [...k.reasons.entries()].map(([c, n]) => `${c} ${n}`).join(', ')))));
}

function drawAudit() {
  const rows = auditFiltered().slice(-500).reverse().map((e) => el('tr', { 'data-kind': e.kind },
    el('td', {}, e.seq),
    el('td', {}, new Date(e.time_ms).toISOString()),
    el('td', {}, e.kind),
    el('td', { class: 'mono' }, e.requester),
    el('td', {}, e.who),
    el('td', {}, e.purpose),
    el('td', {}, e.scope || ''),
    el('td', { class: 'mono' }, e.patient),
    el('td', {}, e.outcome)));
  fillRows($('#audit-entries tbody'), rows);
}

async function audit() {
  const r = await rpc('/v1/audit?limit=10000');
  auditEntries = r.entries || [];
  const select = $('#audit-filter select[name=kind]');
  const chosen = select.value;
  const kinds = [...new Set(auditEntries.map((e) => e.kind))].sort();
  select.replaceChildren(el('option', { value: '' }, 'any'), ...kinds.map((k) => el('option', { value: k }, k)));
  select.value = chosen;
  drawToday();
  drawAudit();
}

async function verifyChain() {
  const v = await rpc('/v1/audit/verify');
  const span = $('#chain');
  span.className = v.valid ? 'valid' : 'invalid';
  span.setAttribute('data-valid', String(v.valid));
  span.textContent = v.valid
    ? `The chain of ${v.entries} entries verifies.`
    : `The chain breaks at entry ${v.firstInvalid}: ${v.reason}`;
}

// ------------------------------------------------------------------------------------ events

// The node's live transaction events (GET /v1/events, server-sent events with ids): opened the
// first time the page is shown and kept open; EventSource reconnects by itself and resumes
// with Last-Event-ID, so no transaction is missed.
let events = null;
const seenEvents = [];
let eventCount = 0;

function drawEvents() {
  setText('#event-count', eventCount);
  fillRows($('#event-list tbody'), seenEvents.slice().reverse().map((e) => el('tr', { 'data-seq': String(e.seq), 'data-type': e.content_type || '' },
    el('td', {}, e.seq),
    el('td', {}, e.sigt ? new Date(e.sigt).toISOString() : ''),
    el('td', { class: 'mono' }, e.content_type || ''),
    el('td', {}, e.local === true ? 'submitted here' : 'from the network'),
    el('td', { class: 'mono' }, e.id))));
}

async function eventsPage() {
  if (events) {
    drawEvents();
    return;
  }
  events = new EventSource('/v1/events');
  events.addEventListener('open', () => {
    setText('#event-state', 'connected');
    $('#event-state').setAttribute('data-state', 'open');
  });
  events.addEventListener('error', () => {
    setText('#event-state', 'reconnecting');
    $('#event-state').setAttribute('data-state', 'reconnecting');
  });
  events.addEventListener('transaction', (m) => {
    try {
      seenEvents.push(JSON.parse(m.data));
    } catch (_) {
      return;
    }
    eventCount += 1;
    if (seenEvents.length > KEEP_EVENTS) seenEvents.shift();
    if ((location.hash || '').slice(1) === 'events') drawEvents();
  });
  drawEvents();
}

// ------------------------------------------------------------------------------------ router

const pages = { network, throughput, tenants, directory, audit, events: eventsPage };

async function show() {
  const name = (location.hash || '#network').slice(1);
  const page = pages[name] ? name : 'network';
  for (const id of Object.keys(pages)) $(`#${id}`).hidden = id !== page;
  for (const a of document.querySelectorAll('nav a')) {
    a.classList.toggle('active', a.dataset.page === page);
  }
  try {
    await pages[page]();
    showError(null);
    document.body.setAttribute('data-loaded', page);
  } catch (e) {
    showError(e);
  }
}

async function tick() {
  try {
    await sample();
    const page = (location.hash || '#network').slice(1);
    if (page === 'network') await network();
    if (page === 'throughput') await throughput();
    showError(null);
  } catch (e) {
    showError(e);
  }
}

document.addEventListener('DOMContentLoaded', async () => {
  $('#create-tenant').addEventListener('click', () => createTenant().catch(showError));
  $('#directory-search').addEventListener('submit', (ev) => {
    ev.preventDefault();
    directory().catch(showError);
  });
  $('#audit-filter').addEventListener('input', drawAudit);
  $('#verify-chain').addEventListener('click', () => verifyChain().catch(showError));
  window.addEventListener('hashchange', show);
  try {
    const s = await sample();
    setText('#node-did', s.did);
  } catch (e) {
    showError(e);
  }
  await show();
  setInterval(tick, SAMPLE_MS);
});
