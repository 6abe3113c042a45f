// Drives knoop's operator console (specs/console.md) in Debian's headless Chromium with
// Playwright (playwright-core, executablePath /usr/bin/chromium: no browser download), as an
// operator would, and prints what it saw as one JSON object on stdout:
//
//   node drive.mjs <rpc url> <rpc token> <other node's rpc url> <screenshot dir>
//
// - anonymous: what a browser without credentials gets for /console/ (no page: the
//   navigation's error, and the request's status);
// - network: the digest, the number of peers and peer rows the Network page shows;
// - throughput: the received-transactions chart's sum before and after a DID is created on
//   the other node (a transaction published elsewhere);
// - tenant: the DID the Tenants page's button created, and the endpoint published for it;
// - audit: today's refused token requests, the outcomes of the token entries the Audit page
//   lists, and its chain verdict;
// - directory: the organisations the Directory page finds.
// A screenshot of each page goes to <screenshot dir>/<page>.png.
import { chromium } from 'playwright-core';

const [rpc, token, other, shots] = process.argv.slice(2);
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
  const open = async (name) => {
    await page.goto(`${rpc}/console/#${name}`);
    await page.waitForSelector(`body[data-loaded="${name}"]`, { timeout: 20000 });
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
    graph_nodes: await page.locator('#graph circle').count(),
  };
  await shot('network');

  await open('throughput');
  const chart = '#chart-received g[data-series=received]';
  const sum = async () => Number(await page.getAttribute(chart, 'data-sum'));
  // A few samples first, so the chart has a past to rise from.
  // (Polled from here: the page's content security policy forbids evaluated functions.)
  const points = async () => Number(await page.getAttribute(chart, 'data-points').catch(() => 0));
  for (const t0 = Date.now(); (await points()) < 3 && Date.now() - t0 < 30000;) {
    await page.waitForTimeout(500);
  }
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
    bars: await page.locator(`${chart} rect`).count(),
  };
  await shot('throughput');

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
  out.tenant = {
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
  out.page_errors = errors;
} finally {
  await browser.close();
}
process.stdout.write(`${JSON.stringify(out)}\n`);
