import type { Msg, NatsConnection } from '@nats-io/transport-node';
import { NatsPuller, PULL_HEARTBEAT_MS, type PullOwner, ROTATE_MS, UNHEARD_MS } from './nats-pull';
import { NatsPullBudget } from './nats-pull-budget';

/** A pull request as a puller wrote it. */
interface Pull {
  consumer: string;
  inbox: string;
  batch: number;
  mode: 'long' | 'short' | 'probe';
}

/**
 * The pullers of one route over a fake connection: the pulls they send, their inbox subscriptions,
 * and the messages and statuses the test delivers. `room` stands for the route's free slots: each
 * message accepted takes one.
 */
function route(consumers: string[], slots: number) {
  const pulls: Pull[] = [];
  const subs = new Map<string, { callback: (e: Error | null, m: Msg) => void; drained: boolean }>();
  const accepted: Array<{ consumer: string; stale: boolean }> = [];
  let inboxes = 0;
  let room = slots;
  const nc = {
    publish: (subject: string, data: string, { reply }: { reply: string }) => {
      const request = JSON.parse(data) as { batch: number; expires?: number; no_wait?: boolean };
      const mode = request.no_wait
        ? 'probe'
        : request.expires === ROTATE_MS * 1e6
          ? 'short'
          : 'long';
      pulls.push({
        consumer: subject.split('.').pop() as string,
        inbox: reply,
        batch: request.batch,
        mode,
      });
    },
    subscribe: (inbox: string, { callback }: { callback: (e: Error | null, m: Msg) => void }) => {
      const sub = {
        callback,
        drained: false,
        drain: () => ((sub.drained = true), Promise.resolve()),
      };
      subs.set(inbox, sub);
      return sub;
    },
  } as unknown as NatsConnection;
  const owner: PullOwner = {
    accept: (p, _msg, stale) => {
      accepted.push({ consumer: p.name, stale });
      if (!stale) room--;
    },
    topUp: () => budget.topUp(room),
    inbox: () => `_INBOX.t${++inboxes}`,
    pullFailed: () => undefined,
    pullAnswered: () => undefined,
    pullAttached: () => undefined,
    recover: () => Promise.resolve(),
    pause: () => Promise.resolve(),
  };
  const pullers = consumers.map(
    (name) => new NatsPuller(name, `p.t.${name}`, [name], '', 'p-messages', owner),
  );
  const budget = new NatsPullBudget(pullers, slots);
  for (const p of pullers) p.start(nc);
  budget.topUp(room);
  const last = (consumer: string) => [...pulls].reverse().find((p) => p.consumer === consumer);
  return {
    pulls,
    subs,
    accepted,
    pullers,
    budget,
    get room() {
      return room;
    },
    /** A handler slot freed. */
    settle: () => {
      room++;
      budget.topUp(room);
    },
    /** A message to the last pull of `consumer`, with `pending` more waiting on it. */
    deliver: (consumer: string, pending: number, inbox = last(consumer)?.inbox ?? '') => {
      const reply = `$JS.ACK.p-messages.${consumer}.1.7.7.1700000000000000000.${pending}`;
      subs.get(inbox)?.callback(null, {
        subject: `p.t.${consumer}`,
        reply,
        data: new Uint8Array(),
      } as unknown as Msg);
    },
    /** A status (`408` with what was left of the pull, `404` no messages) to the last pull of `consumer`. */
    status: (consumer: string, code: number, left = 0) => {
      const inbox = last(consumer)?.inbox ?? '';
      const headers = { code, description: '', get: () => String(left) };
      subs
        .get(inbox)
        ?.callback(null, { subject: inbox, headers, data: new Uint8Array() } as unknown as Msg);
    },
    asked: () => budget.asked(),
  };
}

describe('NatsPullBudget', () => {
  it('never asks for more than the room over all the consumers of a route, and gives each a pull when it can', () => {
    const r = route(['f1', 'f2', 'q'], 4);
    // Each idle consumer keeps a long pull of one; the first takes the rest.
    expect(r.pulls).toEqual([
      { consumer: 'f2', inbox: '_INBOX.t2', batch: 1, mode: 'long' },
      { consumer: 'q', inbox: '_INBOX.t3', batch: 1, mode: 'long' },
      { consumer: 'f1', inbox: '_INBOX.t1', batch: 2, mode: 'long' },
    ]);
    r.deliver('f1', 5);
    r.deliver('f1', 4);
    // f1 has more waiting: the slots it frees go to it; nothing is asked beyond the room.
    expect(r.asked()).toBe(2);
    r.settle();
    r.settle();
    expect(r.pulls.slice(3).map((p) => `${p.consumer}:${p.batch}:${p.mode}`)).toEqual([
      'f1:1:long',
      'f1:1:long',
    ]);
    expect(r.asked()).toBe(4);
    expect(r.room).toBe(4);
  });

  it('takes turns when the room is smaller than the consumers: short pulls, and probes for those who waited', () => {
    const r = route(['f1', 'q'], 1);
    expect(r.pulls).toEqual([{ consumer: 'f1', inbox: '_INBOX.t1', batch: 1, mode: 'short' }]);
    // A turn later, q waited without a pull: it is probed once f1's short pull ends.
    r.budget.turn(r.room, Date.now() + ROTATE_MS);
    expect(r.pulls).toHaveLength(1);
    r.status('f1', 408, 1);
    expect(r.pulls.at(-1)).toEqual({ consumer: 'q', inbox: '_INBOX.t2', batch: 1, mode: 'probe' });
    // Nothing there (404): f1 pulls again.
    r.status('q', 404);
    expect(r.pulls.at(-1)).toEqual({ consumer: 'f1', inbox: '_INBOX.t1', batch: 1, mode: 'short' });
    expect(r.asked()).toBe(1);
  });

  it('takes back a long pull that delivered nothing for a turn when another consumer has messages waiting', () => {
    const r = route(['f1', 'q'], 2);
    expect(r.pulls.map((p) => `${p.consumer}:${p.batch}:${p.mode}`)).toEqual([
      'q:1:long',
      'f1:1:long',
    ]);
    r.deliver('f1', 3);
    // One slot left, held by q's pull: f1, with messages waiting, cannot pull.
    expect(r.asked()).toBe(1);
    r.budget.turn(r.room, Date.now() + ROTATE_MS);
    // q gives up its inbox (its pull dies with it) and f1 gets the slot.
    expect(r.subs.get('_INBOX.t2')?.drained).toBe(true);
    expect(r.pulls.at(-1)).toEqual({ consumer: 'f1', inbox: '_INBOX.t1', batch: 1, mode: 'long' });
    expect(r.asked()).toBe(1);
    // A message q's old pull still delivers is handed over as stale: not counted.
    r.deliver('q', 0, '_INBOX.t2');
    expect(r.accepted.at(-1)).toEqual({ consumer: 'q', stale: true });
    expect(r.asked()).toBe(1);
  });
});

