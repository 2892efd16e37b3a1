/**
 * Exactly-once effects of the sample services on RabbitMQ + PostgreSQL (issue 10): the inbox, the
 * transactional outbox and the gateway's idempotency key under faults. Counted in the database.
 *
 * | id | fault                                                                 | pass bar                                   |
 * | -- | --------------------------------------------------------------------- | ------------------------------------------ |
 * | E1 | 1,000 orders; two payment-service processes; one SIGKILLed mid-flow   | every order final as its token says; one   |
 * |    | (then restarted); every connection of the vhost closed twice          | charge per PAID order, none for a decline; |
 * |    |                                                                       | 1,000 ledger rows; outboxes empty          |
 * | E2 | the broker stopped (`stop_app`, private node) while an order is placed | 201 at once; health shows it waiting; PAID |
 * |    |                                                                       | once the broker is back; one charge         |
 * | E3 | a relay killed between the broker's confirm and the removal of its row | the row stays and is published again; the  |
 * |    |                                                                       | duplicate is delivered and the inbox drops |
 * |    |                                                                       | it: the handler ran once                   |
 *
 * Everything runs in a private vhost (E1, E3) or on a private node (E2), in schemas of this run that
 * are dropped at the end.
 */
import { Controller, type INestApplication, type Type } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Payload } from '@nestjs/microservices';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import {
  AmqpBackend,
  Consume,
  MessageProducer,
  MessagingHealthService,
  MessagingModule,
  MessagingPublisher,
  MessagingServer,
  MessagingTransactions,
  OutboxRelay,
  PostgresMessageStore,
} from '@app/messaging';
import { waitFor } from '@app/messaging/testing';
import { createPaymentApp } from '../../apps/payment-service/src/payment-service.app';
import {
  dropSchema,
  sqlOnTestDatabase,
  TEST_DATABASE_URL,
  uniqueSchema,
} from '../../libs/messaging/src/testing/postgres.fixture';
import type { ServiceProcess } from '../support/service-process';
import {
  createVhost,
  freePort,
  queueStats,
  type RabbitNode,
  startRabbitNode,
  type Vhost,
} from './support/broker';
import {
  countEffects,
  pendingOrders,
  placeOrders,
  startOrderService,
  startPaymentProcess,
} from './support/sample-services';

const ROOT = join(__dirname, '..', '..');
const base = uniqueSchema('nm_once');
const schemas: string[] = [];
const schema = (name: string) => {
  schemas.push(`${base}_${name}`);
  return `${base}_${name}`;
};
const urlOf = (app: INestApplication) =>
  `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}`;

afterAll(async () => {
  for (const s of schemas) await dropSchema(s);
});

