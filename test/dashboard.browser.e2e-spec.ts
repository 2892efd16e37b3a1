/**
 * The dashboard of the sample services in a real browser (issue 24, SPEC §7): Debian's Chromium,
 * headless, driven by playwright-core, against order-service and payment-service started in this
 * process on one in-memory broker, payment-service's dashboard behind its HTTP Basic guard
 * (`DASHBOARD_PASSWORD`). With DASHBOARD_SCREENSHOT=<file.png> it also writes the screenshot the
 * README shows (`DASHBOARD_SCREENSHOT=docs/images/dashboard.png npx jest --selectProjects browser
 * test/dashboard.browser.e2e-spec.ts`).
 */
import type { AddressInfo } from 'node:net';
import type { INestApplication } from '@nestjs/common';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import request from 'supertest';
import {
  DeadLetterService,
  InMemoryBackend,
  InMemoryBroker,
  MessagingPublisher,
} from '@app/messaging';
import { waitFor } from '@app/messaging/testing';
import { createOrderApp } from '../apps/order-service/src/order-service.app';
import { createPaymentApp } from '../apps/payment-service/src/payment-service.app';
import { SimulatedPaymentGateway } from '../apps/payment-service/src/payments/payment-gateway';
import { placeOrder, waitForStatus } from './support/sample-services';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CREDENTIALS = { username: 'ops', password: 'correct horse battery staple' };

describe('the dashboard of the sample services, in headless Chromium', () => {
  const broker = new InMemoryBroker();
  let order: INestApplication;
  let payment: INestApplication;
  let dashboard: string;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  /** What the page reported that it should not have: errors, CSP violations. */
  const problems: string[] = [];

  beforeAll(async () => {
    order = await createOrderApp({
      backend: new InMemoryBackend({ broker }),
      service: 'order-service',
      logger: false,
    });
    payment = await createPaymentApp({
      backend: new InMemoryBackend({ broker }),
      service: 'payment-service',
      dashboard: { user: CREDENTIALS.username, password: CREDENTIALS.password },
      // Fast retries: tok_broken reaches its dead letter in about a second.
      retry: { maxAttempts: 2, backoff: { initialDelayMs: 50 } },
      logger: false,
      port: 0,
    });
    const { port } = payment.getHttpServer().address() as AddressInfo;
    dashboard = `http://127.0.0.1:${port}/messaging`;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    context = await browser.newContext({
      httpCredentials: CREDENTIALS,
      viewport: { width: 1280, height: 900 },
    });
    page = await context.newPage();
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`);
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await Promise.allSettled([payment?.close(), order?.close()]);
  }, 30_000);

  it('refuses a request without credentials, the page and its API alike', async () => {
    for (const path of ['', '/api/overview', '/assets/app.js']) {
      const response = await fetch(`${dashboard}${path}`);
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toMatch(/^Basic /);
    }
    const wrong = Buffer.from(`${CREDENTIALS.username}:nope`).toString('base64');
    const refused = await fetch(dashboard, { headers: { authorization: `Basic ${wrong}` } });
    expect(refused.status).toBe(401);
  });

  it("lists the sample's handler with its topic, queue and state", async () => {
    await page.goto(dashboard);
    const row = page.locator(
      '[data-testid="handler-row"][data-handler="OrderCreatedConsumer.onOrderCreated"]',
    );
    await row.waitFor();
    await expect(row.textContent()).resolves.toContain('order.created');
    await expect(row.textContent()).resolves.toContain('payment-service.order.created');
    await expect(row.textContent()).resolves.toMatch(/attached/i);
  });

  it('shows a tok_broken dead letter in its group, and Replay replays it', async () => {
    const id = await placeOrder(order, 'tok_broken');
    const deadLetters = payment.get(DeadLetterService);
    await waitFor(async () => (await deadLetters.list()).length === 1, {
      message: 'the tok_broken order dead-lettered',
    });
    const group = page.locator('[data-testid="dead-letter-group"]', { hasText: 'tok_broken' });
    await group.waitFor();
    await expect(group.textContent()).resolves.toMatch(/PaymentGatewayError|Error/);
    const [letter] = await deadLetters.list();
    const row = page.locator(`[data-testid="dead-letter-row"][data-id="${letter.id}"]`);
    await group.getByRole('button', { name: 'Show letters' }).click();
    await row.waitFor();
    if (process.env.DASHBOARD_SCREENSHOT) {
      await page.screenshot({ path: process.env.DASHBOARD_SCREENSHOT, fullPage: true });
    }
    // The gateway is fixed: the replayed letter is charged, and the order is paid.
    payment.get(SimulatedPaymentGateway).repair('tok_broken');
    await row.getByRole('button', { name: 'Replay', exact: true }).click();
    await waitForStatus(order, id, 'PAID');
    await row.waitFor({ state: 'detached' });
    expect(await deadLetters.list()).toEqual([]);
  });

  it('shows a dead letter whose body is a script as text, without running it', async () => {
    const script = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">';
    await payment.get(MessagingPublisher).publish({ topic: 'order.created' }, script);
    const deadLetters = payment.get(DeadLetterService);
    await waitFor(async () => (await deadLetters.list()).length === 1, {
      message: 'the script dead-lettered (it is no order)',
    });
    const [letter] = await deadLetters.list();
    const row = page.locator(`[data-testid="dead-letter-row"][data-id="${letter.id}"]`);
    const group = page.locator('[data-testid="dead-letter-group"]', { has: row });
    await page.locator('[data-testid="dead-letter-group"]').first().waitFor();
    await page
      .locator('[data-testid="dead-letter-group"]')
      .first()
      .getByRole('button', { name: 'Show letters' })
      .click();
    await row.getByRole('button', { name: 'View', exact: true }).click();
    const body = page.locator('[data-testid="letter-body"]');
    await body.waitFor();
    await expect(body.textContent()).resolves.toContain(script);
    await expect(
      page.evaluate(() => (globalThis as { __pwned?: number }).__pwned),
    ).resolves.toBeUndefined();
    expect(await group.count()).toBe(1);
    expect(await deadLetters.purge()).toBe(1);
  });

  it('reported no error and no blocked resource', () => {
    expect(problems).toEqual([]);
  });

  it('answers its health with the dashboard mounted', async () => {
    await request(payment.getHttpServer()).get('/health').expect(200);
  });
});
