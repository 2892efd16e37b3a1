import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { waitFor } from '../../testing/wait-for';
import { renderPage } from './index';
import {
  fakeLetter,
  HOSTILE_BODY,
  startFakeDashboard,
  type FakeDashboard,
} from './page-server.fixture';

/**
 * The dashboard's page in a real browser (Debian's Chromium), against a fake server that speaks
 * dashboard-api.ts and sends the dashboard's CSP. One browser for the file, a context per test.
 */
const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && !process.env.CI) {
  process.stderr.write(
    `\n*** page.browser.spec.ts SKIPPED: no browser at ${CHROMIUM} (apt-get install chromium). ` +
      'In CI (CI set) this is a failure. ***\n\n',
  );
}
const browserDescribe = haveChromium || process.env.CI ? describe : describe.skip;

/** Browser code (the spec has no DOM types): CSP violations, kept in `window.__csp`. */
const RECORD_CSP_VIOLATIONS = `window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.violatedDirective));`;

const TYPE_ERROR = 'fp-type-error';
const DECLINED = 'fp-declined';

function cannedLetters(): FakeDashboard['letters'] {
  return [
    fakeLetter('l-1', TYPE_ERROR),
    fakeLetter('l-2', TYPE_ERROR),
    fakeLetter('l-3', TYPE_ERROR),
    fakeLetter('l-xss', DECLINED, {
      topic: 'payments.charge',
      errorClass: 'PaymentDeclined',
      error: 'PaymentDeclined: card <b>4242</b> declined',
      headers: { 'x-note': '<img src=x onerror="window.__pwned=3">', 'x-attempt': 2 },
      contentType: 'text/html',
      body: HOSTILE_BODY,
      bodyBytes: HOSTILE_BODY.length,
    }),
    fakeLetter('l-bin', DECLINED, {
      topic: 'payments.charge',
      errorClass: 'PaymentDeclined',
      error: 'PaymentDeclined: card 5555 declined',
      contentType: 'application/octet-stream',
      body: 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7',
      bodyEncoding: 'base64',
      bodyBytes: 1_048_576,
      bodyTruncated: true,
    }),
  ];
}

describe('renderPage', () => {
  it('escapes every value it writes', () => {
    const html = renderPage({
      basePath: '/x"><script>',
      service: '<script>alert(1)</script>',
      csrfToken: '"><b>',
      readOnly: false,
      pollMs: Number.NaN,
    });
    expect(html).not.toContain('<script>alert');
    expect(html).not.toContain('"><b>');
    expect(html).not.toContain('/x"><script>');
    expect(html).toContain('<meta name="dashboard-poll-ms" content="5000">');
    expect(html).not.toMatch(/<script>|style=|\son\w+=/);
  });
});

