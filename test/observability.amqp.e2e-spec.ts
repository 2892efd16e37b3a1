/**
 * Tracing and health over a real RabbitMQ (issue 11): a consumer span is a child of its producer's
 * span across a retry; health reports each handler's consumer and turns `down` (terminus: 503) when
 * one is gone for `health.consumerGraceMs`. Names carry the run id; afterAll deletes them.
 */
import { randomUUID } from 'node:crypto';
import { Controller, Get } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import * as amqplib from 'amqplib';
import request from 'supertest';
import {
  AmqpBackend,
  Consume,
  MessagingHealthService,
  MessagingModule,
  MessagingServer,
} from '@app/messaging';
import { MessagingHealthIndicator } from '@app/messaging/terminus';
import { waitFor } from '@app/messaging/testing';
import { BROKER_URL, deleteBrokerObjects } from '../libs/messaging/src/testing/rabbitmq.fixture';
import { describeTracing } from './support/observability-scenarios';
import { RecordedMetrics } from './support/recorded-metrics';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const RUN = randomUUID().slice(0, 8);
const EXCHANGE = `obs-${RUN}`;

describeTracing(
  'rabbitmq',
  () => new AmqpBackend({ url: BROKER_URL, exchange: EXCHANGE }),
  `obs-${RUN}`,
);

describe('health over RabbitMQ (terminus)', () => {
  const service = `obs-${RUN}-health`;
  const topic = `obs${RUN}.health`;

  @Controller()
  class Handler {
    @Consume(topic)
    handle() {}
  }

  @Controller()
  class HealthController {
    constructor(
      private readonly health: HealthCheckService,
      private readonly messaging: MessagingHealthIndicator,
    ) {}
    @Get('health')
    @HealthCheck()
    check() {
      return this.health.check([() => this.messaging.isHealthy('messaging')]);
    }
  }

  afterAll(() => deleteBrokerObjects(RUN), 30_000);

  it('reports each handler attached, and turns down once its consumer is gone', async () => {
    // The queue is declared by a first app; the app under test may not declare (assertTopology:
    // false), so once the queue is deleted its consumer cannot come back.
    const declare = async (assertTopology: boolean) => {
      const moduleRef = await Test.createTestingModule({
        imports: [
          MessagingModule.forRoot({
            service,
            backend: new AmqpBackend({ url: BROKER_URL, exchange: EXCHANGE, assertTopology }),
            health: { consumerGraceMs: 300 },
          }),
          TerminusModule.forRoot({ logger: false }),
        ],
        controllers: [Handler, HealthController],
        providers: [MessagingHealthIndicator],
      }).compile();
      const app = moduleRef.createNestApplication({ logger: false });
      app.connectMicroservice({ strategy: app.get(MessagingServer) }, { inheritAppConfig: true });
      await app.startAllMicroservices();
      await app.init();
      return app;
    };
    await (await declare(true)).close();
    const app = await declare(false);
    try {
      const up = await request(app.getHttpServer()).get('/health').expect(200);
      expect(up.body.info.messaging).toMatchObject({
        status: 'up',
        connection: 'connected',
        handlers: [{ handler: 'Handler.handle', attached: true }],
      });
      const health = app.get(MessagingHealthService);
      const queueName = health.check().handlers?.[0].queue as string;
      expect(queueName).toContain(service);

      const conn = await amqplib.connect(BROKER_URL);
      try {
        const ch = await conn.createChannel();
        await ch.deleteQueue(queueName);
        await ch.close();
      } finally {
        await conn.close();
      }
      await waitFor(
        async () => (await request(app.getHttpServer()).get('/health')).status === 503,
        {
          message: 'health down once the consumer has been gone for 300 ms',
        },
      );
      const down = await request(app.getHttpServer()).get('/health').expect(503);
      expect(down.body.error.messaging).toMatchObject({
        status: 'down',
        connection: 'connected',
        handlers: [
          { handler: 'Handler.handle', attached: false, detachedSince: expect.any(Number) },
        ],
      });
    } finally {
      await app.close();
    }
  });
});

describe('metrics over RabbitMQ', () => {
  it('counts a reconnect after the broker closed the connection', async () => {
    const metrics = new RecordedMetrics();
    const connectionName = `obs-${RUN}-reconnect`;
    const moduleRef = await Test.createTestingModule({
      imports: [
        MessagingModule.forRoot({
          service: `obs-${RUN}-metrics`,
          backend: new AmqpBackend({ url: BROKER_URL, exchange: EXCHANGE, connectionName }),
          metrics,
        }),
      ],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    try {
      expect(metrics.get('reconnects', { backend: 'amqp', connection: 'default' })).toBeUndefined();
      // Closes, as the broker's operator would, only this connection (the broker is shared).
      const run = promisify(execFile);
      const { stdout } = await run('rabbitmqctl', [
        '-q',
        'list_connections',
        'pid',
        'client_properties',
      ]);
      const pid = stdout
        .split('\n')
        .find((line) => line.includes(connectionName))
        ?.split('\t')[0];
      expect(pid).toBeDefined();
      await run('rabbitmqctl', ['close_connection', pid as string, 'test: a reconnect']);
      await waitFor(
        () => metrics.get('reconnects', { backend: 'amqp', connection: 'default' }) === 1,
        {
          message: 'the reconnect counted',
        },
      );
    } finally {
      await app.close();
    }
  });
});
