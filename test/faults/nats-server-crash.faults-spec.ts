/**
 * A private nats-server killed (SIGKILL) under load and started again (issue 20, T10). nats-server
 * 2.9 writes a consumer's state behind: after the crash it delivers again, as first deliveries
 * (delivery count 1), messages it had delivered and that were acked since. The library cannot make
 * the server keep those acks; what it promises is that such a delivery reaches the handler marked
 * `redelivered` (`nats-rollback.ts`), as any other that may have been handled before, and that
 * nothing confirmed is lost:
 *
 * | case | fault                                                             | expected                                  |
 * | ---- | ----------------------------------------------------------------- | ----------------------------------------- |
 * | C1   | 400 publishes at 300/s to one consumer instance, the server killed at the 200th and started again; again until a crash rolled the consumer back (at most 4 times) | every id handled; every handling of an id after its first marked `redelivered` |
 */
import { Logger } from '@nestjs/common';
import { NatsBackend } from '@app/messaging/nats';
import { waitFor } from '@app/messaging/testing';
import { startNatsServer, type PrivateNatsServer } from './support/nats-server';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('faults: NATS deliveries after a server crash (issue 20, T10)', () => {
  let server: PrivateNatsServer;
  const open: NatsBackend[] = [];

  const backend = (options: ConstructorParameters<typeof NatsBackend>[0] = {}): NatsBackend => {
    const b = new NatsBackend({ servers: server.url, prefix: 'crash', ...options });
    b.on('error', () => undefined);
    open.push(b);
    return b;
  };

  beforeAll(async () => {
    Logger.overrideLogger(false);
    server = await startNatsServer();
  }, 60_000);

  afterAll(async () => {
    await Promise.all(open.splice(0).map((b) => b.close()));
    await server?.remove();
  }, 30_000);

  it('C1: marks redelivered what a crashed server delivers again, and loses nothing', async () => {
    const consumer = backend({ ackWaitMs: 2_000 });
    const handlings: Array<{ id: string; redelivered: boolean }> = [];
    await consumer.subscribe(
      { service: 'c1', queue: 'c1.work', topics: ['c1.work'], external: false, concurrency: 8 },
      async (d) => {
        handlings.push({
          id: (JSON.parse(d.body.toString()) as { id: string }).id,
          redelivered: d.redelivered,
        });
        // A little work, so that deliveries and acks are in flight when the server dies.
        await sleep(3);
        return { action: 'ack' };
      },
    );
    const producer = backend();
    const ids: string[] = [];
    const duplicated = () => {
      const seen = new Set<string>();
      return handlings.filter(({ id }) => seen.has(id) || !seen.add(id));
    };
    let crashes = 0;
    for (; crashes < 4 && duplicated().length === 0; crashes++) {
      const published: Array<Promise<void>> = [];
      let restart: Promise<void> | undefined;
      const start = Date.now();
      for (let i = 0; i < 400; i++) {
        const due = start + (i * 1000) / 300;
        if (due > Date.now()) await sleep(due - Date.now());
        if (i === 200) {
          restart = (async () => {
            await server.stop('SIGKILL');
            await sleep(500);
            await server.start();
          })();
        }
        const id = `c${crashes}-m${i}`;
        ids.push(id);
        published.push(
          producer.publish(
            {
              topic: 'c1.work',
              body: Buffer.from(JSON.stringify({ id })),
              headers: {},
              messageId: id,
              timestamp: Date.now(),
            },
            { mandatory: true },
          ),
        );
      }
      await restart;
      await Promise.all(published);
      const lost = () => {
        const handled = new Set(handlings.map(({ id }) => id));
        return ids.filter((id) => !handled.has(id));
      };
      await waitFor(() => lost().length === 0, {
        timeoutMs: 30_000,
        message: 'every published id handled',
      }).catch(() => undefined);
      expect(lost()).toEqual([]);
    }
    // The crash rolled the consumer back: acked messages came again (else the spec proves nothing).
    process.stdout.write(`C1: ${duplicated().length} duplicates after ${crashes} crash(es)\n`);
    expect(duplicated().length).toBeGreaterThan(0);
    expect(duplicated().filter(({ redelivered }) => !redelivered)).toEqual([]);
  }, 180_000);
});