browserDescribe('the dashboard page (Chromium)', () => {
  let browser: Browser;
  let context: BrowserContext | undefined;
  let fake: FakeDashboard | undefined;
  let problems: string[];

  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  });
  afterAll(async () => {
    await browser?.close();
  });
  afterEach(async () => {
    await context?.close();
    await fake?.close();
    context = undefined;
    fake = undefined;
  });

  /** Opens the page on a fresh fake server; console errors, page errors and CSP violations go to `problems`. */
  async function open(
    options: Parameters<typeof startFakeDashboard>[0] & { width?: number } = {},
  ): Promise<Page> {
    fake = await startFakeDashboard({ letters: cannedLetters(), ...options });
    context = await browser.newContext({
      viewport: { width: options.width ?? 1200, height: 900 },
    });
    const page = await context.newPage();
    page.setDefaultTimeout(5000);
    problems = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || /Content.Security.Policy/i.test(m.text()))
        problems.push(`console: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    await page.addInitScript({ content: RECORD_CSP_VIOLATIONS });
    await page.goto(fake.url);
    await page.locator('[data-testid="dead-letter-group"]').first().waitFor();
    return page;
  }

  async function clean(page: Page, allow: RegExp = /$^/): Promise<void> {
    expect(await page.evaluate('window.__csp')).toEqual([]);
    expect(problems.filter((p) => !allow.test(p))).toEqual([]);
  }

  const group = (page: Page, fp: string) =>
    page.locator(`[data-testid="dead-letter-group"][data-fingerprint="${fp}"]`);
  const row = (page: Page, id: string) =>
    page.locator(`[data-testid="dead-letter-row"][data-id="${id}"]`);

  it('renders the connections, the handlers and the dead-letter groups', async () => {
    const page = await open();
    await page.locator('[data-testid="handler-row"]').first().waitFor();
    const handlers = await page
      .locator('[data-testid="handler-row"]')
      .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-handler')));
    expect(handlers).toEqual(['OrdersHandler.onCreated', 'PaymentsHandler.charge']);
    const charge = page.locator('[data-handler="PaymentsHandler.charge"]');
    expect(await charge.locator('.badge').textContent()).toBe('circuit open');
    expect(await page.locator('header h1').textContent()).toBe('billing <svc>');
    const events = page.locator('[data-connection="events"]');
    expect(await events.textContent()).toMatch(/reconnecting.*down.*blocked/);
    expect(await page.locator('[data-testid="outbox"]').textContent()).toContain(
      'Last error: Channel closed by <broker>',
    );
    const fps = await page
      .locator('[data-testid="dead-letter-group"]')
      .evaluateAll((gs) => gs.map((g) => g.getAttribute('data-fingerprint')));
    expect(fps).toEqual([TYPE_ERROR, DECLINED]);
    const first = group(page, TYPE_ERROR);
    expect(await first.textContent()).toContain('TypeError');
    expect(await first.getByRole('button', { name: 'Replay', exact: true }).count()).toBe(1);
    expect(await row(page, 'l-1').isVisible()).toBe(false);
    await first.getByRole('button', { name: 'Show letters' }).click();
    expect(await row(page, 'l-1').textContent()).toMatch(/orders\.created.*3 min/);
    await clean(page);
  });

  it('Replay on a letter POSTs to its URL with the token, then drops it from the list', async () => {
    const page = await open();
    await group(page, TYPE_ERROR).getByRole('button', { name: 'Show letters' }).click();
    await row(page, 'l-2').getByRole('button', { name: 'Replay', exact: true }).click();
    await page.locator('[data-testid="status"]', { hasText: 'Replayed letter l-2' }).waitFor();
    expect(fake!.posts).toHaveLength(1);
    const post = fake!.posts[0];
    expect(post.path).toBe('/api/dead-letters/l-2/replay');
    expect(post.headers['x-csrf-token']).toBe(fake!.token);
    expect(post.headers['content-type']).toBe('application/json');
    await row(page, 'l-2').waitFor({ state: 'detached' });
    expect(await row(page, 'l-1').isVisible()).toBe(true);
    await clean(page);
  });

  it('Replay on a group shows the progress of its job until it is finished, failures listed', async () => {
    const page = await open();
    await group(page, TYPE_ERROR).getByRole('button', { name: 'Replay', exact: true }).click();
    const job = page.locator('[data-testid="job"]');
    await job.filter({ hasText: 'Replaying 2/3…' }).waitFor();
    expect(fake!.posts.map((p) => p.path)).toEqual([`/api/groups/${TYPE_ERROR}/replay`]);
    expect(fake!.posts[0].headers['x-csrf-token']).toBe(fake!.token);
    fake!.finishJobs();
    await job.filter({ hasText: 'Replay finished: 2 of 3 replayed, 1 failed:' }).waitFor();
    expect(await job.locator('.failures').textContent()).toBe('l-1: Broker refused <publish>');
    await waitFor(async () => (await group(page, TYPE_ERROR).textContent())!.startsWith('1'));
    await clean(page);
  });

  it('Purge asks first, and sends the fingerprint as confirmation', async () => {
    const page = await open();
    const purge = group(page, DECLINED).getByRole('button', { name: 'Purge', exact: true });
    const asked: string[] = [];
    page.once('dialog', (d) => {
      asked.push(d.message());
      void d.dismiss();
    });
    await purge.click();
    expect(asked[0]).toMatch(/^Delete all 2 letters of this group for good\?/);
    expect(fake!.posts).toEqual([]);
    page.once('dialog', (d) => void d.accept());
    await purge.click();
    await page
      .locator('[data-testid="job"]', { hasText: 'Purge finished: 2 of 2 purged.' })
      .waitFor();
    expect(fake!.posts[0].path).toBe(`/api/groups/${DECLINED}/purge`);
    expect(fake!.posts[0].body).toEqual({ confirm: DECLINED });
    await group(page, DECLINED).waitFor({ state: 'detached' });
    await clean(page);
  });

  it('shows a hostile body and headers as text, and a truncated base64 body as such', async () => {
    const page = await open();
    await group(page, DECLINED).getByRole('button', { name: 'Show letters' }).click();
    await row(page, 'l-xss').getByRole('button', { name: 'View', exact: true }).click();
    const body = page.locator('[data-testid="letter-body"]');
    await body.waitFor();
    expect(await body.textContent()).toBe(HOSTILE_BODY);
    expect(await page.locator('.headers').textContent()).toContain('<img src=x onerror=');
    expect(await row(page, 'l-xss').locator('.err-text').textContent()).toContain('<b>4242</b>');
    await row(page, 'l-bin').getByRole('button', { name: 'View', exact: true }).click();
    const note = page.locator('.body-note').nth(1);
    await note.waitFor();
    expect(await note.textContent()).toBe(
      '(base64: the body is bytes, not text; truncated, 1,048,576 bytes in all)',
    );
    expect(await page.evaluate('typeof window.__pwned')).toBe('undefined');
    expect(await page.locator('img').count()).toBe(0);
    await clean(page);
  });

  it('says what failed in the status line (404, 403) until dismissed', async () => {
    const page = await open({ pollMs: 60_000 }); // no refresh: the list stays as it was read
    await group(page, TYPE_ERROR).getByRole('button', { name: 'Show letters' }).click();
    fake!.letters.splice(0, 1); // l-1 is replayed elsewhere before the operator clicks
    await row(page, 'l-1').getByRole('button', { name: 'Replay', exact: true }).click();
    const status = page.locator('[data-testid="status"]');
    await status.filter({ hasText: 'Not found (404): No such dead letter' }).waitFor();
    await status.getByRole('button', { name: 'Dismiss this message' }).click();
    await status.waitFor({ state: 'hidden' });
    fake!.rotateToken();
    await row(page, 'l-2').getByRole('button', { name: 'Replay', exact: true }).click();
    await status.filter({ hasText: 'Refused (403)' }).waitFor();
    expect(await status.textContent()).toContain('reload it');
    await clean(page, /Failed to load resource: the server responded with a status of 40[34]/);
  });

  it('readOnly: no Replay or Purge at all, a read-only note, View still there', async () => {
    const page = await open({ readOnly: true });
    await page.locator('[data-testid="read-only"]').waitFor();
    await group(page, TYPE_ERROR).getByRole('button', { name: 'Show letters' }).click();
    expect(await page.getByRole('button', { name: /Replay|Purge/ }).count()).toBe(0);
    expect(await page.locator('button', { hasText: /Replay|Purge/ }).count()).toBe(0);
    await row(page, 'l-1').getByRole('button', { name: 'View', exact: true }).click();
    await page.locator('[data-testid="letter-body"]').waitFor();
    await clean(page);
  });

  it('keeps open groups and letters open across refreshes, and shows new letters', async () => {
    const page = await open({ pollMs: 100 });
    await group(page, TYPE_ERROR).getByRole('button', { name: 'Show letters' }).click();
    await row(page, 'l-1').getByRole('button', { name: 'View', exact: true }).click();
    await page.locator('[data-testid="letter-body"]').waitFor();
    fake!.letters.push(
      fakeLetter('l-4', TYPE_ERROR),
      fakeLetter('l-9', 'fp-new', { errorClass: 'RangeError' }),
    );
    await group(page, 'fp-new').waitFor();
    await row(page, 'l-4').waitFor();
    expect(await row(page, 'l-4').isVisible()).toBe(true);
    expect(await page.locator('[data-testid="letter-body"]').isVisible()).toBe(true);
    expect(await page.locator('#dl-total').textContent()).toBe('7');
    // A hidden tab stops polling; shown again, it reads at once.
    const setHidden = (hidden: boolean) =>
      page.evaluate(`
        Object.defineProperty(document, 'hidden', { value: ${hidden}, configurable: true });
        Object.defineProperty(document, 'visibilityState', {
          value: '${hidden ? 'hidden' : 'visible'}',
          configurable: true,
        });
        document.dispatchEvent(new Event('visibilitychange'));
      `);
    await setHidden(true);
    await page.locator('main[data-polling="paused"]').waitFor({ state: 'attached' });
    const before = fake!.gets.length;
    await setHidden(false);
    await waitFor(() => fake!.gets.length > before, { message: 'a read once the tab is shown' });
    await page.locator('main[data-polling="on"]').waitFor({ state: 'attached' });
    await clean(page);
  });

  it('fits a 390px-wide phone: nothing wider than the screen', async () => {
    const page = await open({ width: 390 });
    for (const fp of [TYPE_ERROR, DECLINED])
      await group(page, fp).getByRole('button', { name: 'Show letters' }).click();
    await row(page, 'l-bin').getByRole('button', { name: 'View', exact: true }).click();
    await page.locator('[data-testid="letter-body"]').waitFor();
    await page.locator('[data-testid="handler-row"]').first().waitFor();
    const widths: { doc: number; body: number; view: number } = await page.evaluate(`({
      doc: document.documentElement.scrollWidth,
      body: document.body.scrollWidth,
      view: window.innerWidth,
    })`);
    expect(widths.doc).toBeLessThanOrEqual(widths.view);
    expect(widths.body).toBeLessThanOrEqual(widths.view);
    expect(
      await row(page, 'l-1').getByRole('button', { name: 'Replay', exact: true }).isVisible(),
    ).toBe(true);
    await clean(page);
  });
});
