// Drives knoop's patient page (specs/patient-view.md) in Debian's headless Chromium with
// Playwright (playwright-core, executablePath /usr/bin/chromium: no browser download), as a
// patient on a phone would, and prints what it saw as one JSON object on stdout:
//
//   node drive.mjs <page url> <login> <password> <mode> <screenshot dir>
//
// It opens the page (no session: the login section), logs in at the identity provider's own
// pages (login, then consent), lands back on the page and reads the three views from the DOM.
// <mode> `object` then registers an objection with the page's button (accepting its
// confirmation) and reads the consents again; `withdraw` withdraws the active objection this
// service registered; `view` only looks. Also reported: the session
// cookie's attributes, the page's title in English after the language switch, the FHIR
// AuditEvent Bundle the page links to, and the view's JSON as the page's own origin gets it.
// A screenshot of each step goes to <screenshot dir>/<login>-<step>.png.
import { chromium } from 'playwright-core';

const [pageUrl, login, password, mode, shots] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const out = { login };
try {
  // A phone: small viewport, touch; the node's TLS certificate is from the tests' own CA.
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true,
    ignoreHTTPSErrors: true, locale: 'nl-NL',
  });
  const page = await context.newPage();
  page.on('dialog', (d) => d.accept());
  await page.goto(pageUrl);
  await page.waitForSelector('#login:not([hidden])', { timeout: 20000 });
  out.before_login = { login_visible: await page.isVisible('#login'), content_visible: await page.isVisible('#content') };
  await page.screenshot({ path: `${shots}/${login}-1-start.png`, fullPage: true });

  await page.click('#login-button');
  // The provider's login page, then its consent page.
  await page.waitForSelector('input[name="login"]', { timeout: 20000 });
  out.provider_origin = new URL(page.url()).origin;
  await page.fill('input[name="login"]', login);
  await page.fill('input[name="password"]', password);
  await page.click('button[type="submit"]');
  await page.waitForLoadState('domcontentloaded');
  if (await page.locator('input[name="prompt"][value="consent"]').count()) {
    await page.click('button[type="submit"]');
  }
  await page.waitForURL((u) => u.pathname.startsWith('/patient/'), { timeout: 30000 });
  out.after_login_url = page.url();
  const loaded = await page.waitForSelector('body[data-loaded="true"], #error:not([hidden])', { timeout: 60000 });
  out.error = await page.evaluate(() => {
    const e = document.getElementById('error');
    return e.hidden ? null : (e.dataset.code || e.textContent);
  });
  if (loaded && !out.error) {
    const read = () => page.evaluate(() => ({
      holders: [...document.querySelectorAll('#holders li[data-status]')].map((li) => ({
        node: li.dataset.node, status: li.dataset.status, org: li.dataset.org || null, text: li.innerText,
      })),
      accesses: [...document.querySelectorAll('#accesses li[data-kind]')].map((li) => ({
        kind: li.dataset.kind, result: li.dataset.result, requester: li.dataset.requester,
        btg: li.dataset.btg === 'true', text: li.innerText,
      })),
      consents: [...document.querySelectorAll('#consents li[data-decision]')].map((li) => ({
        decision: li.dataset.decision, status: li.dataset.status, issuer: li.dataset.issuer, text: li.innerText,
      })),
      title: document.querySelector('h1').textContent,
    }));
    out.page = await read();
    await page.screenshot({ path: `${shots}/${login}-2-view.png`, fullPage: true });
    out.view = await page.evaluate(async () => (await fetch('/patient/api/view')).json());
    out.fhir = await page.evaluate(async () => {
      const r = await fetch('/patient/api/audit-events');
      return { type: r.headers.get('content-type'), body: await r.json() };
    });
    const cookie = (await context.cookies()).find((c) => c.name === 'knoop_patient');
    out.cookie = cookie ? { httpOnly: cookie.httpOnly, sameSite: cookie.sameSite, secure: cookie.secure, path: cookie.path } : null;
    out.script_sees_cookie = await page.evaluate(() => document.cookie.includes('knoop_patient'));

    if (mode === 'object') {
      await page.click('#object');
      await page.waitForSelector('#consents li[data-decision="deny"]', { timeout: 60000 });
      out.after_objection = await read();
      await page.screenshot({ path: `${shots}/${login}-3-objection.png`, fullPage: true });
    }
    if (mode === 'withdraw') {
      await page.click('#consents li[data-decision="deny"][data-status="active"] [data-withdraw]');
      await page.waitForSelector('#consents li[data-decision="deny"][data-status="revoked"]', { timeout: 60000 });
      out.after_withdrawal = await read();
      await page.screenshot({ path: `${shots}/${login}-3-withdrawn.png`, fullPage: true });
    }
    await page.click('#lang');
    out.english_title = await page.textContent('h1');
    out.english_html_lang = await page.evaluate(() => document.documentElement.lang);
    await page.screenshot({ path: `${shots}/${login}-4-english.png`, fullPage: true });
    // Logging out ends the session: the view is refused afterwards.
    await page.click('#logout');
    await page.waitForSelector('#login:not([hidden])', { timeout: 20000 });
    out.after_logout_status = await page.evaluate(async () => (await fetch('/patient/api/view')).status);
  }
} catch (e) {
  out.failure = String(e && e.stack || e);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out));