describe('faults: exactly-once effects on the shared broker (private vhost)', () => {
  let vhost: Vhost;
  const processes: ServiceProcess[] = [];
  const apps: INestApplication[] = [];

  beforeAll(async () => {
    vhost = await createVhost('once');
  });
  afterAll(async () => {
    await Promise.all(apps.map((app) => app.close()));
    await Promise.all(processes.map((p) => p.stopWithin(10_000)));
    await vhost?.remove();
  }, 60_000);

  it('E1 1,000 orders, two payment-service processes, one SIGKILLed, connections cut: one charge per paid order', async () => {
    const [orderSchema, paymentSchema] = [schema('orders'), schema('payments')];
    const payment1 = await startPaymentProcess(vhost.url, paymentSchema, 'payment-1');
    processes.push(payment1);
    processes.push(await startPaymentProcess(vhost.url, paymentSchema, 'payment-2'));
    const order = await startOrderService(vhost.url, orderSchema);
    apps.push(order);
    const faults: string[] = [];
    let restarting: Promise<void> | undefined;
    const started = Date.now();

    const tokenOf = await placeOrders(urlOf(order), 1000, 10, async (placed) => {
      if (placed === 300) {
        faults.push(`SIGKILL payment-1 (pid ${payment1.pid}) after ${placed} orders`);
        restarting = payment1.stop('SIGKILL').then(async () => {
          processes.push(await startPaymentProcess(vhost.url, paymentSchema, 'payment-1b'));
        });
      }
      if (placed === 500 || placed === 750) {
        faults.push(`every vhost connection closed after ${placed} orders`);
        await vhost.closeConnections('faults E1: connection cut');
      }
    });
    await restarting;
    await waitFor(async () => (await pendingOrders(orderSchema)) === 0, {
      timeoutMs: 180_000,
      intervalMs: 500,
      message: 'every order in its final state',
    });
    let counts = await countEffects(orderSchema, paymentSchema, tokenOf);
    await waitFor(
      async () =>
        (counts = await countEffects(orderSchema, paymentSchema, tokenOf)).outboxLeft === 0,
      { timeoutMs: 30_000, intervalMs: 500, message: 'both outboxes empty' },
    );
    process.stdout.write(
      `[faults] E1 exactly-once: ${JSON.stringify({ ...counts, faults, seconds: (Date.now() - started) / 1000 })}\n`,
    );
    expect(tokenOf.size).toBe(1000);
    expect(counts).toMatchObject({
      wrongStatus: 0,
      chargedTwice: 0,
      paidWithoutOneCharge: 0,
      ledgerRows: 1000,
      outboxLeft: 0,
    });
    expect(counts.charges).toBe(counts.orders.PAID);
    expect(counts.orders.PAID + counts.orders.PAYMENT_FAILED).toBe(1000);
  });

  it('E3 a relay killed between confirm and removal publishes again; the inbox drops the duplicate', async () => {
    const relaySchema = schema('relay');
    const topic = `once.relay.${base}`;
    let handled = 0;
    let witnessed = 0;
    @Controller()
    class Once {
      @Consume(topic, { idempotent: true })
      handle() {
        handled++;
      }
    }
    @Controller()
    class Witness {
      @Consume(topic)
      handle(@Payload() _body: unknown) {
        witnessed++;
      }
    }
    const store = () =>
      new PostgresMessageStore({
        connectionString: TEST_DATABASE_URL,
        schema: relaySchema,
        migrate: true,
      });
    const start = async (service: string, controllers: Type[], relay: boolean) => {
      const moduleRef = await Test.createTestingModule({
        imports: [
          MessagingModule.forRoot({
            service,
            backend: new AmqpBackend({ url: vhost.url }),
            store: store(),
            outbox: { relay },
          }),
        ],
        controllers,
      }).compile();
      const app = moduleRef.createNestApplication({ logger: ['error'] });
      app.connectMicroservice({ strategy: app.get(MessagingServer) });
      apps.push(app);
      await app.startAllMicroservices();
      await app.init();
      return app;
    };
    await start('once-consumer', [Once], false);
    await start('once-witness', [Witness], false);
    const writer = await start('once-writer', [], false);
    const messageId = await writer
      .get(MessagingTransactions)
      .run(() =>
        new MessageProducer({ topic }, writer.get(MessagingPublisher)).publish({ order: 1 }),
      );

    const child = spawn(
      process.execPath,
      [
        '-r',
        join(ROOT, 'scripts', 'faults-register.js'),
        join(__dirname, 'support', 'relay-crash-child.ts'),
        JSON.stringify({ url: vhost.url, schema: relaySchema }),
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exit = await new Promise<NodeJS.Signals | null>((resolve) =>
      child.once('exit', (_code, signal) => resolve(signal)),
    );
    expect({ exit, output }).toMatchObject({
      exit: 'SIGKILL',
      output: expect.stringContaining(`CONFIRMED ${messageId}`),
    });
    const outboxRows = () =>
      sqlOnTestDatabase(`SELECT message_id FROM "${relaySchema}".messaging_outbox`);
    // Confirmed by the broker, but the relay died before its commit: the row is still there.
    expect(await outboxRows()).toEqual([{ message_id: messageId }]);
    await waitFor(() => witnessed === 1 && handled === 1, { message: 'the first copy handled' });

    expect(await writer.get(OutboxRelay).flush()).toBe(1);
    expect(await outboxRows()).toEqual([]);
    await waitFor(() => witnessed === 2, { message: 'the second copy delivered' });
    await waitFor(
      async () =>
        (await queueStats(vhost.ctl, vhost.name)).find((q) => q.name === `once-consumer.${topic}`)
          ?.messages === 0,
      { message: 'the duplicate acknowledged by the idempotent consumer' },
    );
    expect(handled).toBe(1);
    process.stdout.write(
      `[faults] E3 relay crash: ${JSON.stringify({ deliveries: witnessed, handled })}\n`,
    );
  });
});

describe('faults: exactly-once effects with the broker stopped (private RabbitMQ node)', () => {
  let node: RabbitNode;
  const apps: INestApplication[] = [];

  beforeAll(async () => {
    const [port, distPort] = [await freePort(), await freePort()];
    node = await startRabbitNode({ name: `once-${process.pid}`, port, distPort });
  }, 180_000);
  afterAll(async () => {
    await Promise.all(apps.map((app) => app.close()));
    await node?.stop();
  }, 120_000);

  it('E2 an order placed while the broker is stopped answers 201 and is PAID once the broker is back', async () => {
    const [orderSchema, paymentSchema] = [schema('e2_orders'), schema('e2_payments')];
    const order = await startOrderService(node.url, orderSchema);
    apps.push(order);
    const payment = await createPaymentApp({
      backend: new AmqpBackend({ url: node.url }),
      database: { url: TEST_DATABASE_URL, schema: paymentSchema },
      logger: ['error'],
    });
    apps.push(payment);
    const place = async () => {
      const response = await fetch(`${urlOf(order)}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ customerId: 'c-e2', amount: 42, cardToken: 'tok_ok' }),
      });
      return { status: response.status, body: (await response.json()) as { id: string } };
    };
    const status = async (id: string) =>
      ((await (await fetch(`${urlOf(order)}/orders/${id}`)).json()) as { status: string }).status;

    const before = await place();
    await waitFor(async () => (await status(before.body.id)) === 'PAID', { timeoutMs: 30_000 });

    await node.ctl(['stop_app']);
    const stoppedAt = Date.now();
    const during = await place();
    const answeredMs = Date.now() - stoppedAt;
    expect(during.status).toBe(201);
    expect(await status(during.body.id)).toBe('PENDING');
    const health = order.get(MessagingHealthService);
    await waitFor(() => health.check().outbox?.pending === 1, {
      timeoutMs: 15_000,
      message: 'health shows the event waiting in the outbox',
    });
    expect(health.check().status).toBe('down');

    await node.ctl(['start_app']);
    const backAt = Date.now();
    await waitFor(async () => (await status(during.body.id)) === 'PAID', {
      timeoutMs: 60_000,
      intervalMs: 200,
      message: 'the order placed during the outage is PAID',
    });
    const [charges] = await sqlOnTestDatabase(
      `SELECT count(*)::int AS n FROM "${paymentSchema}".gateway_charges WHERE order_id = $1`,
      [during.body.id],
    );
    expect(charges.n).toBe(1);
    process.stdout.write(
      `[faults] E2 broker stopped: ${JSON.stringify({ answeredMs, paidAfterBrokerBackMs: Date.now() - backAt })}\n`,
    );
  });
});
