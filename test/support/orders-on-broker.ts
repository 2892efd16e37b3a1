import type { BrokerBackend } from '@app/messaging';
import { waitFor } from '@app/messaging/testing';
import { describeCardTokenFlows } from './card-token-flows';
import { type SampleServices, startSampleServices } from './sample-services';
import { builtMain, ensureBuilt, freePort, ServiceProcess } from './service-process';

/** A broker the sample services run on in {@link describeOrdersOnBroker}. */
export interface SampleBroker {
  /** Shown in test names: `Redis Streams`, `NATS JetStream`. */
  readonly name: string;
  /** `BROKER_URL` as the services read it: its scheme picks the backend. */
  readonly url: string;
  /** This run's namespace (`BROKER_NAMESPACE`: exchange, key prefix, stream prefix): unique per run. */
  readonly namespace: string;
  /** A backend on `url` in `namespace`, for the services started in this process. */
  backend(): BrokerBackend;
  /** Deletes everything `namespace` left on the broker. */
  cleanup(): Promise<void>;
}

/**
 * order-service and payment-service on `broker` (SPEC section 4, "the end-to-end order flows run on
 * all of them"): the card-token flows with both services in this process, then both as OS processes
 * that pick their backend from the scheme of `BROKER_URL`, as `nest start` does.
 */
export function describeOrdersOnBroker(broker: SampleBroker): void {
  afterAll(() => broker.cleanup(), 30_000);

  describe(`order-service + payment-service in process (${broker.name})`, () => {
    let services: SampleServices;

    beforeAll(async () => {
      services = await startSampleServices(() => broker.backend(), broker.namespace);
    }, 30_000);

    afterAll(async () => {
      await services?.close();
    });

    describeCardTokenFlows(() => services);
  });

  describe(`order-service + payment-service as OS processes on ${broker.url}`, () => {
    const started: ServiceProcess[] = [];

    beforeAll(async () => {
      await Promise.all([ensureBuilt('order-service'), ensureBuilt('payment-service')]);
    }, 120_000);

    afterAll(async () => {
      await Promise.all(started.map((child) => child.stopWithin(10_000)));
    }, 30_000);

    it('BROKER_URL picks the backend: the four card tokens reach their outcome across processes', async () => {
      const vars = {
        BROKER_URL: broker.url,
        BROKER_NAMESPACE: broker.namespace,
        ORDER_SERVICE_NAME: `${broker.namespace}-proc-orders`,
        PAYMENT_SERVICE_NAME: `${broker.namespace}-proc-payments`,
        ORDER_PORT: String(await freePort()),
        PAYMENT_PORT: String(await freePort()),
      };
      const orders = `http://127.0.0.1:${vars.ORDER_PORT}`;
      const payments = `http://127.0.0.1:${vars.PAYMENT_PORT}`;
      const start = (app: 'order-service' | 'payment-service'): ServiceProcess => {
        const child = new ServiceProcess(app, builtMain(app), vars);
        started.push(child);
        return child;
      };
      const orderService = start('order-service');
      const paymentService = start('payment-service');
      await Promise.all([
        orderService.answers(`${orders}/orders/none`, 404),
        paymentService.answers(`${payments}/health`, 200),
      ]);

      const placed = await Promise.all(
        ['tok_ok', 'tok_flaky', 'tok_declined', 'tok_broken'].map(async (cardToken) => {
          const res = await fetch(`${orders}/orders`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ customerId: 'c-proc', amount: 10, cardToken }),
          });
          expect(res.status).toBe(201);
          return { id: ((await res.json()) as { id: string }).id, cardToken };
        }),
      );
      const expected: Record<string, string> = {
        tok_ok: 'PAID',
        tok_flaky: 'PAID',
        tok_declined: 'PAYMENT_FAILED',
        tok_broken: 'PENDING',
      };
      const broken = placed.find((o) => o.cardToken === 'tok_broken')!;
      const statuses = new Map<string, string>();
      let letters: Array<{ payload?: { orderId?: string }; reason?: string; attempts?: number }> =
        [];
      await waitFor(
        async () => {
          for (const order of placed) {
            const res = await fetch(`${orders}/orders/${order.id}`);
            statuses.set(order.cardToken, ((await res.json()) as { status: string }).status);
          }
          letters = (await (await fetch(`${payments}/dead-letters`)).json()) as typeof letters;
          return (
            placed.every((o) => statuses.get(o.cardToken) === expected[o.cardToken]) &&
            letters.some((l) => l.payload?.orderId === broken.id)
          );
        },
        { timeoutMs: 30_000, intervalMs: 100, message: 'every order to reach its outcome' },
      ).catch((error: Error) => {
        throw new Error(
          `${error.message}: ${JSON.stringify([...statuses])}\n${paymentService.log}`,
        );
      });
      expect(Object.fromEntries(statuses)).toEqual(expected);
      expect(letters.find((l) => l.payload?.orderId === broken.id)).toMatchObject({
        reason: 'max-attempts',
        attempts: 4,
      });

      const health = (await (await fetch(`${payments}/health`)).json()) as { status: string };
      expect(health.status).toBe('ok');

      // SIGTERM: Nest's shutdown hooks close the app gracefully, then re-raise the signal to exit.
      // The one error either logged is payment-service dead-lettering tok_broken.
      for (const child of [paymentService, orderService]) {
        expect(await child.stop('SIGTERM')).toEqual({ code: null, signal: 'SIGTERM' });
      }
      const errorsOf = (child: ServiceProcess) =>
        child.log.split('\n').filter((line) => /\bERROR\b/.test(line));
      expect(errorsOf(orderService)).toEqual([]);
      expect(errorsOf(paymentService)).toEqual([
        expect.stringMatching(/dead-lettered \(max-attempts\): gateway error 502 for tok_broken/),
      ]);
    }, 60_000);
  });
}
