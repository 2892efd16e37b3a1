/**
 * A consumer as its own OS process, for `redis-crash.redis.spec.ts`: a `RedisStreamsBackend`
 * subscription whose handler works for a while, then records the message id in the set
 * `<prefix>:handled` (before returning, so the acknowledgement follows the record). Prints `READY`
 * once consuming. Configuration: a JSON {@link CrashChildConfig} in argv[2]. Run with
 * `node -r ./scripts/faults-register.js libs/messaging/src/backends/redis/redis-crash-consumer.fixture.ts '<json>'`.
 */
import Redis from 'ioredis';
import { RedisStreamsBackend } from './index';

export interface CrashChildConfig {
  url: string;
  prefix: string;
  service: string;
  topic: string;
  concurrency: number;
  /** Handler work time, uniformly in [min, max] ms. */
  handlerMs: [number, number];
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2]) as CrashChildConfig;
  const ledger = new Redis(config.url);
  const backend = new RedisStreamsBackend({ url: config.url, prefix: config.prefix, blockMs: 100 });
  await backend.connect();
  await backend.subscribe(
    {
      service: config.service,
      queue: `${config.service}.work`,
      topics: [config.topic],
      external: false,
      concurrency: config.concurrency,
    },
    async (delivery) => {
      const [min, max] = config.handlerMs;
      await new Promise((resolve) => setTimeout(resolve, min + Math.random() * (max - min)));
      await ledger.sadd(`${config.prefix}:handled`, delivery.messageId);
      return { action: 'ack' };
    },
  );
  process.stdout.write('READY\n');
}

main().catch((error: unknown) => {
  process.stderr.write(`${String(error)}\n`);
  process.exit(1);
});