describe('NatsPuller', () => {
  it('pulls on a fresh inbox after a failure, so no pull of before is left alive or counted', async () => {
    const r = route(['f1'], 2);
    const [puller] = r.pullers;
    expect(r.pulls).toEqual([{ consumer: 'f1', inbox: '_INBOX.t1', batch: 2, mode: 'long' }]);
    // Silent for two heartbeats (the server forgot the pull, or the event loop was blocked).
    puller.check(Date.now() + 12_000);
    expect(r.subs.get('_INBOX.t1')?.drained).toBe(true);
    await new Promise((resolve) => setImmediate(resolve));
    expect(r.pulls.at(-1)).toEqual({ consumer: 'f1', inbox: '_INBOX.t2', batch: 2, mode: 'long' });
    // The old pull was alive after all: what it delivers is stale, and 408s on it change nothing.
    r.deliver('f1', 0, '_INBOX.t1');
    expect(r.accepted).toEqual([{ consumer: 'f1', stale: true }]);
    expect(r.asked()).toBe(2);
  });

  it('gives up after one heartbeat the long pull of a fresh inbox that heard nothing, after two once it heard the server', async () => {
    let now = 1_700_000_000_000;
    const clock = jest.spyOn(Date, 'now').mockImplementation(() => now);
    try {
      const r = route(['f1'], 2);
      const [puller] = r.pullers;
      // Sent into the void (on a cluster, to a consumer whose leader is being elected): no heartbeat.
      puller.check(now + PULL_HEARTBEAT_MS);
      expect(r.subs.get('_INBOX.t1')?.drained).toBe(false);
      puller.check(now + UNHEARD_MS + 1);
      expect(r.subs.get('_INBOX.t1')?.drained).toBe(true);
      await new Promise((resolve) => setImmediate(resolve));
      expect(r.pulls.at(-1)).toEqual({
        consumer: 'f1',
        inbox: '_INBOX.t2',
        batch: 2,
        mode: 'long',
      });
      // This one was taken: its heartbeat came. A late heartbeat is not silence yet.
      now += 10;
      r.status('f1', 100);
      puller.check(now + UNHEARD_MS + 1);
      expect(r.subs.get('_INBOX.t2')?.drained).toBe(false);
      puller.check(now + 2 * PULL_HEARTBEAT_MS + 1_001);
      expect(r.subs.get('_INBOX.t2')?.drained).toBe(true);
    } finally {
      clock.mockRestore();
    }
  });

  it('asks again on a fresh inbox when a short pull is never answered (the server dropped it)', () => {
    const r = route(['f1', 'q'], 1);
    expect(r.pulls).toEqual([{ consumer: 'f1', inbox: '_INBOX.t1', batch: 1, mode: 'short' }]);
    const [f1] = r.pullers;
    f1.check(Date.now() + ROTATE_MS);
    expect(r.pulls).toHaveLength(1);
    // Neither its message, nor a 408: it expired as a message became due.
    f1.check(Date.now() + 2 * ROTATE_MS + 1);
    expect(r.subs.get('_INBOX.t1')?.drained).toBe(true);
    expect(r.pulls.at(-1)).toEqual({ consumer: 'f1', inbox: '_INBOX.t3', batch: 1, mode: 'short' });
    expect(r.asked()).toBe(1);
  });

  it('gives up its pulls on renew(): a fresh inbox, asked again for the room', () => {
    const r = route(['f1', 'q'], 2);
    for (const p of r.pullers) p.renew();
    r.budget.topUp(r.room);
    expect(r.subs.get('_INBOX.t1')?.drained).toBe(true);
    expect(r.subs.get('_INBOX.t2')?.drained).toBe(true);
    expect(r.pulls.slice(2).map((p) => `${p.consumer}:${p.inbox}:${p.batch}`)).toEqual([
      'q:_INBOX.t4:1',
      'f1:_INBOX.t3:1',
    ]);
    expect(r.asked()).toBe(2);
  });
});
