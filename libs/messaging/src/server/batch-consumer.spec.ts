import type { Logger } from '@nestjs/common';
import type { Delivery, Settlement } from '../backend/broker-backend.interface';
import { MessageCodec } from '../codec/message-codec';
import type { BatchContext } from '../context/batch-context';
import { BatchFailure } from '../errors/messaging.errors';
import { MessagingInstruments } from '../observability/messaging-metrics';
import { BatchConsumer, type BatchHost } from './batch-consumer';
import { HandlerSlots } from './handler-slots';
import { PauseGates } from './pause-gates';
import type { Route } from './route';
import { Settlements } from './settlements';

const codec = new MessageCodec({ maxBodyBytes: 1024, compressAboveBytes: 1024, maxJsonDepth: 8 });
const RETRY = {
  maxAttempts: 3,
  backoff: { initialDelayMs: 100, multiplier: 2, maxDelayMs: 1000, jitter: 0 },
};

function delivery(n: number, attempt: number): Delivery {
  return {
    body: Buffer.from(JSON.stringify({ n })),
    contentType: 'application/json',
    topic: 'stock.counted',
    queue: 'stock.stock.counted',
    headers: {},
    messageId: `m${n}`,
    attempt,
    redelivered: attempt > 1,
  };
}

/**
 * A consumer of a batch route whose handler does `handler(payloads)`, with batches of `deliveries.length`
 * (so adding them all runs one batch); resolves with each delivery's settlement action.
 */
async function settle(
  deliveries: Delivery[],
  handler: (payloads: Array<{ n: number }>) => unknown,
): Promise<Settlement['action'][]> {
  // Quiet: the retries and dead letters are the point here.
  const quiet = () => undefined;
  const logger = { log: quiet, warn: quiet, error: quiet, debug: quiet } as unknown as Logger;
  const route = {
    name: 'Stock.count',
    handler: undefined as never,
    slots: new HandlerSlots(1),
    retry: RETRY,
    deadLetter: true,
    idempotent: false,
    spec: {
      service: 'stock',
      queue: 'stock.stock.counted',
      topics: ['stock.counted'],
      external: false,
      concurrency: 10,
    },
    batch: { size: deliveries.length, maxWaitMs: 1_000 },
    connection: 'default',
    ordered: false,
  } satisfies Route;
  const host: BatchHost = {
    service: 'stock',
    signal: new AbortController().signal,
    codec,
    settlements: new Settlements(codec, logger),
    instruments: new MessagingInstruments(undefined),
    logger,
    pauses: new PauseGates(),
    run: (_ctx: BatchContext, _h, payloads) =>
      Promise.resolve().then(() => handler(payloads as Array<{ n: number }>)),
    done: () => undefined,
  };
  const consumer = new BatchConsumer(route, route.batch, host);
  const settled = await Promise.all(deliveries.map((d) => consumer.add(d)));
  return settled.map((s) => s.action);
}

describe('BatchConsumer settles each item of a batch on its own', () => {
  it('acknowledges every item when the handler returns', async () => {
    expect(await settle([delivery(1, 1), delivery(2, 1)], () => 'ok')).toEqual(['ack', 'ack']);
  });

  it('on a throw, decides each item by its own attempt: retried, or dead-lettered at maxAttempts', async () => {
    const fail = () => {
      throw new Error('down');
    };
    expect(await settle([delivery(1, 1), delivery(2, 3), delivery(3, 2)], fail)).toEqual([
      'retry',
      'dead-letter',
      'retry',
    ]);
  });

  it('with BatchFailure, fails only the listed items (by their own attempts) and acknowledges the rest', async () => {
    const partial = () => {
      throw new BatchFailure([
        { index: 1, error: new Error('no stock') },
        { index: 2, error: new Error('no stock') },
      ]);
    };
    expect(await settle([delivery(1, 1), delivery(2, 1), delivery(3, 3)], partial)).toEqual([
      'ack',
      'retry',
      'dead-letter',
    ]);
  });

  it('leaves a malformed item out of the batch: dead-lettered alone, the handler gets the rest', async () => {
    const seen: number[] = [];
    const malformed = { ...delivery(2, 1), body: Buffer.from('{"n": ') };
    const actions = await settle([delivery(1, 1), malformed, delivery(3, 1)], (payloads) =>
      seen.push(...payloads.map((p) => p.n)),
    );
    expect(actions).toEqual(['ack', 'dead-letter', 'ack']);
    expect(seen).toEqual([1, 3]);
  });
});
