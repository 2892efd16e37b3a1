import { randomUUID } from 'node:crypto';
import type {
  BackendSubscription,
  BrokerBackend,
  Delivery,
  Settlement,
  SubscriptionSpec,
} from '../backend/broker-backend.interface';
import { EXCLUSIVE_TAKEOVER_MS } from '../backend/exclusive';
import { MessagingConfigError } from '../errors/messaging.errors';
import { type BackendContractOptions, useConnectedBackends } from './contract-harness';
import { waitFor } from './wait-for';

export type { CrashableBackend, ExclusiveContractOptions } from './contract-harness';

/** One delivery as a handler of the contract saw it. */
interface Seen {
  readonly by: string;
  readonly n: number;
  readonly redelivered: boolean;
}

const ACK: Settlement = { action: 'ack' };
const REQUEUE: Settlement = { action: 'requeue' };

/**
 * Exclusive subscriptions (`SubscriptionSpec.exclusive`, a single active consumer): each backend
 * instance stands for a process, subscribing and publishing directly. Called by `describeBackendContract`.
 */
export function runExclusiveContract(
  name: string,
  createBackend: () => BrokerBackend,
  options: BackendContractOptions = {},
): void {
  describe(`BrokerBackend contract: ${name}: exclusive subscriptions`, () => {
    const runId = randomUUID().slice(0, 8);
    const { crashable, refusesMismatch = true } = options.exclusive ?? {};
    const connected = useConnectedBackends(createBackend);
    let counter = 0;

    function route(concurrency: number): SubscriptionSpec & { topic: string } {
      counter++;
      const service = `${options.servicePrefix ?? 'contract'}-x${runId}-${counter}`;
      const topic = `cx${runId}.t${counter}`;
      const queue = `${service}.ordered`;
      return {
        service,
        queue,
        topics: [topic],
        topic,
        external: false,
        concurrency,
        exclusive: true,
      };
    }

    async function publish(
      backend: BrokerBackend,
      topic: string,
      numbers: number[],
    ): Promise<void> {
      for (const n of numbers) {
        const message = {
          topic,
          body: Buffer.from(String(n)),
          headers: {},
          messageId: randomUUID(),
          contentType: 'text/plain',
          timestamp: Date.now(),
        };
        await backend.publish(message, { mandatory: true });
      }
    }

    /**
     * Subscribes every backend with a handler that records what it sees and, while `hold()` says so,
     * keeps the settlement (resolved by `release`); otherwise acknowledges on the next turn.
     */
    async function subscribeAll(
      backends: BrokerBackend[],
      spec: SubscriptionSpec,
      hold: () => boolean,
    ) {
      const seen: Seen[] = [];
      const held: Array<(settlement: Settlement) => void> = [];
      const subscriptions = new Map<BrokerBackend, BackendSubscription>();
      for (const [i, backend] of backends.entries()) {
        const by = String(i);
        const handler = (d: Delivery): Promise<Settlement> => {
          seen.push({ by, n: Number(d.body.toString()), redelivered: d.redelivered });
          if (hold()) return new Promise((resolve) => held.push(resolve));
          return new Promise((resolve) => setImmediate(() => resolve(ACK)));
        };
        subscriptions.set(backend, await backend.subscribe(spec, handler));
      }
      // Last first: handlers end in any order, and what they give back must still come back in order.
      const release = (settlement: Settlement): void => {
        for (const settle of held.splice(0).reverse()) settle(settlement);
      };
      return { seen, subscriptions, release };
    }

    const range = (from: number, to: number): number[] =>
      Array.from({ length: to - from + 1 }, (_, i) => from + i);
    const numbersOf = (seen: Seen[], by: string): number[] =>
      seen.filter((s) => s.by === by).map((s) => s.n);

    it('delivers every message to one of its subscribers, in publish order', async () => {
      const spec = route(4);
      const backends = await connected(2);
      const { seen } = await subscribeAll(backends, spec, () => false);
      await publish(backends[1], spec.topic, range(1, 30));
      await waitFor(() => seen.length === 30, { message: '30 deliveries' });
      expect(new Set(seen.map((s) => s.by)).size).toBe(1);
      expect(seen.map((s) => s.n)).toEqual(range(1, 30));
    });

    /** The active instance of a takeover case, as `stop` gets it. */
    interface Active {
      readonly backend: BrokerBackend;
      readonly subscription: BackendSubscription;
      /** Settles the two deliveries it holds. */
      release(settlement: Settlement): void;
    }

    /**
     * The active instance holds two deliveries when `stop` ends it. The other takes over with those
     * two, then the rest, each once and in order; resolves how long that took from `stop`.
     */
    async function takeover(
      stop: (active: Active) => Promise<void>,
      first?: BrokerBackend,
    ): Promise<{ takeoverMs: number; release(settlement: Settlement): void }> {
      const spec = route(2);
      const [producer, ...others] = await connected(first ? 2 : 3);
      const consumers = first ? [first, ...others] : others;
      let holding = true;
      const { seen, subscriptions, release } = await subscribeAll(consumers, spec, () => holding);
      await publish(producer, spec.topic, range(1, 8));
      await waitFor(() => seen.length === 2, { message: 'the active one holds two' });
      const active = seen[0].by;
      if (first) expect(active).toBe('0'); // the first to subscribe
      expect(seen).toEqual([
        { by: active, n: 1, redelivered: false },
        { by: active, n: 2, redelivered: false },
      ]);
      const other = active === '0' ? '1' : '0';
      holding = false;
      const backend = consumers[Number(active)];
      const stoppedAt = Date.now();
      await stop({
        backend,
        subscription: subscriptions.get(backend) as BackendSubscription,
        release,
      });
      await waitFor(() => numbersOf(seen, other).length >= 8, {
        timeoutMs: EXCLUSIVE_TAKEOVER_MS + 5_000,
        message: `the other one took over (${JSON.stringify(seen)})`,
      });
      const takeoverMs = Date.now() - stoppedAt;
      expect(numbersOf(seen, active)).toEqual([1, 2]);
      expect(numbersOf(seen, other)).toEqual(range(1, 8));
      expect(seen.filter((s) => s.by === other && s.redelivered).map((s) => s.n)).toEqual([1, 2]);
      return { takeoverMs, release };
    }

    // A cancelled or closing instance settles what it holds with `requeue`, as the core does for
    // the handlers it gave up on; the backend may also give them back itself.
    it('hands over to a standby when the active subscription is cancelled, what it gave back first', async () => {
      await takeover(async ({ subscription, release }) => {
        const cancelling = subscription.cancel();
        release(REQUEUE);
        await cancelling;
      });
    });

    it('hands over to a standby when the active instance closes, what it held first', async () => {
      await takeover(async ({ backend, release }) => {
        const closing = backend.close();
        release(REQUEUE);
        await closing;
      });
    });

    (crashable ? it : it.skip)(
      `hands over within EXCLUSIVE_TAKEOVER_MS (${EXCLUSIVE_TAKEOVER_MS} ms) when the active instance crashes`,
      async () => {
        const crashing = await (crashable as NonNullable<typeof crashable>)();
        try {
          await connected(1, () => crashing.backend);
          const { takeoverMs, release } = await takeover(
            () => Promise.resolve(crashing.crash()),
            crashing.backend,
          );
          expect(takeoverMs).toBeLessThanOrEqual(EXCLUSIVE_TAKEOVER_MS);
          // The dead instance's handlers end; their settlements go nowhere, or are refused.
          release(ACK);
        } finally {
          await crashing.dispose?.();
        }
      },
      EXCLUSIVE_TAKEOVER_MS + 15_000,
    );

    (refusesMismatch ? it : it.skip)(
      'refuses at start-up a queue that exists with the other kind of consumers, naming the fix',
      async () => {
        const spec = route(1);
        const [backend] = await connected(1);
        const shared = await backend.subscribe({ ...spec, exclusive: false }, async () => ACK);
        await shared.cancel();
        await expect(backend.subscribe(spec, async () => ACK)).rejects.toThrow(
          MessagingConfigError,
        );
        await expect(backend.subscribe(spec, async () => ACK)).rejects.toThrow(/new `name`/);
      },
    );
  });
}
