import { randomUUID } from 'node:crypto';
import { AmqpBackend } from '@app/messaging';
import { waitFor } from '@app/messaging/testing';
import { describeCardTokenFlows } from './support/card-token-flows';
import {
  BROKER_URL,
  deleteBrokerObjects,
  queuesContaining,
} from '../libs/messaging/src/testing/rabbitmq.fixture';
import { type SampleServices, startSampleServices } from './support/sample-services';
import { builtMain, ensureBuilt, freePort, ServiceProcess } from './support/service-process';
import * as amqplib from 'amqplib';
import { main as cli } from '../libs/messaging/src/cli/main';
import { captureIo } from '../libs/messaging/src/cli/cli.fixture';

/**
 * order-service and payment-service against a real RabbitMQ (SPEC section 4): the card-token flows
 * in process, then both services as separate OS processes surviving a SIGKILL of payment-service.
 * Every exchange and service name carries this run's id; afterAll deletes what the run declared.
 */
const run = `oe2e${randomUUID().slice(0, 8)}`;
const exchange = `${run}-x`;

afterAll(async () => {
  await deleteBrokerObjects(run);
  expect(await queuesContaining(run)).toEqual([]);
}, 30_000);

describe('order-service + payment-service in process (RabbitMQ)', () => {
  let services: SampleServices;

  beforeAll(async () => {
    services = await startSampleServices(() => new AmqpBackend({ url: BROKER_URL, exchange }), run);
  }, 30_000);

  afterAll(async () => {
    await services?.close();
  });

  describeCardTokenFlows(() => services);
});

