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
    expect(read).toThrow(/BROKER_URL must start with amqp:\/\/, amqps:\/\/, redis:\/\//);
    expect(read).toThrow(/'kafka:\/\/\*\*\*@kafka:9092'/);
    expect(read).not.toThrow(/secret/);
  });

  it('refuses a URL without a scheme', () => {
    expect(() => serviceConfigFromEnv(SPEC, { BROKER_URL: '127.0.0.1:5672' })).toThrow(
      /BROKER_URL must start with/,
    );
  });

  it.each(['redis://127.0.0.1:6379', 'nats://127.0.0.1:4222'])(
    'hands BROKER_EXCHANGE to %s as its prefix (its own option check refuses a bad one)',
    (url) => {
      expect(() => serviceConfigFromEnv(SPEC, { BROKER_URL: url, BROKER_EXCHANGE: 'a b' })).toThrow(
        /prefix/,
      );
      expect(() =>
        serviceConfigFromEnv(SPEC, { BROKER_URL: url, BROKER_EXCHANGE: 'shop-a' }),
      ).not.toThrow();
    },
  );
});
