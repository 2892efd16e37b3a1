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
    BROKER_EXCHANGE: exchange,
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

  /** Resolves once `url` answers with `status`; fails with the process's log if it died or timed out. */
  const ready = async (child: ServiceProcess, url: string, status: number): Promise<void> => {
    await waitFor(
      async () => {
        if (!child.running) throw new Error(`${child.name} exited during start-up:\n${child.log}`);
        return (await fetch(url).catch(() => undefined))?.status === status;
      },
      {
        timeoutMs: 20_000,
        intervalMs: 50,
        message: `${child.name} to answer ${url}\n${child.log}`,
      },
    );
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
      ready(orderService, `${orders}/orders/none`, 404),
      ready(paymentService, `${payments}/health`, 200),
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
    await ready(paymentService, `${payments}/health`, 200);

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
});
