import { Writable } from 'node:stream';
import type { Delivery, Settlement } from '../backend/broker-backend.interface';
import { guardDeadLetters, type DeadLetterOwner } from '../backend/dead-letter-admin';
import { InMemoryBackend } from '../backends/memory/in-memory.backend';
import { InMemoryBroker } from '../backends/memory/in-memory.broker';
import { waitFor } from '../testing/wait-for';
import type { CliIo } from './cli-io';
import { captureIo } from './cli.fixture';
import type { BackendFactories } from './dlq-backend';
import { main } from './main';

/**
 * The dlq commands end to end on the in-memory backend, given to `main()` as the `memory://`
 * scheme: output, JSON, exit codes, confirmations. `dlq.amqp.spec.ts` runs them on RabbitMQ.
 */
describe.each([
  ["in one pass (the backend's own deadLetters.scan and replayWhere)", true],
  ['by pages of deadLetters.list (the fallbacks of guardDeadLetters)', false],
])('nest-messaging dlq (in-memory backend, %s)', (_how, onePass) => {
  const SERVICE = 'payments';
  const HOUR = 3_600_000;
  let broker: InMemoryBroker;
  let app: InMemoryBackend;
  let failing: boolean;
  let handled: Delivery[];
  let opened: InMemoryBackend[];
  let n = 0;
  const backends: BackendFactories = {
    memory: () => {
      const backend = new InMemoryBackend({ broker });
      opened.push(backend);
      if (!onePass) {
        // A store with no one-pass versions: guardDeadLetters supplies scan and replayWhere.
        const own = backend.deadLetters;
        const store = {
          list: own.list.bind(own),
          replay: own.replay.bind(own),
          purge: own.purge.bind(own),
          purgeWhere: own.purgeWhere.bind(own),
        };
        const owner = { assertOpen: () => undefined, hub: { status: 'connected', emitError() {} } };
        Object.assign(backend, { deadLetters: guardDeadLetters(store, owner as DeadLetterOwner) });
      }
      return backend;
    },
  };

  beforeEach(async () => {
    broker = new InMemoryBroker();
    app = new InMemoryBackend({ broker });
    failing = true;
    handled = [];
    opened = [];
    n = 0;
    await app.connect();
    const settle = async (d: Delivery): Promise<Settlement> => {
      handled.push(d);
      if (!failing) return { action: 'ack' };
      const { error, errorClass } = JSON.parse(d.body.toString()) as Record<string, string>;
      const reason = errorClass === 'TypeError' ? 'unrecoverable' : 'max-attempts';
      return {
        action: 'dead-letter',
        failure: { reason, message: error, errorClass, at: new Date() },
      };
    };
    const spec = { service: SERVICE, topics: ['order.#'], external: false, concurrency: 5 };
    await app.subscribe({ ...spec, queue: `${SERVICE}.orders` }, settle);
  });

  afterEach(async () => {
    await app.close();
    // Every command closed the backend it opened, whatever happened.
    expect(opened.map((b) => b.status)).toEqual(opened.map(() => 'closed'));
  });

  async function deadLetter(topic: string, error: string, errorClass = 'Error'): Promise<void> {
    const before = (await app.deadLetters.list(SERVICE)).length;
    const body = Buffer.from(JSON.stringify({ orderId: `o-${++n}`, error, errorClass }));
    const message = { topic, body, headers: { 'x-tenant': 'acme' }, messageId: `m-${n}` };
    await app.publish(
      { ...message, contentType: 'application/json', timestamp: Date.now() },
      { mandatory: true },
    );
    await waitFor(async () => (await app.deadLetters.list(SERVICE)).length === before + 1);
  }

  async function dlq(
    args: string[],
    options: Pick<CliIo, 'ask' | 'progress'> & { laterMs?: number } = {},
  ) {
    const captured = captureIo({ ask: options.ask, progress: options.progress });
    const now = () => new Date(Date.now() + (options.laterMs ?? 0));
    const argv = ['dlq', ...args, '--service', SERVICE, '--url', 'memory://local'];
    const code = await main(argv, captured.io, { backends, now });
    return { code, ...captured };
  }

  const ids = async (): Promise<string[]> => (await app.deadLetters.list(SERVICE)).map((l) => l.id);

  it('lists a page as a table, says where the next one starts, and as JSON', async () => {
    await deadLetter('order.created', 'gateway timeout');
    await deadLetter('order.paid', 'order 7 not found');
    await deadLetter('order.paid', 'order 8 not found');
    const [first, second, third] = await ids();

    const page = await dlq(['list', '--limit', '2']);
    expect(page.code).toBe(0);
    expect(page.out[0]).toMatch(/^ID +DEAD-LETTERED +TOPIC +REASON +ATTEMPTS +ERROR$/);
    expect(page.out[1]).toMatch(
      new RegExp(`^${first} .* order\\.created +max-attempts +1 +Error: gateway timeout$`),
    );
    expect(page.out[2]).toContain(second);
    expect(page.out.slice(3)).toEqual([
      '',
      "1-2: 2 dead letters of 'payments'; more with --offset 2.",
    ]);

    const next = await dlq(['list', '--limit', '2', '--offset', '2', '--json']);
    expect(next.code).toBe(0);
    const json = JSON.parse(next.stdout());
    expect(json).toMatchObject({ service: SERVICE, offset: 2, limit: 2, count: 1, more: false });
    expect(json.letters[0]).toMatchObject({
      id: third,
      topic: 'order.paid',
      queue: `${SERVICE}.orders`,
      reason: 'max-attempts',
      error: 'order 8 not found',
      attempts: 1,
      headers: { 'x-tenant': 'acme' },
      payload: { orderId: 'o-3', error: 'order 8 not found', errorClass: 'Error' },
    });
    expect(new Date(json.letters[0].deadLetteredAt).getTime()).toBeGreaterThan(0);

    const empty = await dlq(['list', '--offset', '3']);
    expect(empty.out).toEqual(["No dead letters of 'payments' from offset 3."]);
  });

  it('filters by topic, reason, error and age, paging over the matches', async () => {
    await deadLetter('order.created', 'gateway timeout');
    await deadLetter('order.paid', 'boom', 'TypeError');
    await deadLetter('order.eu.paid', 'gateway timeout');
    const [a, b, c] = await ids();
    const listed = async (...args: string[]) =>
      JSON.parse((await dlq(['list', '--json', ...args])).stdout()).letters.map(
        (l: { id: string }) => l.id,
      );
    expect(await listed('--topic', 'order.*')).toEqual([a, b]);
    expect(await listed('--topic', 'order.#', '--error', 'timeout')).toEqual([a, c]);
    expect(await listed('--error', '/^type/i')).toEqual([b]);
    expect(await listed('--reason', 'unrecoverable')).toEqual([b]);
    expect(await listed('--error', 'timeout', '--offset', '1', '--limit', '1')).toEqual([c]);
    expect(await listed('--older-than', '1h')).toEqual([]);
    expect(await listed('--newer-than', '1h')).toEqual([a, b, c]);
    const later = await dlq(['list', '--json', '--older-than', '1h'], { laterMs: 2 * HOUR });
    expect(JSON.parse(later.stdout()).count).toBe(3);
    const none = await dlq(['list', '--topic', 'nothing']);
    expect(none.out).toEqual(["No dead letters of 'payments' matching the filters."]);
  });

  it('groups by error: one line per kind of failure', async () => {
    await deadLetter('order.created', 'order 1 not found');
    await deadLetter('order.paid', 'order 2 not found');
    await deadLetter('order.paid', 'boom', 'TypeError');
    const table = await dlq(['list', '--group-by', 'error']);
    expect(table.code).toBe(0);
    expect(table.out[0]).toMatch(/^COUNT +FIRST SEEN +LAST SEEN +TOPICS +ERROR$/);
    expect(table.out[1]).toMatch(
      /^ +2 .* order\.created, order\.paid +Error: order <n> not found$/,
    );
    expect(table.out[2]).toMatch(/^ +1 .* order\.paid +TypeError: boom$/);
    expect(table.out[4]).toMatch(/^3 dead letters of 'payments' in 2 groups/);

    const json = JSON.parse((await dlq(['list', '--group-by', 'error', '--json'])).stdout());
    expect(json).toMatchObject({ service: SERVICE, groupBy: 'error', read: 3, matched: 3 });
    expect(json.groups.map((g: { count: number }) => g.count)).toEqual([2, 1]);

    const paged = await dlq(['list', '--group-by', 'error', '--limit', '5']);
    expect(paged.code).toBe(2);
    expect(paged.err[0]).toMatch(/--group-by reads the whole queue/);
  });

  it('shows one letter in full, or says there is none', async () => {
    await deadLetter('order.created', 'gateway timeout');
    const [id] = await ids();
    const shown = await dlq(['show', id]);
    expect(shown.code).toBe(0);
    expect(shown.out).toEqual(
      expect.arrayContaining([
        `id             ${id}`,
        'topic          order.created',
        `queue          ${SERVICE}.orders`,
        '  x-tenant  acme',
        'Payload:',
        '    "orderId": "o-1",',
      ]),
    );
    expect(JSON.parse((await dlq(['show', id, '--json'])).stdout())).toMatchObject({
      id,
      payload: { orderId: 'o-1' },
    });
    const missing = await dlq(['show', 'nope', '--json']);
    expect(missing.code).toBe(1);
    expect(missing.out).toEqual([]);
    expect(missing.err[0]).toMatch(/No dead letter 'nope' in the dead-letter queue of 'payments'/);
  });

  it('replays by id, reporting the ids it could not replay', async () => {
    await deadLetter('order.created', 'gateway timeout');
    await deadLetter('order.created', 'gateway timeout');
    const [a, b] = await ids();
    failing = false;
    const replay = await dlq(['replay', a, 'nope']);
    expect(replay.code).toBe(1);
    expect(replay.out).toEqual([
      "Replayed 1 of 2 dead letters of 'payments'.",
      'Not replayed (1):',
      '  nope  not found',
    ]);
    await waitFor(() => handled.length === 3);
    expect(handled[2]).toMatchObject({ messageId: 'm-1', attempt: 1, queue: `${SERVICE}.orders` });
    expect(await ids()).toEqual([b]);
    const json = await dlq(['replay', b, '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout())).toEqual({
      service: SERVICE,
      requested: 1,
      replayed: 1,
      failed: [],
    });
    expect(await ids()).toEqual([]);
  });

  it('replays what the filters select, or everything with --all', async () => {
    await deadLetter('order.created', 'gateway timeout');
    await deadLetter('order.paid', 'boom', 'TypeError');
    await deadLetter('order.paid', 'gateway timeout');
    const [, boom] = await ids();
    failing = false;
    const filtered = await dlq(['replay', '--error', 'timeout']);
    expect(filtered).toMatchObject({
      code: 0,
      out: ["Replayed 2 of 2 dead letters of 'payments'."],
    });
    expect(await ids()).toEqual([boom]);
    const all = await dlq(['replay', '--all', '--json']);
    expect(JSON.parse(all.stdout())).toEqual({
      service: SERVICE,
      requested: 1,
      replayed: 1,
      failed: [],
    });
    await waitFor(() => handled.length === 6);
    const nothing = await dlq(['replay', '--all']);
    expect(nothing.out).toEqual(["No dead letters of 'payments' to replay."]);
  });

  it('draws a progress bar on a terminal, and only there', async () => {
    for (let i = 0; i < 3; i++) await deadLetter('order.created', 'gateway timeout');
    await deadLetter('order.paid', 'boom');
    failing = false;
    const drawn: string[] = [];
    const terminal = Object.assign(
      new Writable({ write: (chunk, _encoding, done) => (drawn.push(String(chunk)), done()) }),
      { isTTY: true, columns: 100 },
    );
    const json = await dlq(['replay', '--topic', 'order.paid', '--json'], { progress: terminal });
    expect(JSON.parse(json.stdout())).toMatchObject({ replayed: 1 });
    expect(drawn).toEqual([]);
    const long = await dlq(['replay', '--topic', 'order.created'], { progress: terminal });
    expect(long.out).toEqual([`Replayed 3 of 3 dead letters of 'payments'.`]);
    expect(drawn.join('')).toContain(`Replaying [`);
    expect(drawn.join('')).toContain(`3/3 dead letters`);
  });

  it('purges after the service name is typed, or with --yes; refuses without a terminal', async () => {
    await deadLetter('order.created', 'gateway timeout');
    const refused = await dlq(['purge']);
    expect(refused.code).toBe(2);
    expect(refused.err[0]).toMatch(/Refusing to purge .* Pass --yes/);
    expect(opened).toEqual([]);

    const questions: string[] = [];
    const wrong = await dlq(['purge'], { ask: async (q) => (questions.push(q), 'orders') });
    expect(wrong.code).toBe(1);
    expect(questions).toEqual([
      "This deletes 1 dead letter of 'payments' for good. Type the service name to confirm: ",
    ]);
    expect(wrong.err).toEqual(["Not purged: the answer was not 'payments'."]);
    expect(await ids()).toHaveLength(1);

    const typed = await dlq(['purge'], { ask: async () => 'payments\n' });
    expect(typed).toMatchObject({ code: 0, out: ["Purged 1 dead letter of 'payments'."] });
    await deadLetter('order.created', 'gateway timeout');
    const yes = await dlq(['purge', '--yes', '--json']);
    expect(JSON.parse(yes.stdout())).toEqual({ service: SERVICE, purged: 1 });
    expect(await ids()).toEqual([]);
  });

  it('purges only what the filters select, after a confirmation, leaving the others in order', async () => {
    await deadLetter('order.created', 'gateway timeout');
    await deadLetter('order.paid', 'order 7 not found');
    await deadLetter('order.created', 'gateway timeout');
    await deadLetter('order.paid', 'order 8 not found');
    const [, seven, , eight] = await ids();

    const questions: string[] = [];
    const typed = await dlq(['purge', '--error', 'timeout'], {
      ask: async (q) => (questions.push(q), 'payments'),
    });
    expect(questions).toEqual([
      "This deletes 2 dead letters of 'payments' selected by the filters for good. Type the service name to confirm: ",
    ]);
    expect(typed).toMatchObject({
      code: 0,
      out: ["Purged 2 dead letters of 'payments' selected by the filters."],
    });
    expect(await ids()).toEqual([seven, eight]);

    const none = await dlq(['purge', '--topic', 'order.created'], { ask: async () => 'payments' });
    expect(none).toMatchObject({
      code: 0,
      out: ["No dead letters of 'payments' selected by the filters."],
    });
    const old = await dlq(['purge', '--older-than', '1h', '--yes', '--json']);
    expect(JSON.parse(old.stdout())).toEqual({ service: SERVICE, purged: 0 });
    const later = await dlq(['purge', '--older-than', '1h', '--topic', 'order.paid', '--yes'], {
      laterMs: 2 * HOUR,
    });
    expect(later.out).toEqual(["Purged 2 dead letters of 'payments' selected by the filters."]);
    expect(await ids()).toEqual([]);
  });

  it('purges nothing when a letter arrived while it asked', async () => {
    await deadLetter('order.created', 'gateway timeout');
    const raced = await dlq(['purge'], {
      ask: async () => {
        await deadLetter('order.created', 'gateway timeout'); // arrives during the question
        return 'payments';
      },
    });
    expect(raced.code).toBe(1);
    expect(raced.err).toEqual([
      'Not purged: 2 dead letters now, not the 1 you confirmed; run it again.',
    ]);
    expect(await ids()).toHaveLength(2);
  });
});