describe('order-service + payment-service as OS processes (RabbitMQ)', () => {
  const started: ServiceProcess[] = [];

  const env = async (): Promise<Record<string, string>> => ({
    BROKER_URL,
    BROKER_NAMESPACE: exchange,
    ORDER_SERVICE_NAME: `${run}-proc-orders`,
    PAYMENT_SERVICE_NAME: `${run}-proc-payments`,
    ORDER_PORT: String(await freePort()),
    PAYMENT_PORT: String(await freePort()),
  });

  const start = (
    app: 'order-service' | 'payment-service',
    vars: Record<string, string>,
  ): ServiceProcess => {
    const child = new ServiceProcess(app, builtMain(app), vars);
    started.push(child);
    return child;
  };

  beforeAll(async () => {
    await Promise.all([ensureBuilt('order-service'), ensureBuilt('payment-service')]);
  }, 120_000);

  afterAll(async () => {
    await Promise.all(started.map((child) => child.stopWithin(10_000)));
  }, 30_000);

  it('survives a SIGKILL of payment-service while orders are in flight: every order reaches its final state', async () => {
    const vars = await env();
    const orders = `http://127.0.0.1:${vars.ORDER_PORT}`;
    const payments = `http://127.0.0.1:${vars.PAYMENT_PORT}`;
    const orderService = start('order-service', vars);
    let paymentService = start('payment-service', vars);
    await Promise.all([
      orderService.answers(`${orders}/orders/none`, 404),
      paymentService.answers(`${payments}/health`, 200),
    ]);

    const place = async (cardToken: string): Promise<{ id: string; cardToken: string }> => {
      const res = await fetch(`${orders}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ customerId: 'c-proc', amount: 10, cardToken }),
      });
      const body = (await res.json()) as { id: string; status: string };
      expect({ status: res.status, body: body.status }).toEqual({ status: 201, body: 'PENDING' });
      return { id: body.id, cardToken };
    };
    const tokens = ['tok_ok', 'tok_flaky', 'tok_declined', 'tok_flaky', 'tok_ok', 'tok_flaky'];
    const placed = await Promise.all(tokens.map(place));

    // tok_flaky charges need at least two backoffs (~0.5 s), so they are surely still in flight.
    expect(await paymentService.stop('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });
    const pendingAtKill = await Promise.all(
      placed.map(
        async (o) =>
          ((await (await fetch(`${orders}/orders/${o.id}`)).json()) as { status: string }).status,
      ),
    );
    expect(pendingAtKill).toContain('PENDING');

    // The work queue is durable: orders placed while payment-service is down are accepted and wait.
    placed.push(...(await Promise.all(['tok_ok', 'tok_declined', 'tok_flaky'].map(place))));

    paymentService = start('payment-service', vars);
    await paymentService.answers(`${payments}/health`, 200);

    const expected = (token: string) => (token === 'tok_declined' ? 'PAYMENT_FAILED' : 'PAID');
    const statuses = new Map<string, string>();
    await waitFor(
      async () => {
        for (const order of placed) {
          const res = await fetch(`${orders}/orders/${order.id}`);
          statuses.set(order.id, ((await res.json()) as { status: string }).status);
        }
        return placed.every((o) => statuses.get(o.id) === expected(o.cardToken));
      },
      { timeoutMs: 30_000, intervalMs: 100, message: 'every order to reach its final state' },
    ).catch((error: Error) => {
      throw new Error(`${error.message}: ${JSON.stringify([...statuses])}\n${paymentService.log}`);
    });
    for (const order of placed) expect(statuses.get(order.id)).toBe(expected(order.cardToken));

    const letters = (await (await fetch(`${payments}/dead-letters`)).json()) as unknown[];
    expect(letters).toEqual([]);

    // SIGTERM: Nest's shutdown hooks close the app gracefully, then re-raise the signal to exit.
    for (const child of [paymentService, orderService]) {
      expect(await child.stop('SIGTERM')).toEqual({ code: null, signal: 'SIGTERM' });
      expect(child.log).not.toMatch(/\bERROR\b/);
    }
  }, 60_000);

  it('operations: /metrics counts the card tokens, the dead-letter CLI replays tok_broken, /health follows the payment consumer', async () => {
    const vars = await env();
    const orders = `http://127.0.0.1:${vars.ORDER_PORT}`;
    const payments = `http://127.0.0.1:${vars.PAYMENT_PORT}`;
    const orderService = start('order-service', vars);
    const paymentService = start('payment-service', vars);
    await Promise.all([
      orderService.answers(`${orders}/orders/none`, 404),
      paymentService.answers(`${payments}/health`, 200),
    ]);
    const metric = async (line: RegExp): Promise<number> => {
      const text = await (await fetch(`${payments}/metrics`)).text();
      return Number(line.exec(text)?.[1] ?? 0);
    };
    const handler = 'handler="OrderCreatedConsumer.onOrderCreated",topic="order.created"';
    const acked = new RegExp(`messaging_consumed_total\\{${handler},outcome="ack"\\} (\\d+)`);
    const deadLettered = new RegExp(
      `messaging_consumed_total\\{${handler},outcome="dead-letter"\\} (\\d+)`,
    );
    expect(await metric(acked)).toBe(0);

    for (const cardToken of ['tok_ok', 'tok_flaky', 'tok_declined', 'tok_broken']) {
      const res = await fetch(`${orders}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ customerId: 'c-ops', amount: 10, cardToken }),
      });
      expect(res.status).toBe(201);
    }
    await waitFor(async () => (await metric(acked)) === 3 && (await metric(deadLettered)) === 1, {
      timeoutMs: 15_000,
      message: 'three orders handled and tok_broken dead-lettered, counted on /metrics',
    });
    expect(await metric(/messaging_retried_total\{[^}]*\} (\d+)/)).toBeGreaterThanOrEqual(2);

    // The dead-letter CLI, as an operator runs it (in process here: main() of the bin).
    const service = vars.PAYMENT_SERVICE_NAME;
    const dlq = async (...args: string[]) => {
      const captured = captureIo();
      const code = await cli(
        ['dlq', ...args, '--service', service, '--exchange', exchange],
        captured.io,
      );
      return { code, out: captured.stdout(), err: captured.err.join('\n') };
    };
    const table = await dlq('list');
    expect(table.code).toBe(0);
    expect(table.out).toMatch(/order\.created\s+max-attempts.*tok_broken/);
    const listed = JSON.parse((await dlq('list', '--json')).out) as {
      letters: { id: string; payload: { cardToken: string } }[];
    };
    expect(listed.letters.map((l) => l.payload.cardToken)).toEqual(['tok_broken']);
    const replayed = await dlq('replay', listed.letters[0].id, '--json');
    expect({ code: replayed.code, body: JSON.parse(replayed.out) }).toMatchObject({
      code: 0,
      body: { replayed: 1, failed: [] },
    });
    // tok_broken still fails: it is retried and dead-lettered again, a second time on the counter.
    await waitFor(async () => (await metric(deadLettered)) === 2, { timeoutMs: 15_000 });

    // The payment consumer gone: its queue deleted and taken by another connection's exclusive
    // queue, so the service cannot subscribe again. /health turns 503 after the grace (5 s), and
    // 200 once the queue is free again.
    const queue = `${service}.order.created`;
    const conn = await amqplib.connect(BROKER_URL);
    try {
      const ch = await conn.createChannel();
      await ch.deleteQueue(queue);
      await ch.assertQueue(queue, { exclusive: true });
      await waitFor(async () => (await fetch(`${payments}/health`)).status === 503, {
        timeoutMs: 15_000,
        message: '/health down while the payment consumer is gone',
      });
      const down = (await (await fetch(`${payments}/health`)).json()) as {
        error: { messaging: { handlers: { handler: string; attached: boolean }[] } };
      };
      expect(down.error.messaging.handlers).toEqual([
        expect.objectContaining({
          handler: 'OrderCreatedConsumer.onOrderCreated',
          attached: false,
        }),
      ]);
    } finally {
      await conn.close();
    }
    await waitFor(async () => (await fetch(`${payments}/health`)).status === 200, {
      timeoutMs: 30_000,
      message: '/health up again once the consumer is back',
    });
  }, 90_000);
});
