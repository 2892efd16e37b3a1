import { AckBatcher, MAX_ACK_BATCH } from './redis-acks';

/** A batcher whose turns the test ends by hand, and whose sends it settles by hand. */
function harness() {
  const sent: Array<{ stream: string; ids: string[]; settle(error?: Error): void }> = [];
  let endTurn: (() => void) | undefined;
  const batcher = new AckBatcher(
    (stream, ids) =>
      new Promise<void>((resolve, reject) =>
        sent.push({
          stream,
          ids: [...ids],
          settle: (error) => (error ? reject(error) : resolve()),
        }),
      ),
    (flush) => (endTurn = flush),
  );
  const turn = () => {
    const flush = endTurn;
    endTurn = undefined;
    flush?.();
  };
  return { batcher, sent, turn };
}

/** How `promise` stands once the callbacks already due have run. */
async function state(promise: Promise<unknown>): Promise<'pending' | 'resolved' | 'rejected'> {
  let outcome: 'pending' | 'resolved' | 'rejected' = 'pending';
  promise.then(
    () => (outcome = 'resolved'),
    () => (outcome = 'rejected'),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return outcome;
}

describe('AckBatcher', () => {
  it('acknowledges the deliveries settled in one turn with one command per stream, in order', async () => {
    const { batcher, sent, turn } = harness();
    const acks = [
      batcher.ack('s1', '1-0'),
      batcher.ack('s2', '5-0'),
      batcher.ack('s1', '2-0'),
      batcher.ack('s1', '3-0'),
    ];
    expect(sent).toEqual([]); // nothing leaves before the turn ends
    turn();
    expect(sent.map(({ stream, ids }) => ({ stream, ids }))).toEqual([
      { stream: 's1', ids: ['1-0', '2-0', '3-0'] },
      { stream: 's2', ids: ['5-0'] },
    ]);
    // Resolved only once Redis answered.
    expect(await state(acks[0])).toBe('pending');
    for (const send of sent) send.settle();
    await Promise.all(acks);
  });

  it('starts a new batch for what is settled after the turn ended', async () => {
    const { batcher, sent, turn } = harness();
    const first = batcher.ack('s', '1-0');
    turn();
    const second = batcher.ack('s', '2-0');
    expect(sent.map((s) => s.ids)).toEqual([['1-0']]);
    turn();
    expect(sent.map((s) => s.ids)).toEqual([['1-0'], ['2-0']]);
    sent[1].settle();
    expect(await state(second)).toBe('resolved');
    expect(await state(first)).toBe('pending');
    sent[0].settle();
    await first;
  });

  it('fails only the deliveries of the command that failed', async () => {
    const { batcher, sent, turn } = harness();
    const a = batcher.ack('s1', '1-0');
    const b = batcher.ack('s1', '2-0');
    const c = batcher.ack('s2', '1-0');
    turn();
    sent[0].settle(new Error('connection lost'));
    sent[1].settle();
    await expect(a).rejects.toThrow('connection lost');
    await expect(b).rejects.toThrow('connection lost');
    await expect(c).resolves.toBeUndefined();
  });

  it('fails the batch when the sender throws instead of rejecting', async () => {
    const batcher = new AckBatcher(
      () => {
        throw new Error('not connected');
      },
      (flush) => flush(),
    );
    await expect(batcher.ack('s', '1-0')).rejects.toThrow('not connected');
  });

  it(`sends a batch as soon as it holds ${MAX_ACK_BATCH} ids`, () => {
    const { batcher, sent, turn } = harness();
    for (let i = 0; i < MAX_ACK_BATCH + 1; i++) void batcher.ack('s', `${i}-0`);
    expect(sent.map((s) => s.ids.length)).toEqual([MAX_ACK_BATCH]);
    turn();
    expect(sent.map((s) => s.ids.length)).toEqual([MAX_ACK_BATCH, 1]);
    expect(sent[1].ids).toEqual([`${MAX_ACK_BATCH}-0`]);
  });

  it('flush() sends at once; the turn that ends later sends nothing more', () => {
    const { batcher, sent, turn } = harness();
    void batcher.ack('s', '1-0');
    batcher.flush();
    expect(sent.map((s) => s.ids)).toEqual([['1-0']]);
    turn();
    expect(sent).toHaveLength(1);
  });

  it('by default, sends at the end of the current turn (process.nextTick)', async () => {
    const sent: string[][] = [];
    const batcher = new AckBatcher(async (_stream, ids) => {
      sent.push([...ids]);
    });
    const acks = [batcher.ack('s', '1-0'), batcher.ack('s', '2-0')];
    await Promise.resolve().then(() => acks.push(batcher.ack('s', '3-0')));
    await Promise.all(acks);
    expect(sent).toEqual([['1-0', '2-0', '3-0']]);
  });
});
