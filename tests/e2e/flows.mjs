// Browser flows through Candor's staff console (/console/) and privacy center (/privacy/),
// driven by headless Chromium through playwright-core. Run by
// crates/candor-cli/tests/it/web.rs against `candor serve` on a `candor demo` deployment.
//
// Input (environment):
//   CANDOR_E2E_BASE      http://127.0.0.1:PORT
//   CANDOR_E2E_LOGIN     a reviewer's login      CANDOR_E2E_PASSWORD  their password
//   CANDOR_E2E_MODEL     model version whose validation audit failed
//   CANDOR_E2E_AUDIT     that audit's id
//   CANDOR_E2E_EMAIL     a customer's address
//   CANDOR_E2E_MAILDIR   where the SMTP sink writes N.json per message
//   CANDOR_E2E_SHOTS     where full-page screenshots go (created)
//   CANDOR_E2E_CHROMIUM  the browser (default /usr/bin/chromium)
// Output: one JSON line on stdout ({"ok":true,...} or {"ok":false,"error":...}); the exit
// status is non-zero on any failed expectation.

import { chromium } from 'playwright-core';
import { readFileSync, readdirSync, mkdirSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const AXE = join(here, 'node_modules/axe-core/axe.min.js');

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

class Expectation extends Error {}

function expect(cond, msg) {
  if (!cond) throw new Expectation(msg);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const cfg = {
  base: need('CANDOR_E2E_BASE').replace(/\/$/, ''),
  login: need('CANDOR_E2E_LOGIN'),
  password: need('CANDOR_E2E_PASSWORD'),
  model: need('CANDOR_E2E_MODEL'),
  audit: need('CANDOR_E2E_AUDIT'),
  email: need('CANDOR_E2E_EMAIL'),
  maildir: need('CANDOR_E2E_MAILDIR'),
  shots: need('CANDOR_E2E_SHOTS'),
  chromium: process.env.CANDOR_E2E_CHROMIUM || '/usr/bin/chromium',
};
mkdirSync(cfg.shots, { recursive: true });

const result = { ok: false, steps: [], screenshots: [], axe: {} };
let shotNo = 0;
let current = null; // the page of the running step, for a screenshot on failure

function step(name) {
  result.steps.push(name);
  process.stderr.write(`e2e: ${name}\n`);
}

async function shot(page, name) {
  shotNo += 1;
  const file = join(cfg.shots, `${String(shotNo).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  result.screenshots.push(file);
}

/** axe-core on the page: every violation is reported; serious and critical ones fail. */
async function axe(page, name) {
  await page.addScriptTag({ path: AXE });
  const r = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const res = await axe.run(document, { resultTypes: ['violations'] });
    return {
      passes: res.passes.length,
      incomplete: res.incomplete.map((v) => v.id),
      violations: res.violations.map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        nodes: v.nodes.map((n) => ({ target: n.target.join(' '), summary: n.failureSummary })),
      })),
    };
  });
  result.axe[name] = r;
  const bad = r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  expect(
    bad.length === 0,
    `axe: ${bad.length} serious or critical violation(s) on ${name}: ` + JSON.stringify(bad),
  );
}

/** Opens `path`, checks the status, screenshots and (unless told not to) runs axe. */
async function visit(page, path, name, { status = 200, a11y = true } = {}) {
  const res = await page.goto(cfg.base + path);
  expect(res, `no response for ${path}`);
  expect(res.status() === status, `${path}: status ${res.status()}, expected ${status}`);
  const h = res.headers();
  expect(
    (h['content-security-policy'] || '').includes("default-src 'none'") &&
      h['referrer-policy'] === 'no-referrer' &&
      h['x-frame-options'] === 'DENY' &&
      h['cache-control'] === 'no-store',
    `${path}: security headers missing: ${JSON.stringify(h)}`,
  );
  await shot(page, name);
  if (a11y) await axe(page, name);
  return res;
}

/** Clicks what `locator` finds and waits for the page it leads to. */
async function clickAndLoad(page, locator) {
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), locator.click()]);
}

function path(page) {
  return new URL(page.url()).pathname;
}

async function h1(page) {
  return (await page.locator('main h1').innerText()).trim();
}

// ------------------------------------------------------------------------------------------
// Mail from the SMTP sink
// ------------------------------------------------------------------------------------------

function messagesTo(address) {
  if (!existsSync(cfg.maildir)) return [];
  return readdirSync(cfg.maildir)
    .filter((f) => /^\d+\.json$/.test(f))
    .sort((a, b) => parseInt(a, 10) - parseInt(b, 10))
    .map((f) => JSON.parse(readFileSync(join(cfg.maildir, f), 'utf8')))
    .filter((m) => (m.rcpt_tos || []).some((r) => r.toLowerCase() === address.toLowerCase()));
}

async function waitForMessage(address, count, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = messagesTo(address);
    if (m.length >= count) return m[count - 1];
    if (Date.now() > deadline) return null;
    await sleep(100);
  }
}

// ------------------------------------------------------------------------------------------
// 0. The pages work under their own Content-Security-Policy (the other flows bypass it to run
//    axe): the stylesheet applies, forms post, and the browser reports no violation.
// ------------------------------------------------------------------------------------------

async function underCsp(browser) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  current = page;
  const errors = [];
  // A failed load is reported by URL (the browser's own console line does not name it); the
  // favicon that browsers ask for by themselves is not a page's doing.
  const favicon = (u) => new URL(u).pathname === '/favicon.ico';
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('response', (r) => {
    if (r.status() >= 400 && !favicon(r.url())) errors.push(`${r.status()} ${r.url()}`);
  });
  page.on('requestfailed', (r) => {
    if (!favicon(r.url())) errors.push(`failed ${r.url()}: ${r.failure() && r.failure().errorText}`);
  });
  const styled = () =>
    page.evaluate(() => getComputedStyle(document.querySelector('header.top')).backgroundColor);
  const accent = 'rgb(11, 83, 148)';

  step('csp: privacy center sign-in page');
  await page.goto(cfg.base + '/privacy/');
  expect((await styled()) === accent, `the stylesheet does not apply on /privacy/: ${await styled()}`);

  step('csp: console sign-in, overview and sign-out');
  await page.goto(cfg.base + '/console/login');
  await page.fill('#login', cfg.login);
  await page.fill('#password', cfg.password);
  await clickAndLoad(page, page.getByRole('button', { name: 'Sign in' }));
  expect(path(page) === '/console/', `signing in under the CSP led to ${page.url()}`);
  expect((await styled()) === accent, 'the stylesheet does not apply on /console/');
  expect((await page.locator('svg.chart').count()) > 0, 'no chart on the overview');
  await clickAndLoad(page, page.getByRole('button', { name: 'Sign out' }));
  expect(path(page) === '/console/login', `signing out under the CSP led to ${page.url()}`);
  expect(errors.length === 0, `the browser reported errors: ${JSON.stringify(errors)}`);
  await ctx.close();
}

// ------------------------------------------------------------------------------------------
// 1. A reviewer overrides a failed fairness audit in the console
// ------------------------------------------------------------------------------------------

async function console_(browser) {
  const ctx = await browser.newContext({ bypassCSP: true });
  const page = await ctx.newPage();
  current = page;
  const out = {};

  step('console: sign-in page');
  await visit(page, '/console/login', 'console-login');
  expect((await h1(page)) === 'Sign in', `console login h1: ${await h1(page)}`);

  step('console: wrong password is refused');
  await page.fill('#login', cfg.login);
  await page.fill('#password', 'not-the-password');
  await clickAndLoad(page, page.getByRole('button', { name: 'Sign in' }));
  expect(path(page) === '/console/login', `after a wrong password: ${page.url()}`);
  expect(
    (await page.locator('[role=alert]').innerText()).includes('wrong'),
    'no error message after a wrong password',
  );

  step('console: sign in');
  await page.fill('#login', cfg.login);
  await page.fill('#password', cfg.password);
  await clickAndLoad(page, page.getByRole('button', { name: 'Sign in' }));
  expect(path(page) === '/console/', `after signing in: ${page.url()}`);
  expect(
    (await page.locator('header.top').innerText()).includes(`${cfg.login} (reviewer)`),
    'the header does not name the reviewer',
  );
  await shot(page, 'console-overview');
  await axe(page, 'console-overview');

  step('console: models');
  await clickAndLoad(page, page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Models', exact: true }));
  expect(path(page) === '/console/models', `models: ${page.url()}`);
  await shot(page, 'console-models');
  await axe(page, 'console-models');

  step(`console: model ${cfg.model}`);
  await clickAndLoad(page, page.getByRole('link', { name: `Model ${cfg.model}`, exact: true }));
  expect(path(page) === `/console/models/${cfg.model}`, `model page: ${page.url()}`);
  expect((await h1(page)) === `Model ${cfg.model}`, `model h1: ${await h1(page)}`);
  const auditRow = page.locator('tr', { has: page.getByRole('link', { name: `Audit ${cfg.audit}`, exact: true }) });
  expect((await auditRow.count()) === 1, `no row for Audit ${cfg.audit}`);
  expect((await auditRow.innerText()).includes('failed'), `Audit ${cfg.audit} is not shown as failed`);
  await shot(page, 'console-model');
  await axe(page, 'console-model');

  step(`console: audit ${cfg.audit} report`);
  const reportRes = await Promise.all([
    page.waitForNavigation({ waitUntil: 'load' }),
    page.getByRole('link', { name: `Audit ${cfg.audit}`, exact: true }).click(),
  ]).then(([r]) => r);
  expect(reportRes && reportRes.status() === 200, `audit report status ${reportRes && reportRes.status()}`);
  expect(
    path(page) === `/console/models/${cfg.model}/audits/${cfg.audit}`,
    `audit report: ${page.url()}`,
  );
  const reportText = await page.locator('body').innerText();
  expect(reportText.length > 200, 'the audit report is (nearly) empty');
  await shot(page, 'console-audit-report');
  await page.goBack({ waitUntil: 'load' });
  expect(path(page) === `/console/models/${cfg.model}`, `back: ${page.url()}`);

  step('console: record the override');
  const reason = 'Reviewed by the e2e test: the gap comes from a 12-person group, see ticket 42.';
  await page.fill('#reason', reason);
  await clickAndLoad(page, page.getByRole('button', { name: 'Record override' }));
  expect(path(page) === `/console/models/${cfg.model}`, `after the override: ${page.url()}`);
  const row = page.locator('tr', { has: page.getByRole('link', { name: `Audit ${cfg.audit}`, exact: true }) });
  const cells = row.locator('td');
  const overrideText = (await cells.nth(4).innerText()).trim();
  const m = /^by (\S+) : (.*)$/s.exec(overrideText);
  expect(m, `the audits table shows no override for Audit ${cfg.audit}: ${JSON.stringify(overrideText)}`);
  expect(m[2] === reason, `override reason shown: ${JSON.stringify(m[2])}`);
  expect(m[1] === cfg.login, `override actor shown (the reviewer's login): ${m[1]}`);
  expect((await page.locator('#reason').count()) === 0, 'the override form is still shown');
  out.override = { actor: m[1], reason };
  await shot(page, 'console-model-overridden');
  await axe(page, 'console-model-overridden');

  step('console: a reviewer may not open the audit log');
  await visit(page, '/console/audit', 'console-audit-log-forbidden', { status: 403 });
  expect((await h1(page)) === 'Not allowed', `403 page h1: ${await h1(page)}`);

  step('console: sign out');
  await clickAndLoad(page, page.getByRole('button', { name: 'Sign out' }));
  expect(path(page) === '/console/login', `after signing out: ${page.url()}`);
  const res = await page.goto(cfg.base + '/console/models');
  expect(path(page) === '/console/login' && res.status() === 200, `signed out, /console/models gave ${page.url()}`);

  await ctx.close();
  return out;
}

// ------------------------------------------------------------------------------------------
// 2. A customer uses the privacy center
// ------------------------------------------------------------------------------------------

async function privacy(browser) {
  const ctx = await browser.newContext({ bypassCSP: true, acceptDownloads: true });
  const page = await ctx.newPage();
  current = page;
  const out = {};
  const before = messagesTo(cfg.email).length;

  step('privacy: sign-in page');
  await visit(page, '/privacy/', 'privacy-signin');
  await page.fill('#email', cfg.email);
  await clickAndLoad(page, page.getByRole('button', { name: 'Email me a sign-in link' }));
  const notice = await page.locator('[role=status]').innerText();
  expect(notice.includes('a sign-in link is on its way'), `after asking for a link: ${notice}`);
  await shot(page, 'privacy-link-requested');
  await axe(page, 'privacy-link-requested');

  step('privacy: the email');
  const mail = await waitForMessage(cfg.email, before + 1, 20000);
  expect(mail, `no sign-in email to ${cfg.email} within 20 s`);
  const link = /(https?:\/\/\S+\/privacy\/link\/[A-Za-z0-9_\-]+)/.exec(mail.text || '');
  expect(link, `no /privacy/link/ URL in the email's text: ${JSON.stringify(mail.text)}`);
  const linkUrl = new URL(link[1]);
  expect(linkUrl.origin === new URL(cfg.base).origin, `the link points elsewhere: ${linkUrl.origin}`);
  out.mail_subject = (mail.headers.find(([k]) => k.toLowerCase() === 'subject') || [])[1];

  step('privacy: open the link');
  await visit(page, linkUrl.pathname, 'privacy-link');
  await clickAndLoad(page, page.getByRole('button', { name: 'Sign in' }));
  expect(path(page) === '/privacy/home', `after the link: ${page.url()}`);
  await shot(page, 'privacy-home');
  await axe(page, 'privacy-home');
  const purposes = await page.locator('main fieldset legend').allInnerTexts();
  expect(purposes.length > 0, 'the home page lists no purposes');
  expect(purposes.includes('Personalization'), `personalization is not listed: ${purposes}`);
  out.purposes = purposes;

  step('privacy: link is single-use');
  const again = await ctx.newPage();
  await again.goto(linkUrl.href);
  await Promise.all([again.waitForNavigation(), again.getByRole('button', { name: 'Sign in' }).click()]);
  expect(
    (await again.locator('main').innerText()).includes('already used'),
    'a used link signs in again',
  );
  await again.close();

  step('privacy: personalized recommendations');
  await visit(page, '/privacy/recommendations', 'privacy-recommendations');
  expect(
    (await page.locator('#rec-kind').getAttribute('data-personalized')) === 'true',
    'recommendations are not personalized before withdrawing',
  );

  step('privacy: withdraw personalization');
  await page.goto(cfg.base + '/privacy/home');
  await clickAndLoad(page, page.getByRole('button', { name: 'Withdraw consent for personalization' }));
  expect(path(page) === '/privacy/home', `after withdrawing: ${page.url()}`);
  expect(
    (await page.getByRole('button', { name: 'Give consent for personalization' }).count()) === 1,
    'no "Give consent for personalization" button after withdrawing',
  );
  await shot(page, 'privacy-home-withdrawn');
  await axe(page, 'privacy-home-withdrawn');
  await visit(page, '/privacy/recommendations', 'privacy-recommendations-withdrawn');
  const kind = page.locator('#rec-kind');
  expect(
    (await kind.getAttribute('data-personalized')) === 'false',
    'recommendations are still personalized after withdrawing',
  );
  expect((await kind.innerText()).includes('Not personalized'), 'no "Not personalized" notice');

  step('privacy: download');
  await page.goto(cfg.base + '/privacy/home');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('navigation', { name: 'Privacy center' }).getByRole('link', { name: 'Download my data' }).click(),
  ]);
  expect(download.suggestedFilename() === 'my-data.json', `download name ${download.suggestedFilename()}`);
  const doc = JSON.parse(readFileSync(await download.path(), 'utf8'));
  const consents = (doc.tables && doc.tables.consents) || [];
  const withdrawn = consents.filter((c) => c.purpose === 'personalization' && c.action === 'withdrawn');
  expect(
    withdrawn.some((c) => c.source === 'privacy_center'),
    `no withdrawn personalization consent from privacy_center in the download: ${JSON.stringify(withdrawn)}`,
  );
  out.subject = doc.subject;
  out.download = {
    tables: Object.keys(doc.tables || {}),
    consents: consents.length,
    decisions: (doc.tables.decisions || []).length,
  };

  step('privacy: contest a decision');
  await visit(page, '/privacy/decisions', 'privacy-decisions');
  const lead = page
    .locator('section.decision')
    .filter({ has: page.getByRole('heading', { name: /Score of your interest in an offer/ }) })
    .filter({ has: page.getByRole('button', { name: 'Contest this decision' }) })
    .first();
  expect((await lead.count()) === 1, 'no contestable lead-score decision');
  const heading = (await lead.getByRole('heading').innerText()).trim();
  const statement = 'I never asked for this offer and the score is wrong.';
  await lead.locator('textarea').fill(statement);
  await clickAndLoad(page, lead.getByRole('button', { name: 'Contest this decision' }));
  expect(path(page) === '/privacy/decisions', `after contesting: ${page.url()}`);
  const contested = page
    .locator('section.decision')
    .filter({ has: page.getByRole('heading', { name: heading, exact: true }) })
    .first();
  const ctext = await contested.innerText();
  expect(ctext.includes('You contested this decision'), `after contesting, the decision says: ${ctext}`);
  out.contested = heading;
  await shot(page, 'privacy-decisions-contested');
  await axe(page, 'privacy-decisions-contested');

  step('privacy: talk to a person');
  await visit(page, '/privacy/contact', 'privacy-contact');
  const message = 'Please tell me which shop staff can see my data.';
  await page.fill('#message', message);
  await clickAndLoad(page, page.getByRole('button', { name: 'Send to a person' }));
  expect(path(page) === '/privacy/contact', `after sending: ${page.url()}`);
  const list = await page.locator('main ul').innerText();
  expect(list.includes(message) && list.includes('waiting for an answer'), `my messages: ${list}`);
  await shot(page, 'privacy-contact-sent');
  await axe(page, 'privacy-contact-sent');

  step('privacy: delete my account');
  await visit(page, '/privacy/delete', 'privacy-delete');
  await page.getByLabel('I understand that this cannot be undone').check();
  await clickAndLoad(page, page.getByRole('button', { name: 'Delete my account' }));
  expect((await h1(page)) === 'Your account was deleted', `after deleting: ${await h1(page)}`);
  const receipt = await page.locator('[role=status]').innerText();
  expect(/Receipt \S+/.test(receipt) && receipt.includes('encryption key was destroyed'), `receipt: ${receipt}`);
  out.receipt = /Receipt (\S+)/.exec(receipt)[1];
  await shot(page, 'privacy-deleted');
  await axe(page, 'privacy-deleted');

  step('privacy: the session ended');
  await page.goto(cfg.base + '/privacy/home');
  expect(path(page) === '/privacy/', `after deletion /privacy/home shows ${page.url()}`);
  expect((await h1(page)) === 'Your privacy', `sign-in page h1: ${await h1(page)}`);
  await shot(page, 'privacy-signed-out');

  step('privacy: no link for a deleted address');
  const sent = messagesTo(cfg.email).length;
  await page.fill('#email', cfg.email);
  await clickAndLoad(page, page.getByRole('button', { name: 'Email me a sign-in link' }));
  const notice2 = await page.locator('[role=status]').innerText();
  expect(notice2 === notice, `the answer differs for a deleted address: ${notice2}`);
  // The server sends before it answers; wait a little longer anyway.
  await sleep(1500);
  expect(messagesTo(cfg.email).length === sent, 'a sign-in link was emailed to a deleted account');
  out.emails = sent;

  await ctx.close();
  return out;
}

// ------------------------------------------------------------------------------------------

const started = Date.now();
let browser;
let code = 0;
try {
  browser = await chromium.launch({
    executablePath: cfg.chromium,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  await underCsp(browser);
  result.console = await console_(browser);
  result.privacy = await privacy(browser);
  result.ok = true;
} catch (e) {
  code = 1;
  result.error = `${e instanceof Expectation ? '' : 'unexpected: '}${e && e.message ? e.message : e}`;
  result.failed_step = result.steps[result.steps.length - 1];
  if (current && !current.isClosed()) {
    try {
      await shot(current, 'FAILED');
      result.failed_url = current.url();
    } catch {
      // the screenshot is a courtesy
    }
  }
} finally {
  if (browser) await browser.close();
}
result.ms = Date.now() - started;
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(code);
