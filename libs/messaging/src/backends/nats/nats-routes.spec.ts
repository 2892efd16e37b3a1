import type { JetStreamManager } from '@nats-io/jetstream';
import type { OutgoingMessage } from '../../backend/broker-backend.interface';
import {
  PublishFailedError,
  PublishTimeoutError,
  UnroutableError,
} from '../../errors/messaging.errors';
import { resolveNatsOptions } from './nats-backend.options';
import type { NatsLink } from './nats-connection';
import { NatsPublisher } from './nats-publisher';
import { NatsRoutes, RouteLookupError } from './nats-routes';
import { describeRoute, natsNames } from './nats-topology';

/**
 * What a fake server answers to one consumer listing: routes, an error, or never. `of` is the
 * stream's count of its consumers when the listing left some out (a cluster electing their leaders).
 */
type Answer = { routes: string[]; of?: number } | { error: Error } | 'never';

/**
 * A JetStream manager whose consumer listings answer `answers` in turn (the last one repeats), and
 * whose stream info counts the consumers of the latest listing (or its `of`).
 */
function fakeJsm(answers: Answer[]): { jsm: JetStreamManager; lookups: () => number } {
  let lookups = 0;
  let count = 0;
  const jsm = {
    consumers: {
      list: () => ({
        async *[Symbol.asyncIterator]() {
          const answer = answers[Math.min(lookups++, answers.length - 1)];
          if (answer === 'never') await new Promise(() => undefined);
          else if ('error' in answer) throw answer.error;
          else {
            count = answer.of ?? answer.routes.length;
            for (const topic of answer.routes)
              yield { config: { description: describeRoute({ queue: 'q', patterns: [topic] }) } };
          }
        },
      }),
    },
    streams: {
      info: () => Promise.resolve({ state: { consumer_count: count } }),
    },
  } as unknown as JetStreamManager;
  return { jsm, lookups: () => lookups };
}

const named = (name: string, message: string) => Object.assign(new Error(message), { name });

describe('NatsRoutes lookups', () => {
  it('gives up a lookup that gets no answer, and the next check asks again instead of joining it', async () => {
    const { jsm, lookups } = fakeJsm(['never', { routes: ['a.b'] }]);
    const routes = new NatsRoutes('s', 5_000, 100);
    const first = routes.hasTopic(jsm, 'a.b');
    const joined = routes.hasTopic(jsm, 'a.b');
    await expect(first).rejects.toBeInstanceOf(RouteLookupError);
    await expect(joined).rejects.toThrow(/no answer within 100 ms/);
    expect(lookups()).toBe(1);
    await expect(routes.hasTopic(jsm, 'a.b')).resolves.toBe(true);
    expect(lookups()).toBe(2);
  });

  it('gives up a lookup in flight at once when the connection was made again', async () => {
    const { jsm } = fakeJsm(['never', { routes: ['a.b'] }]);
    const routes = new NatsRoutes('s', 5_000, 60_000);
    const startedAt = Date.now();
    const lost = routes.hasTopic(jsm, 'a.b');
    routes.reconnected();
    await expect(lost).rejects.toThrow(/connection was lost/);
    expect(Date.now() - startedAt).toBeLessThan(1_000);
    await expect(routes.hasTopic(jsm, 'a.b')).resolves.toBe(true);
  });

  it('reads a stream that does not exist as no route at all', async () => {
    const missing = Object.assign(new Error('stream not found'), { code: 10059 });
    const { jsm } = fakeJsm([{ error: missing }]);
    await expect(new NatsRoutes('s', 5_000, 1_000).hasTopic(jsm, 'a.b')).resolves.toBe(false);
  });
});

describe('NatsPublisher route check', () => {
  const message: OutgoingMessage = {
    topic: 'a.b',
    body: Buffer.from('{}'),
    headers: {},
    messageId: 'm1',
    timestamp: 0,
  };
  const publisher = (jsm: JetStreamManager, connected = true) => {
    const link = { jsm } as NatsLink;
    return new NatsPublisher({
      options: resolveNatsOptions({ publishTimeoutMs: 600 }),
      names: natsNames('p'),
      routes: new NatsRoutes('p-messages', 5_000, 150),
      link: () => Promise.resolve(link),
      current: () => link,
      whenConnected: (deadline) =>
        connected
          ? Promise.resolve(true)
          : new Promise((r) => setTimeout(() => r(false), deadline - Date.now())),
      inbox: () => '_INBOX.p',
      closing: () => false,
    });
  };

  it('asks again when a lookup is lost (timeout, no responders while JetStream comes back)', async () => {
    const { jsm, lookups } = fakeJsm([
      'never',
      { error: named('NoResponders', 'no responders') },
      { routes: ['a.*'] },
    ]);
    await expect(publisher(jsm).assertRoutable(message, Date.now() + 600)).resolves.toBeUndefined();
    expect(lookups()).toBe(3);
  });

  it('asks again when a listing left consumers out (a cluster electing their leaders), never unroutable', async () => {
    const { jsm, lookups } = fakeJsm([
      { routes: ['x.y'], of: 2 },
      { routes: ['x.y'], of: 2 },
      { routes: ['x.y', 'a.*'] },
    ]);
    await expect(publisher(jsm).assertRoutable(message, Date.now() + 600)).resolves.toBeUndefined();
    expect(lookups()).toBe(3);
  });

  it('rejects with UnroutableError when the lookup says no route takes it', async () => {
    const { jsm } = fakeJsm([{ routes: ['x.y'] }]);
    await expect(publisher(jsm).assertRoutable(message, Date.now() + 600)).rejects.toBeInstanceOf(
      UnroutableError,
    );
  });

  it.each([
    ['never answered', ['never'] as Answer[], true],
    ['failing', [{ error: named('TimeoutError', 'timeout') }] as Answer[], true],
    ['not connected', [{ routes: ['a.b'] }] as Answer[], false],
  ])(
    'rejects with PublishTimeoutError by its deadline when lookups keep being %s',
    async (_, answers, connected) => {
      const { jsm } = fakeJsm(answers);
      const startedAt = Date.now();
      const error = await publisher(jsm, connected)
        .assertRoutable(message, Date.now() + 600)
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PublishTimeoutError);
      expect((error as Error).message).toMatch(
        /did not answer the route lookup of a publish to topic 'a\.b' within 600 ms .*nothing was published/,
      );
      expect(Date.now() - startedAt).toBeLessThan(600 + 300);
    },
  );

  it('rejects with PublishFailedError at once when the server refuses the lookup', async () => {
    const { jsm } = fakeJsm([
      {
        error: named('PermissionViolationError', "Permissions Violation for Publish to '$JS.API'"),
      },
    ]);
    const error = await publisher(jsm)
      .assertRoutable(message, Date.now() + 600)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PublishFailedError);
    expect((error as Error).message).toMatch(/refused the route lookup.*\$JS\.API/);
  });
});
