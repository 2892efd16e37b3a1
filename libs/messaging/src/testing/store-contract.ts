import { randomUUID } from 'node:crypto';
import {
  type InboxKey,
  type MessageStore,
  type OutboxMessage,
  outboxMessageOf,
  type OutboxRow,
  outgoingOf,
} from '../store/message-store';
import { gate, waitFor } from './wait-for';

/** A store for one test, and how to remove what it created. */
export interface StoreUnderTest {
  readonly store: MessageStore;
  /** How many claims wait for another transaction now: what proves that a duplicate waits. */
  waitingClaims(): Promise<number>;
  dispose(): Promise<void>;
}

const HOUR = 3_600_000;

/**
 * The behaviour every `MessageStore` must have: the inbox (claims that commit, roll back, wait for a
 * concurrent claim, expire) and the outbox (rows committed with their transaction, handed to one relay
 * at a time in order per key, removed when sent, held back when failed). Each test gets a store of
 * its own from `create`.
 *
 * @example
 * runStoreContract('memory', async () => {
 *   const store = new InMemoryMessageStore();
 *   return { store, waitingClaims: async () => store.waitingClaims, dispose: async () => {} };
 * });
 */
export function runStoreContract(name: string, create: () => Promise<StoreUnderTest>): void {
  describe(`MessageStore contract: ${name}`, () => {
    let current: StoreUnderTest;
    let store: MessageStore;
    beforeEach(async () => {
      current = await create();
      store = current.store;
    });
    afterEach(() => current.dispose());

    const key = (route = 'Handler.handle'): InboxKey => ({
      service: 'svc',
      route,
      messageId: randomUUID(),
    });
    const claimOnce = (k: InboxKey, ttlMs = HOUR) => store.transaction((tx) => tx.claim(k, ttlMs));
    const due = () =>
      store.relay(1000, async (batch) => batch.rows.map((r) => r.messageId)) as Promise<string[]>;

    describe('inbox', () => {
      it('claims a new message id once: after the commit, the same id is a duplicate', async () => {
        const k = key();
        expect(await claimOnce(k)).toBe(true);
        expect(await claimOnce(k)).toBe(false);
        expect(await claimOnce({ ...k })).toBe(false);
      });

      it('releases the id when the transaction rolls back, so the retry can claim it', async () => {
        const k = key();
        await expect(
          store.transaction(async (tx) => {
            expect(await tx.claim(k, HOUR)).toBe(true);
            throw new Error('handler failed');
          }),
        ).rejects.toThrow('handler failed');
        expect(await claimOnce(k)).toBe(true);
      });

      it('keeps ids apart per service and route', async () => {
        const k = key('A.a');
        expect(await claimOnce(k)).toBe(true);
        expect(await claimOnce({ ...k, route: 'B.b' })).toBe(true);
        expect(await claimOnce({ ...k, service: 'other' })).toBe(true);
      });

      it('makes a concurrent duplicate wait for the first transaction, then skip when it committed', async () => {
        const k = key();
        const held = gate();
        const claimedFirst = gate();
        const first = store.transaction(async (tx) => {
          const claimed = await tx.claim(k, HOUR);
          claimedFirst.open();
          await held.promise;
          return claimed;
        });
        await claimedFirst.promise;
        let secondSettled = false;
        const second = claimOnce(k).finally(() => (secondSettled = true));
        await waitFor(async () => (await current.waitingClaims()) === 1, {
          message: 'the second claim waits for the first transaction',
        });
        expect(secondSettled).toBe(false);
        held.open();
        expect(await first).toBe(true);
        expect(await second).toBe(false);
      });

      it('lets a concurrent duplicate run when the first transaction rolls back', async () => {
        const k = key();
        const held = gate();
        const claimedFirst = gate();
        const first = store.transaction(async (tx) => {
          await tx.claim(k, HOUR);
          claimedFirst.open();
          await held.promise;
          throw new Error('first attempt failed');
        });
        await claimedFirst.promise;
        const second = claimOnce(k);
        await waitFor(async () => (await current.waitingClaims()) === 1, {
          message: 'the second claim waits for the first transaction',
        });
        held.open();
        await expect(first).rejects.toThrow('first attempt failed');
        expect(await second).toBe(true);
      });

      it('forgets an id once its time to live passed, and purges expired entries', async () => {
        const k = key();
        expect(await claimOnce(k, 1)).toBe(true);
        const kept = key();
        expect(await claimOnce(kept, HOUR)).toBe(true);
        await waitFor(async () => (await store.purgeExpired()) === 1, {
          message: 'the 1 ms entry expired and was purged',
        });
        expect(await claimOnce(k)).toBe(true);
        expect(await claimOnce(kept)).toBe(false);
      });
    });

    describe('outbox', () => {
      const message = (overrides: Partial<OutboxMessage> = {}): OutboxMessage => ({
        orderingKey: 'order.created',
        topic: 'order.created',
        messageId: randomUUID(),
        correlationId: 'corr-1',
        contentType: 'application/json',
        headers: { 'x-custom': 'yes', n: 3, b: true },
        body: Buffer.from([0, 1, 2, 255]),
        mandatory: true,
        ...overrides,
      });

      it('hands committed messages to the relay as they were written, oldest first', async () => {
        const a = message();
        const b = message({
          topic: undefined,
          queue: 'hello',
          orderingKey: 'hello',
          delayMs: 250,
          mandatory: false,
          correlationId: undefined,
          contentType: undefined,
        });
        await store.transaction(async (tx) => {
          await tx.enqueue(a);
          await tx.enqueue(b);
        });
        const rows = (await store.relay(10, async (batch) => batch.rows)) as OutboxRow[];
        expect(rows.map((r) => r.messageId)).toEqual([a.messageId, b.messageId]);
        const [ra, rb] = rows;
        expect(ra).toMatchObject({ ...a, attempts: 0 });
        expect(ra.body.equals(a.body)).toBe(true);
        expect(ra.createdAt).toBeInstanceOf(Date);
        expect(rb).toMatchObject({ queue: 'hello', delayMs: 250, mandatory: false, attempts: 0 });
        expect(rb.topic).toBeUndefined();
        expect(rb.correlationId).toBeUndefined();
      });

      it("gives a compressed body's content encoding back with the row", async () => {
        const written = {
          topic: 'order.created',
          body: Buffer.from([0x1f, 0x8b, 0x08, 0x00]),
          headers: { 'x-custom': 'yes' },
          messageId: randomUUID(),
          contentType: 'application/json',
          contentEncoding: 'gzip',
          timestamp: 0,
        };
        await store.transaction((tx) => tx.enqueue(outboxMessageOf(written, true)));
        const [row] = (await store.relay(10, async (batch) => batch.rows)) as OutboxRow[];
        const sent = outgoingOf(row, row.createdAt.getTime());
        expect(sent).toMatchObject({ contentEncoding: 'gzip', headers: { 'x-custom': 'yes' } });
        expect(Object.keys(sent.headers)).toEqual(['x-custom']);
      });

      it('keeps nothing of a transaction that rolled back', async () => {
        await expect(
          store.transaction(async (tx) => {
            await tx.enqueue(message());
            throw new Error('insert failed');
          }),
        ).rejects.toThrow('insert failed');
        expect(await due()).toEqual([]);
        expect((await store.backlog()).pending).toBe(0);
      });

      it('tells listeners after a commit that enqueued, not after a rollback', async () => {
        let calls = 0;
        const detach = store.onEnqueued(() => calls++);
        await store.transaction(async (tx) => tx.claim(key(), HOUR));
        await expect(
          store.transaction(async (tx) => {
            await tx.enqueue(message());
            throw new Error('no');
          }),
        ).rejects.toThrow('no');
        await store.transaction((tx) => tx.enqueue(message()));
        await waitFor(() => calls === 1, { message: 'one notification' });
        detach();
      });

      it('removes what was sent and keeps what failed, not due again before its delay', async () => {
        const [a, b, c] = [message(), message(), message({ orderingKey: 'other' })];
        await store.transaction(async (tx) => {
          for (const m of [a, b, c]) await tx.enqueue(m);
        });
        await store.relay(10, async (batch) => {
          const [ra, , rc] = batch.rows;
          await batch.failed(ra.id, 'broker down', HOUR);
          await batch.sent(rc.id);
        });
        // `a` waits an hour, and `b` (same key, written after it) waits with it; `c` is gone.
        expect(await due()).toEqual([]);
        expect(await store.backlog()).toMatchObject({ pending: 2 });
      });

      it('gives a failed message back when its delay is over, with its attempts counted', async () => {
        const a = message();
        await store.transaction((tx) => tx.enqueue(a));
        await store.relay(10, async (batch) => batch.failed(batch.rows[0].id, 'unroutable', 1));
        let rows: OutboxRow[] = [];
        await waitFor(async () => {
          rows = ((await store.relay(10, async (batch) => batch.rows)) as OutboxRow[]) ?? [];
          return rows.length === 1;
        });
        expect(rows[0]).toMatchObject({ messageId: a.messageId, attempts: 1 });
      });

      it('keeps every row when the relay work throws', async () => {
        await store.transaction((tx) => tx.enqueue(message()));
        await expect(
          store.relay(10, async (batch) => {
            await batch.sent(batch.rows[0].id);
            throw new Error('relay crashed');
          }),
        ).rejects.toThrow('relay crashed');
        expect(await due()).toHaveLength(1);
      });

      it('lets one relay at a time hold rows: another gets none meanwhile', async () => {
        await store.transaction((tx) => tx.enqueue(message()));
        const held = gate();
        const entered = gate();
        const first = store.relay(10, async (batch) => {
          entered.open();
          await held.promise;
          return batch.rows.length;
        });
        await entered.promise;
        expect(await store.relay(10, async (batch) => batch.rows.length)).toBeUndefined();
        held.open();
        expect(await first).toBe(1);
      });

      it('respects the batch limit and counts the backlog', async () => {
        await store.transaction(async (tx) => {
          for (let i = 0; i < 5; i++) await tx.enqueue(message());
        });
        expect(await store.relay(2, async (batch) => batch.rows.length)).toBe(2);
        const backlog = await store.backlog();
        expect(backlog.pending).toBe(5);
        expect(backlog.oldestCreatedAt).toBeInstanceOf(Date);
      });
    });
  });
}
