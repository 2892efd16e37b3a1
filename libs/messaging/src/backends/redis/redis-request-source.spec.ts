import type { Redis } from 'ioredis';
import { BackendEventHub } from '../../backend/backend-events';
import type {
  Delivery,
  Settlement,
  SubscriptionSpec,
} from '../../backend/broker-backend.interface';
import type { RedisPubSub } from './redis-pubsub';
import { requestEntry } from './redis-request-entries';
import { RedisRequestSource } from './redis-request-source';
import type { RedisSettler } from './redis-settler';
import { RedisKeys } from './redis-topology';

const SPEC: SubscriptionSpec = {
  service: 'svc',
  queue: 'svc.route',
  topics: ['t'],
  external: false,
  concurrency: 2,
};

const entry = (text: string): Buffer =>
  Buffer.from(
    requestEntry(
      {
        topic: 't',
        body: Buffer.from(text),
        headers: { 'x-messaging-deadline': Date.now() + 5_000 },
        messageId: text,
        timestamp: Date.now(),
      },
      't',
      `p:reply:i:${text}`,
    ),
  );

/**
 * A request source over fakes: pops and give-backs recorded, handlers finished by the test. The fake
 * pub/sub is RedisPubSub's contract: after `unsubscribe`, the listener still receives what comes until
 * the test confirms the UNSUBSCRIBE (`confirmUnsubscribe`), and nothing after.
 */
async function harness() {
  let listener: ((message: Buffer) => void) | undefined;
  const unsubscribes: Array<() => void> = [];
  const pops: Array<{ count: number; answer(entries: Buffer[] | null): void }> = [];
  const givenBack: string[][] = [];
  let giveBackError: Error | undefined;
  let held: Array<() => void> | undefined;
  const command = {
    status: 'ready',
    stream: { writableCorked: 1 }, // writes are not coalesced here
    callBuffer: (_rpop: string, _key: string, count: number) =>
      new Promise((resolve) => pops.push({ count, answer: resolve })),
    evalsha: (
      _sha: string,
      _keys: number,
      _key: string,
      _channel: string,
      _ms: number,
      ...entries: unknown[]
    ) => {
      givenBack.push(
        entries.map(
          (e) =>
            Buffer.from(e as Buffer)
              .toString()
              .split('\n')[1],
        ),
      );
      if (giveBackError) return Promise.reject(giveBackError);
      const answers = held;
      return answers
        ? new Promise((resolve) => answers.push(() => resolve(1)))
        : Promise.resolve(1);
    },
  } as unknown as Redis;
  const pubsub = {
    subscribe: async (_channel: string, l: (message: Buffer) => void) => {
      listener = l;
    },
    unsubscribe: (_channel: string, l: (message: Buffer) => void) =>
      listener !== l
        ? Promise.resolve()
        : new Promise<void>((resolve) =>
            unsubscribes.push(() => {
              if (listener === l) listener = undefined;
              resolve();
            }),
          ),
  } as unknown as RedisPubSub;
  const running: Array<{ body: string; finish(): void }> = [];
  let peak = 0;
  const handler = (delivery: Delivery) =>
    new Promise<Settlement>((resolve) => {
      running.push({ body: delivery.body.toString(), finish: () => resolve({ action: 'ack' }) });
      peak = Math.max(peak, running.length);
    });
  const settler = { settleRequest: async () => undefined } as unknown as RedisSettler;
  const hub = new BackendEventHub();
  const errors: string[] = [];
  hub.on('error', (error) => errors.push(error.message));
  const source = new RedisRequestSource(SPEC, handler, settler, {
    command,
    pubsub,
    keys: new RedisKeys('p'),
    hub,
  });
  await source.start();
  /** Publishes `message` to the source's channel: nothing receives it once unsubscribed. */
  const send = (message: Buffer) => listener?.(message);
  const confirmUnsubscribe = () => {
    for (const confirm of unsubscribes.splice(0)) confirm();
  };
  const finishAll = async () => {
    const now = running.splice(0);
    for (const r of now) r.finish();
    await new Promise((resolve) => setImmediate(resolve));
  };
  return {
    source,
    hub,
    errors,
    /** Makes the next give-backs fail with `error`. */
    failGiveBacks: (error: Error) => (giveBackError = error),
    /** Holds the answers to the next give-backs: the test calls them. */
    holdGiveBacks: (): Array<() => void> => (held = []),
    pops,
    givenBack,
    running,
    send,
    confirmUnsubscribe,
    finishAll,
    peak: () => peak,
  };
}

