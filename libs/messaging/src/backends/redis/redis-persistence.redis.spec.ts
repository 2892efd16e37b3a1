/**
 * What Redis keeps across its own restart, against a `redis-server` of the test's own (own port, own
 * directory), SIGKILLed and started again by PID while a backend publishes and consumes.
 *
 * | Redis                    | at connect                  | after SIGKILL + restart                                   |
 * | ------------------------ | --------------------------- | --------------------------------------------------------- |
 * | `appendonly no`, no save | one warning: persists nothing | an error log and a `RedisDataLostError` event, once      |
 * | `appendonly yes`         | nothing said                | every confirmed publish is delivered; nothing said         |
 */
import { Logger, type LoggerService } from '@nestjs/common';
import type { Delivery } from '../../backend/broker-backend.interface';
import { waitFor } from '../../testing/wait-for';
import { RedisDataLostError } from './redis-persistence';
import { type PrivateRedis, startPrivateRedis } from './redis-server.fixture';
import { ACK, routeSpec, textMessage } from './redis-spec.fixture';
import { RedisStreamsBackend } from './index';

/** Lines the backends logged, by level. */
const logged: { level: string; message: string }[] = [];
const capture = (level: string) => (message: unknown) =>
  void logged.push({ level, message: String(message) });
const logger: LoggerService = {
  log: capture('log'),
  warn: capture('warn'),
  error: capture('error'),
  debug: () => undefined,
  verbose: () => undefined,
};
const said = (level: string, pattern: RegExp) =>
  logged.filter((line) => line.level === level && pattern.test(line.message));

let redis: PrivateRedis | undefined;
let open: RedisStreamsBackend[] = [];

beforeAll(() => Logger.overrideLogger(logger));
afterAll(() => Logger.overrideLogger(false));
beforeEach(() => void (logged.length = 0));
afterEach(async () => {
  const backends = open;
  open = [];
  await Promise.all(backends.map((b) => b.close()));
  await redis?.remove();
  redis = undefined;
});

/** A backend on the private Redis; it and the errors it reported are closed/kept for the test. */
function backend(url: string): { backend: RedisStreamsBackend; errors: Error[] } {
  const b = new RedisStreamsBackend({ url, prefix: 'durable', blockMs: 100, claimIdleMs: 500 });
  open.push(b);
  const errors: Error[] = [];
  b.on('error', (error) => void errors.push(error));
  return { backend: b, errors };
}

async function restart(server: PrivateRedis): Promise<void> {
  await server.kill();
  await server.restart();
}

describe('RedisStreamsBackend and the persistence of Redis', () => {
  it('warns at connect that nothing persists, and reports the loss after a restart, once', async () => {
    redis = await startPrivateRedis(['--appendonly', 'no']);
    const { backend: b, errors } = backend(redis.url);
    await b.connect();
    expect(said('warn', /persists nothing.*appendonly yes/)).toHaveLength(1);

    const handled: string[] = [];
    await b.subscribe(routeSpec('svc', ['orders']), async (delivery: Delivery) => {
      handled.push(delivery.messageId);
      return ACK;
    });
    await b.publish(textMessage({ topic: 'orders' }, 'before'), { mandatory: true });
    await waitFor(() => handled.length === 1);
    await restart(redis);

    await waitFor(() => errors.some((e) => e instanceof RedisDataLostError), {
      message: 'a RedisDataLostError event',
    });
    expect(said('error', /came back without this backend's data.*may have been lost/)).toHaveLength(
      1,
    );
    // Consuming again: the groups were declared again and a new message flows.
    await waitFor(() => b.consumerStates().every((state) => state.attached));
    const after = textMessage({ topic: 'orders' }, 'after');
    await waitFor(() =>
      b.publish(after, { mandatory: true }).then(
        () => true,
        () => false,
      ),
    );
    await waitFor(() => handled.includes(after.messageId));
    // The reconnection and the vanished group both checked: one report.
    expect(errors.filter((e) => e instanceof RedisDataLostError)).toHaveLength(1);
  }, 60_000);

  it('with appendonly yes, delivers every confirmed publish across a SIGKILL and restart', async () => {
    redis = await startPrivateRedis(['--appendonly', 'yes']);
    const server = redis;
    const consumer = backend(server.url);
    const publisher = backend(server.url);
    await consumer.backend.connect();
    await publisher.backend.connect();
    const handled = new Set<string>();
    await consumer.backend.subscribe(routeSpec('svc', ['orders']), async (d: Delivery) => {
      handled.add(d.messageId);
      return ACK;
    });

    const confirmed = new Set<string>();
    let restarted: Promise<void> | undefined;
    const publishOne = async (n: number) => {
      const message = textMessage({ topic: 'orders' }, `m${n}`);
      await publisher.backend.publish(message, { mandatory: true }).then(
        () => void confirmed.add(message.messageId),
        () => undefined, // not confirmed: not promised either
      );
      if (confirmed.size >= 300) restarted ??= restart(server);
    };
    for (let n = 0; n < 1_000; n += 20) {
      await Promise.all(Array.from({ length: 20 }, (_, i) => publishOne(n + i)));
    }
    await restarted;
    expect(confirmed.size).toBeGreaterThan(300);

    await waitFor(() => [...confirmed].every((id) => handled.has(id)), {
      timeoutMs: 30_000,
      message: `every confirmed message handled (${confirmed.size} confirmed)`,
    });
    expect(said('warn', /persists nothing|RDB snapshots|AOF off/)).toEqual([]);
    expect(
      [...consumer.errors, ...publisher.errors].filter((e) => e instanceof RedisDataLostError),
    ).toEqual([]);
  }, 90_000);
});
