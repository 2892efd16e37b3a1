import type { Delivery, Settlement } from '../backend/broker-backend.interface';
import { BROKER_URL, useAmqpFixture } from '../testing/amqp-test.fixture';
import { waitFor } from '../testing/wait-for';
import { captureIo } from './cli.fixture';
import { main } from './main';

/**
 * `nest-messaging dlq` on the local RabbitMQ: real dead letters of a service of this run (unique
 * names, deleted at the end by the fixture), read and changed through the command line in process.
 */
describe('nest-messaging dlq (RabbitMQ)', () => {
  const { make, message, spec, queueDepth, rawConnection, svc, topicPrefix, run } =
    useAmqpFixture();
  const service = svc('cli');
  const deadLetters = `${service}.dead-letter`;

  async function dlq(args: string[], of = service) {
    const captured = captureIo();
    const argv = ['dlq', ...args, '--service', of, '--url', BROKER_URL];
    const code = await main([...argv, '--namespace', `test-amqp-${run}`], captured.io);
    return { code, ...captured };
  }

  const listedIds = async (): Promise<string[]> => {
    const listed = await dlq(['list', '--json']);
    expect(listed.code).toBe(0);
    return (JSON.parse(listed.stdout()) as { letters: { id: string }[] }).letters.map((l) => l.id);
  };

  it('lists, groups, shows, replays and purges real dead letters', async () => {
    const backend = await make();
    let failing = true;
    const handled: Delivery[] = [];
    await backend.subscribe(
      spec(service, 'orders', [`${topicPrefix}.order.#`]),
      async (d): Promise<Settlement> => {
        handled.push(d);
        if (!failing) return { action: 'ack' };
        const { error, errorClass } = JSON.parse(d.body.toString()) as Record<string, string>;
        const at = new Date();
        return {
          action: 'dead-letter',
          failure: { reason: 'max-attempts', message: error, errorClass, at },
        };
      },
    );
    const sent = [
      message(
        { topic: `${topicPrefix}.order.created` },
        { error: 'order 1 not found', errorClass: 'Error' },
      ),
      message(
        { topic: `${topicPrefix}.order.paid` },
        { error: 'order 2 not found', errorClass: 'Error' },
      ),
      message({ topic: `${topicPrefix}.order.paid` }, { error: 'boom', errorClass: 'TypeError' }),
    ];
    for (const m of sent) await backend.publish(m, { mandatory: true });
    await waitFor(async () => (await queueDepth(deadLetters)) === 3, { message: '3 dead letters' });

    const table = await dlq(['list']);
    expect(table.code).toBe(0);
    expect(table.err).toEqual([]);
    expect(table.out[0]).toMatch(/^ID +DEAD-LETTERED +TOPIC +REASON +ATTEMPTS +ERROR$/);
    expect(table.out[1]).toMatch(
      new RegExp(`${topicPrefix}\\.order\\.created +max-attempts +1 +Error: order 1 not found$`),
    );
    expect(table.out.at(-1)).toBe(`1-3: 3 dead letters of '${service}'.`);

    const json = JSON.parse((await dlq(['list', '--json'])).stdout());
    expect(json).toMatchObject({ service, count: 3, more: false });
    expect(json.letters.map((l: { messageId: string }) => l.messageId)).toEqual(
      sent.map((m) => m.messageId),
    );
    expect(json.letters[0]).toMatchObject({
      queue: `${service}.orders`,
      headers: { 'x-test': 'yes' },
      payload: { error: 'order 1 not found', errorClass: 'Error' },
    });
    const [first, second, third] = json.letters.map((l: { id: string }) => l.id) as string[];

    const groups = await dlq(['list', '--group-by', 'error']);
    expect(groups.code).toBe(0);
    expect(groups.out[1]).toMatch(/^ +2 .* +Error: order <n> not found$/);
    expect(groups.out[2]).toMatch(/^ +1 .* +TypeError: boom$/);
    const grouped = JSON.parse((await dlq(['list', '--group-by', 'error', '--json'])).stdout());
    expect(grouped.groups[0]).toMatchObject({
      count: 2,
      error: 'Error: order <n> not found',
      topics: [`${topicPrefix}.order.created`, `${topicPrefix}.order.paid`],
    });
    const filtered = JSON.parse((await dlq(['list', '--error', '/^boom$/', '--json'])).stdout());
    expect(filtered.letters.map((l: { id: string }) => l.id)).toEqual([third]);

    const shown = await dlq(['show', second]);
    expect(shown.code).toBe(0);
    expect(shown.out).toEqual(
      expect.arrayContaining([
        `id             ${second}`,
        `message id     ${sent[1].messageId}`,
        `topic          ${topicPrefix}.order.paid`,
        '  x-test  yes',
        '    "error": "order 2 not found",',
      ]),
    );

    failing = false;
    const replayed = await dlq(['replay', first]);
    expect(replayed).toMatchObject({
      code: 0,
      out: [`Replayed 1 of 1 dead letter of '${service}'.`],
    });
    await waitFor(() => handled.length === 4, { message: 'the replayed message handled' });
    expect(handled[3]).toMatchObject({
      messageId: sent[0].messageId,
      attempt: 1,
      queue: `${service}.orders`,
    });
    expect(await listedIds()).toEqual([second, third]);

    const refused = await dlq(['purge']);
    expect(refused.code).toBe(2);
    expect(refused.err[0]).toMatch(/Pass --yes/);
    expect(await queueDepth(deadLetters)).toBe(2);

    const purged = await dlq(['purge', '--yes', '--json']);
    expect(purged.code).toBe(0);
    expect(JSON.parse(purged.stdout())).toEqual({ service, purged: 2 });
    expect(await queueDepth(deadLetters)).toBe(0);
    expect(await listedIds()).toEqual([]);
  });

  it('replays --all, naming the letters it could not replay (their queue is gone)', async () => {
    const other = svc('cli-all');
    const consumer = await make();
    const deadLetter = async (): Promise<Settlement> => ({
      action: 'dead-letter',
      failure: { reason: 'max-attempts', message: 'x', errorClass: 'Error', at: new Date() },
    });
    await consumer.subscribe(spec(other, 'kept', [`${topicPrefix}.kept`]), deadLetter);
    await consumer.subscribe(spec(other, 'gone', [`${topicPrefix}.gone`]), deadLetter);
    await consumer.publish(message({ topic: `${topicPrefix}.kept` }), { mandatory: true });
    await consumer.publish(message({ topic: `${topicPrefix}.gone` }), { mandatory: true });
    await waitFor(async () => (await queueDepth(`${other}.dead-letter`)) === 2);
    // The consumer goes first: a consumer cancelled by the delete re-declares its queue.
    await consumer.close();
    const ch = await (await rawConnection()).createChannel();
    await ch.deleteQueue(`${other}.gone`);
    await ch.close();
    const ids = JSON.parse((await dlq(['list', '--json'], other)).stdout()).letters.map(
      (l: { id: string }) => l.id,
    ) as string[];

    const all = await dlq(['replay', '--all'], other);
    expect(all.code).toBe(1);
    // One pass of the backend (replayDeadLettersWhere) names each failure with its own error.
    expect(all.out).toEqual([
      `Replayed 1 of 2 dead letters of '${other}'.`,
      'Not replayed (1):',
      expect.stringMatching(new RegExp(`^  ${ids[1]}  No queue is bound to '${other}\\.gone'`)),
    ]);
    expect(await queueDepth(`${other}.kept`)).toBe(1);
    expect(await queueDepth(`${other}.dead-letter`)).toBe(1);
  });

  it('says clearly when the broker cannot be reached: exit code 1, no password, no stack', async () => {
    const { io, out, err } = captureIo();
    const argv = ['dlq', 'list', '--service', service, '--connect-timeout', '1s'];
    const url = 'amqp://guest:s3cret@127.0.0.1:1';
    expect(await main([...argv, '--url', url, '--namespace', `test-amqp-${run}`], io)).toBe(1);
    expect(out).toEqual([]);
    // A warning per failed attempt while it retries (never silent), then the error it gave up with.
    const last = err.at(-1) as string;
    expect(last).toMatch(
      /^error: Could not connect to RabbitMQ at amqp:\/\/guest:\*\*\*@127\.0\.0\.1:1 .*check the port/,
    );
    expect(err.length).toBeGreaterThan(1);
    for (const line of err.slice(0, -1)) {
      expect(line).toMatch(
        /^warning: \[AmqpBackend\] connecting to amqp:\/\/guest:\*\*\*@127\.0\.0\.1:1: /,
      );
    }
    expect(err.join('\n')).not.toContain('s3cret');
    expect(err.join('\n')).not.toMatch(/\n\s+at /);
  });
});
