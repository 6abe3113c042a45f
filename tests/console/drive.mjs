// Drives knoop's operator console (specs/console.md) in Debian's headless Chromium with
// Playwright (playwright-core, executablePath /usr/bin/chromium: no browser download), as an
// operator would, and prints what it saw as one JSON object on stdout:
//
//   node drive.mjs <rpc url> <rpc token> <other node's rpc url> <screenshot dir> <tenant DID>
//
// - anonymous: what a browser without credentials gets for /console/ (no page: the
//   navigation's error, and the request's status);
// - network: the digest, the number of peers and peer rows the Network page shows, each
//   peer's set against ours and its clock offset, and the warnings;
// - throughput: the received-transactions chart's sum before and after a DID is created on
//   the other node (a transaction published elsewhere);
// - peer_traffic: the per-peer charts and what they received while the page was open;
// - tenant: the DID the Tenants page's button created, the endpoint published for it, and the
//   verdicts on <tenant DID>'s wallet credentials;
// - events: the live event view's stream state and its rows for a DID created elsewhere;
// - audit: today's refused token requests, the outcomes of the token entries the Audit page
//   lists, and its chain verdict;
// - directory: the organisations the Directory page finds.
// A screenshot of each page goes to <screenshot dir>/<page>.png.
import { writeFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const [rpc, token, other, shots, walletHolder] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const out = {};
try {
  // Without credentials: no page (the browser has nothing to answer the Basic challenge
  // with, so the navigation fails), and the plain request's status.
  const anonymous = await browser.newContext();
  let page0 = null;
  try {
    const r = await (await anonymous.newPage()).goto(`${rpc}/console/`);
    page0 = r ? r.status() : null;
  } catch (e) {
    page0 = String(e.message).split('\n')[0];
  }
  out.anonymous = { navigation: page0, status: (await anonymous.request.get(`${rpc}/console/`)).status() };
  await anonymous.close();

  const context = await browser.newContext({
    httpCredentials: { username: 'operator', password: token },
    viewport: { width: 1280, height: 900 },
  });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  // The first page is loaded; the others are opened from the menu, as an operator does, so
  // the samples the page took so far stay.
  const open = async (name) => {
    if (page.url().startsWith(`${rpc}/console/`)) await page.click(`nav a[data-page=${name}]`);
    else await page.goto(`${rpc}/console/#${name}`);
    await page.waitForSelector(`body[data-loaded="${name}"]`, { timeout: 20000 });
  };
  // (Read one by one: the page's content security policy forbids evaluated functions.)
  const attributes = async (selector, name) => {
    const values = [];
    for (const l of await page.locator(selector).all()) values.push(await l.getAttribute(name));
    return values;
  };
  const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });

  await open('network');
  out.network = {
    sync: await page.locator('#peers tbody td[data-sync]').allTextContents(),
    digest: await page.textContent('#digest'),
    certificate: await page.textContent('#certificate'),
    disk: await page.textContent('#disk'),
    peers: Number(await page.textContent('#peer-count')),
    rows: await page.locator('#peers tbody tr').count(),
    warnings: await page.locator('#warnings li').allTextContents(),
    sets: await attributes('#peers tbody td[data-digest]', 'data-digest'),
    clocks: await attributes('#peers tbody td[data-clock-offset]', 'data-clock-offset'),
    graph_nodes: await page.locator('#graph circle').count(),
  };
  await shot('network');

  await open('throughput');
  const chart = '#chart-received g[data-series=push]';
  const sum = async () => (await attributes('#chart-received g[data-series]', 'data-sum'))
    .reduce((a, v) => a + Number(v), 0);
  // A few samples first, so the chart has a past to rise from.
  // (Polled from here: the page's content security policy forbids evaluated functions.)
  const points = async () => Number(await page.getAttribute(chart, 'data-points').catch(() => 0));
  for (const t0 = Date.now(); (await points()) < 3 && Date.now() - t0 < 30000;) {
    await page.waitForTimeout(500);
  }
  // Ask the test for an outsider's invalid pushes now (it watches for this file), and wait
  // for the rejected chart to show them by reason.
  writeFileSync(`${shots}/.rogue`, 'go');
  const rejected = async () => {
    const names = await attributes('#chart-rejected g[data-series]', 'data-series');
    const sums = await attributes('#chart-rejected g[data-series]', 'data-sum');
    return Object.fromEntries(names.map((n, i) => [n, Number(sums[i])]));
  };
  const rejectedSum = async () => Object.values(await rejected()).reduce((a, v) => a + v, 0);
  for (const t0 = Date.now(); (await rejectedSum()) < 4 && Date.now() - t0 < 40000;) {
    await page.waitForTimeout(500);
  }
  // One more sample, so that what the rogue's pushes added to "received" is in the past.
  await page.waitForTimeout(2500);
  const before = await sum();
  const r = await fetch(`${other}/v1/dids`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}',
  });
  if (r.status !== 201) throw new Error(`creating a DID on the other node: ${r.status}`);
  const t0 = Date.now();
  let after = before;
  while (after <= before && Date.now() - t0 < 30000) {
    await page.waitForTimeout(500);
    after = await sum();
  }
  out.throughput = {
    before,
    after,
    received_total: Number(await page.textContent('#received-total')),
    bars: await page.locator('#chart-received g[data-series] rect').count(),
    rejected: await rejected(),
    legend: await page.textContent('#rejected-legend'),
  };
  await shot('throughput');

  // The per-peer charts on the Network page, drawn from the samples taken since the page
  // opened (the hash changes; the page is not reloaded).
  await open('network');
  const received = await attributes('#peer-traffic g[data-series=received]', 'data-sum');
  out.peer_traffic = {
    charts: await page.locator('#peer-traffic svg').count(),
    received: received.reduce((a, v) => a + Number(v), 0),
  };

  await open('tenants');
  await page.click('#create-tenant');
  await page.waitForSelector('#created[data-did]', { timeout: 20000 });
  const created = await page.getAttribute('#created', 'data-did');
  await page.waitForSelector(`.tenant[data-did="${created}"]`, { timeout: 20000 });
  // Publish its FHIR endpoint from the page.
  const form = `form[data-publish="${created}"]`;
  await page.fill(`${form} input[name=type]`, 'FHIR');
  await page.fill(`${form} input[name=url]`, 'https://ehr.example/fhir');
  await page.click(`${form} button[type=submit]`);
  await page.waitForSelector(`.tenant[data-did="${created}"] li:has-text("FHIR: https://ehr.example/fhir")`,
    { timeout: 20000 });
  const wallet = `.tenant[data-did="${walletHolder}"] ul.wallet li`;
  await page.waitForSelector(wallet, { timeout: 20000 });
  out.tenant = {
    wallet: await attributes(wallet, 'data-verdict'),
    created,
    listed: await page.locator('.tenant').count(),
    keys: await page.locator(`.tenant[data-did="${created}"] tbody tr`).count(),
    services: await page.locator(`.tenant[data-did="${created}"] li`).allTextContents(),
  };
  await shot('tenants');

  await open('directory');
  await page.click('#directory-search button[type=submit]');
  await page.waitForSelector('#organisations tbody tr', { timeout: 20000 });
  out.directory = await page.locator('#organisations tbody tr td:first-child').allTextContents();
  await shot('directory');

  await open('audit');
  await page.selectOption('#audit-filter select[name=kind]', 'token');
  out.audit = {
    token_refused_today: await page.getAttribute('#today tr[data-kind=token] td[data-refused]', 'data-refused'),
    token_outcomes: await page.locator('#audit-entries tbody tr td:nth-child(9)').allTextContents(),
  };
  await page.click('#verify-chain');
  await page.waitForSelector('#chain[data-valid]', { timeout: 20000 });
  out.audit.chain_valid = await page.getAttribute('#chain', 'data-valid');
  out.audit.chain_text = await page.textContent('#chain');
  await shot('audit');

  // The live event view: a DID created on the other node appears as this node stores it.
  await open('events');
  await page.waitForSelector('#event-state[data-state=open]', { timeout: 20000 });
  const created2 = await fetch(`${other}/v1/dids`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}',
  });
  if (created2.status !== 201) throw new Error(`creating a DID on the other node: ${created2.status}`);
  const didRows = '#event-list tbody tr[data-type="application/knoop-did-op+json"]';
  await page.waitForSelector(didRows, { timeout: 30000 });
  out.events = {
    state: await page.getAttribute('#event-state', 'data-state'),
    did_rows: await page.locator(didRows).count(),
    count: Number(await page.textContent('#event-count')),
  };
  await shot('events');
  out.page_errors = errors;
} finally {
  await browser.close();
}
process.stdout.write(`${JSON.stringify(out)}\n`);