describe('RedisRequestSource', () => {
  it('handles what is published to it, and gives back what comes when every slot is taken', async () => {
    const h = await harness();
    h.pops[0].answer(null); // the pop of start(): nothing waited
    await new Promise((resolve) => setImmediate(resolve));
    h.send(entry('a'));
    h.send(entry('b'));
    h.send(entry('c'));
    expect(h.running.map((r) => r.body)).toEqual(['a', 'b']);
    expect(h.givenBack).toEqual([['c']]);
    // A slot frees: the list (where c waits) is popped for it.
    h.running.shift()?.finish();
    await new Promise((resolve) => setImmediate(resolve));
    expect(h.pops.map((p) => p.count)).toEqual([2, 1]);
    h.pops[1].answer([entry('c')]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(h.running.map((r) => r.body)).toEqual(['b', 'c']);
    expect(h.peak()).toBe(2);
  });

  it('keeps the slots a pop in flight may fill: what is published meanwhile goes back', async () => {
    const h = await harness();
    // start() pops as many as it has slots; while that pop is in flight, a request is published here.
    expect(h.pops.map((p) => p.count)).toEqual([2]);
    h.send(entry('pushed'));
    expect(h.givenBack).toEqual([['pushed']]);
    h.pops[0].answer([entry('x'), entry('y')]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(h.running.map((r) => r.body)).toEqual(['x', 'y']);
    expect(h.peak()).toBe(2);
    // A full pop means the list may hold more: popped again as soon as a slot frees.
    await h.finishAll();
    expect(h.pops.map((p) => p.count)).toEqual([2, 1]);
  });

  it('folds rings into one pop at a time', async () => {
    const h = await harness();
    h.send(Buffer.alloc(0));
    h.send(Buffer.alloc(0));
    expect(h.pops).toHaveLength(1);
    h.pops[0].answer([]);
    await new Promise((resolve) => setImmediate(resolve));
    // The rings that came meanwhile: one more pop.
    expect(h.pops).toHaveLength(2);
  });

  it('after stop, gives back what a pop brings and what is published until Redis confirmed', async () => {
    const h = await harness();
    const stopped = h.source.stop();
    let done = false;
    void stopped.then(() => (done = true));
    h.pops[0].answer([entry('late')]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(h.running).toEqual([]);
    expect(h.givenBack).toEqual([['late']]);
    // Published before Redis confirmed the UNSUBSCRIBE (the instance was still counted): given back.
    h.send(entry('in the gap'));
    expect(h.givenBack).toEqual([['late'], ['in the gap']]);
    expect(h.running).toEqual([]);
    expect(done).toBe(false); // stop() resolves once Redis confirmed
    h.confirmUnsubscribe();
    await stopped;
    await h.source.drain(1_000);
  });

  it('reports a give-back that failed, unless the backend closed meanwhile', async () => {
    const h = await harness();
    h.failGiveBacks(new Error('Connection is closed.'));
    const stopped = h.source.stop();
    h.send(entry('a'));
    await new Promise((resolve) => setImmediate(resolve));
    expect(h.errors).toEqual([
      "Could not give back 1 request(s) of 'svc.route' (their callers time out): Connection is closed.",
    ]);
    // After close (which waited for give-backs no longer than closeTimeoutMs), nothing is reported.
    h.hub.setStatus('closed');
    h.send(entry('b'));
    await new Promise((resolve) => setImmediate(resolve));
    expect(h.givenBack).toEqual([['a'], ['b']]);
    expect(h.errors).toHaveLength(1);
    h.confirmUnsubscribe();
    await stopped;
  });

  it('drains only once its give-backs are answered', async () => {
    const h = await harness();
    const held = h.holdGiveBacks();
    const stopped = h.source.stop();
    h.pops[0].answer([entry('late')]); // the pop of start() answers after stop: given back
    await new Promise((resolve) => setImmediate(resolve));
    expect(h.givenBack).toEqual([['late']]);
    let drained = false;
    const draining = h.source.drain(5_000).then(() => (drained = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(drained).toBe(false); // a close would quit with the give-back unsent
    for (const answer of held) answer();
    await draining;
    h.confirmUnsubscribe();
    await stopped;
  });
});
