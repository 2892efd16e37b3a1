import { AmqpBackend, InMemoryBackend, NatsBackend, RedisStreamsBackend } from '@app/messaging';
import { serviceConfigFromEnv, type ServiceEnvSpec } from './service-config';

const SPEC: ServiceEnvSpec = {
  portVariable: 'TEST_PORT',
  defaultPort: 3000,
  serviceVariable: 'TEST_SERVICE_NAME',
  connectionName: 'test-service',
  defaultSchema: 'test_service',
};

/** Constructing a backend connects nothing: these only read what `BROKER_URL` chose. */
describe('serviceConfigFromEnv: the scheme of BROKER_URL picks the backend', () => {
  it.each([
    [{}, AmqpBackend],
    [{ BROKER_URL: 'amqp://guest:guest@127.0.0.1:5672' }, AmqpBackend],
    [{ BROKER_URL: 'amqps://app:secret@rmq.example:5671/prod' }, AmqpBackend],
    [{ BROKER_URL: 'redis://127.0.0.1:6379' }, RedisStreamsBackend],
    [{ BROKER_URL: 'rediss://:secret@redis.example:6380' }, RedisStreamsBackend],
    [{ BROKER_URL: 'nats://127.0.0.1:4222' }, NatsBackend],
    [{ BROKER_URL: 'tls://nats.example:4222' }, NatsBackend],
    [{ BROKER: 'memory', BROKER_URL: 'redis://127.0.0.1:6379' }, InMemoryBackend],
  ])('%j -> %p', (env, backend) => {
    expect(serviceConfigFromEnv(SPEC, env).backend).toBeInstanceOf(backend);
  });

  it('refuses an unknown scheme, naming the ones it knows, without printing the password', () => {
    const read = () => serviceConfigFromEnv(SPEC, { BROKER_URL: 'kafka://user:secret@kafka:9092' });
    expect(read).toThrow(
      "BROKER_URL 'kafka://user:***@kafka:9092' has an unsupported scheme 'kafka://'. The scheme picks the broker: amqp://, amqps://, redis://, rediss://, nats://, tls://.",
    );
    expect(read).not.toThrow(/secret/);
  });

  it('refuses a URL without a scheme', () => {
    expect(() => serviceConfigFromEnv(SPEC, { BROKER_URL: '127.0.0.1:5672' })).toThrow(
      "BROKER_URL '127.0.0.1:5672' is not a URL. The scheme picks the broker:",
    );
  });

  it.each(['redis://127.0.0.1:6379', 'nats://127.0.0.1:4222'])(
    'hands BROKER_NAMESPACE to %s as its namespace (its own option check refuses a bad one)',
    (url) => {
      expect(() =>
        serviceConfigFromEnv(SPEC, { BROKER_URL: url, BROKER_NAMESPACE: 'a b' }),
      ).toThrow(/namespace "a b"|namespace must be/);
      expect(() =>
        serviceConfigFromEnv(SPEC, { BROKER_URL: url, BROKER_NAMESPACE: 'shop-a' }),
      ).not.toThrow();
    },
  );
});
