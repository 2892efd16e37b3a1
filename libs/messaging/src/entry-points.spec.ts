/**
 * What each entry point of the package exports, by name: a name added or removed here is a change of
 * the public API, made on purpose. Internals are exported from none of them. The package's README
 * lists the entry points in one table, checked here against the `exports` map.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as amqp from './backends/amqp';
import * as memory from './backends/memory';
import * as nats from './backends/nats';
import * as redis from './backends/redis';
import * as backend from './backend';
import * as dashboard from './dashboard';
import * as main from './index';
import * as testing from './testing';

const valuesOf = (entry: object): string[] => Object.keys(entry).sort();

describe('entry points', () => {
  it('the main entry exports every name SPEC.md pins, and what applications need', () => {
    // SPEC section 2 (BrokerBackend is a type: checked below).
    const pinned = [
      'MessagingModule',
      'MessagingServer',
      'MessagingClient',
      'MessageContext',
      'Consume',
      'Producer',
      'MessageProducer',
      'InMemoryBackend',
      'AmqpBackend',
      'RedisStreamsBackend',
      'NatsBackend',
      'UnrecoverableError',
      'UnroutableError',
    ];
    for (const name of pinned) expect(main).toHaveProperty(name, expect.any(Function));
    expect(valuesOf(main)).toEqual(
      [
        ...pinned,
        'BackendClosedError',
        'BatchContext',
        'BatchFailure',
        'DeadLetterService',
        'InMemoryBroker',
        'MalformedMessageError',
        'MessagingConfigError',
        'MessagingError',
        'MessagingHeaders',
        'MessagingHealthService',
        'MessagingPublisher',
        'PayloadTooLargeError',
        'PublishBackpressureError',
        'PublishFailedError',
        'PublishTimeoutError',
        'RemoteHandlerError',
        'RequestTimeoutError',
        'getProducerToken',
        'InMemoryMessageStore',
        'PostgresMessageStore',
        'MessagingTransactions',
        'OutboxRelay',
        'postgresMigrationSql',
        'MESSAGING_METRICS',
        'PrometheusMessagingMetrics',
        'currentMessage',
        'parseTraceparent',
        'asyncApiDocument',
        'backendFromUrl',
        'BROKER_URL_SCHEMES',
      ].sort(),
    );
    const typed: main.BrokerBackend = new main.InMemoryBackend();
    expect(typed.name).toBe('memory');
  });

  it('the backend entries export their backend and nothing else', () => {
    expect(valuesOf(amqp)).toEqual(['AmqpBackend']);
    expect(valuesOf(memory)).toEqual(['InMemoryBackend', 'InMemoryBroker']);
    expect(amqp.AmqpBackend).toBe(main.AmqpBackend);
    expect(valuesOf(redis)).toEqual(['RedisStreamsBackend']);
    expect(redis.RedisStreamsBackend).toBe(main.RedisStreamsBackend);
    expect(valuesOf(nats)).toEqual(['NatsBackend']);
    expect(nats.NatsBackend).toBe(main.NatsBackend);
  });

  it('/testing exports the helpers of tests', () => {
    expect(valuesOf(testing)).toEqual([
      'FAST_RETRY',
      'MessagingTestKit',
      'STUB_SERVICE',
      'SettleTimeoutError',
      'TestClock',
      'gate',
      'runBackendContract',
      'runExactlyOnceContract',
      'runForeignIdContract',
      'runStoreContract',
      'useContractHarness',
      'waitFor',
    ]);
  });

  it('/backend exports what a backend author needs', () => {
    expect(valuesOf(backend)).toEqual(
      [
        'BackendEventHub',
        'EXCLUSIVE_TAKEOVER_MS',
        'MessagingHeaders',
        'PendingRequest',
        'PendingRequests',
        'attemptOf',
        'deadLetterHeaders',
        'deadLetterQueueName',
        'decideDeliveryLimit',
        'guardDeadLetters',
        'producerHeaders',
        'readDeadLetter',
        'replayHeaders',
        'retryHeaders',
        'topicMatches',
        'topicOf',
      ].sort(),
    );
  });

  it('/dashboard exports the dashboard module and the header of its actions', () => {
    expect(valuesOf(dashboard)).toEqual(['CSRF_HEADER', 'MessagingDashboardModule']);
  });

  it("the package README's table lists exactly the entry points of the `exports` map", () => {
    const pkg = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as {
      exports: Record<string, unknown>;
    };
    const exported = Object.keys(pkg.exports)
      .filter((key) => key !== './package.json')
      .map((key) => (key === '.' ? 'nest-messaging' : `nest-messaging/${key.slice(2)}`));
    const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');
    const listed = [...readme.matchAll(/^\| `(nest-messaging(?:\/[\w-]+)?)` +\|/gm)].map(
      (m) => m[1],
    );
    expect(listed).toEqual(exported);
  });
});
