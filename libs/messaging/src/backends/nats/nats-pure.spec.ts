import { headers, type Msg, MsgHdrsImpl, MsgImpl, type Publisher } from '@nats-io/transport-node';
import { topicMatches } from '../../backend/topic-matcher';
import { MessagingConfigError } from '../../errors/messaging.errors';
import { Logger } from '@nestjs/common';
import { BackendEventHub } from '../../backend/backend-events';
import { waitFor } from '../../testing/wait-for';
import { resolveNatsOptions } from './nats-backend.options';
import { loadNatsModules, type NatsLink } from './nats-connection';
import { NatsConsumer, RECOVER_CHECK_MS } from './nats-consumer';
import { NatsDelayer } from './nats-delayer';
import { PulledMessage } from './nats-pulled-message';
import { decodeHeaders, encodeHeaders } from './nats-messages';
import { headersOf, statusOf, WireHeaders } from './nats-wire';
import { duplicateWindowMs } from './nats-declarations';
import {
  nameOfSubject,
  natsFilters,
  natsNames,
  routeFilters,
  subjectMatches,
  subjectOfName,
} from './nats-topology';

describe('NATS topology (pure)', () => {
  it('maps AMQP patterns to NATS filters that receive at least what they match', () => {
    expect(natsFilters('order.created')).toEqual(['order.created']);
    expect(natsFilters('order.*')).toEqual(['order.*']);
    expect(natsFilters('order.#')).toEqual(['order', 'order.>']);
    expect(natsFilters('#')).toEqual(['>']);
    expect(natsFilters('a.#.b')).toEqual(['a.>']);
    expect(natsFilters('#.b')).toEqual(['>']);
    expect(natsFilters('a.*.#.#')).toEqual(['a.*', 'a.*.>']);
    expect(() => natsFilters('a.b>c')).toThrow(MessagingConfigError);
  });

  it('never lets a filter miss a topic its pattern matches', () => {
    const patterns = ['order.*', 'order.#', '#', 'a.#.b', '#.b', 'a.*.#', '*.*'];
    const topics = [
      'order',
      'order.created',
      'order.created.v2',
      'a.b',
      'a.x.b',
      'a.x.y.b',
      'b',
      'x.y',
    ];
    for (const pattern of patterns) {
      for (const topic of topics) {
        if (!topicMatches(pattern, topic)) continue;
        const received = natsFilters(pattern).some((f) => subjectMatches(f, topic));
        expect({ pattern, topic, received }).toEqual({ pattern, topic, received: true });
      }
    }
  });

  it('matches NATS subjects as the server does', () => {
    expect(subjectMatches('a.*', 'a.b')).toBe(true);
    expect(subjectMatches('a.*', 'a.b.c')).toBe(false);
    expect(subjectMatches('a.>', 'a')).toBe(false);
    expect(subjectMatches('a.>', 'a.b.c')).toBe(true);
    expect(subjectMatches('>', 'a')).toBe(true);
  });

  it('gives a route one consumer per distinct filter, with stable names', () => {
    const names = natsNames('p');
    const filters = routeFilters(names, 'svc.order.*', ['order.*', 'order.#']);
    expect(filters.map((f) => f.filter)).toEqual(['p.t.order', 'p.t.order.*', 'p.t.order.>']);
    expect(filters[1].patterns).toEqual(['order.*']);
    expect(routeFilters(names, 'svc.order.*', ['order.*'])[0].name).toBe(filters[1].name);
    for (const f of filters) expect(f.name).toMatch(/^r-svc_order__-[0-9a-f]{10}$/);
  });

  it('orders the filters of a route by filter, whatever the order of its topics', () => {
    // Two versions of a service (a rolling deploy) must agree on which overlapping filter handles.
    const names = natsNames('p');
    const one = routeFilters(names, 'svc.r', ['order.#', 'order.*', 'a.b']);
    const other = routeFilters(names, 'svc.r', ['a.b', 'order.*', 'order.#']);
    expect(one.map((f) => f.filter)).toEqual([
      'p.t.a.b',
      'p.t.order',
      'p.t.order.*',
      'p.t.order.>',
    ]);
    expect(other).toEqual(one);
  });

  it('sets a duplicate window of at least 10 minutes and 4 ackWaitMs, within max_age', () => {
    expect(duplicateWindowMs(30_000, 0)).toBe(600_000);
    expect(duplicateWindowMs(300_000, 0)).toBe(1_200_000);
    expect(duplicateWindowMs(300_000, 3_600_000)).toBe(1_200_000);
    expect(duplicateWindowMs(30_000, 60_000)).toBe(60_000);
  });

  it('encodes queue names with wildcards as one literal subject', () => {
    const names = natsNames('p');
    expect(names.queueSubject('svc.order.*')).toBe('p.q.svc.order.%2A');
    expect(names.queueSubject('svc.a b>%')).toBe('p.q.svc.a%20b%3E%25');
    expect(nameOfSubject(subjectOfName('svc.a b>%.*.#'))).toBe('svc.a b>%.*.#');
    expect(names.deadLetterSubject('payments')).toBe('p.dlq.payments.dead-letter');
  });
});

/** A message as nats.js hands it to a subscription: header block `wire`, then `body`. */
function receivedMsg(wire: Uint8Array, body: Uint8Array): Msg {
  const data = Buffer.concat([wire, body]);
  const arg = {
    subject: new TextEncoder().encode('s'),
    sid: 1,
    hdr: wire.length,
    size: data.length,
  };
  return new MsgImpl(arg, data, {} as Publisher);
}

describe('NATS headers', () => {
  it('round-trips header types and values a header line cannot carry', () => {
    const app = {
      tenant: 'acme',
      'x-messaging-attempt': 3,
      flag: true,
      multi: 'line one\nline two',
      padded: ' x ',
      empty: '',
    };
    const wire = encodeHeaders(app, {
      messageId: 'm1',
      correlationId: 'c1',
      contentType: 'application/json',
      timestamp: 1700000000000,
      replyTo: '_INBOX.x.1',
      due: 1700000000500,
    }).encode();
    // Read as this backend reads a received message (its raw bytes), and through nats.js's parse.
    const body = Buffer.from('{}');
    const received = receivedMsg(wire, body);
    expect(Buffer.from(received.data)).toEqual(body);
    for (const source of [headersOf(received), MsgHdrsImpl.decode(wire)]) {
      const { headers: back, props } = decodeHeaders(source);
      expect(back).toEqual(app);
      expect(props).toEqual({
        messageId: 'm1',
        correlationId: 'c1',
        contentType: 'application/json',
        timestamp: 1700000000000,
        replyTo: '_INBOX.x.1',
        due: 1700000000500,
      });
    }
    expect(typeof headersOf(received)).toBe('string');
  });

  it('reads the status of a received message, from its bytes or from nats.js', () => {
    const noResponders = new TextEncoder().encode('NATS/1.0 503\r\n\r\n');
    expect(statusOf(headersOf(receivedMsg(noResponders, Buffer.alloc(0))))).toBe(503);
    expect(statusOf(MsgHdrsImpl.decode(noResponders))).toBe(503);
    const plain = new WireHeaders().add('a', 'b').encode();
    expect(statusOf(headersOf(receivedMsg(plain, Buffer.alloc(0))))).toBe(0);
    expect(statusOf(undefined)).toBe(0);
  });

  it("reads a foreign producer's plain headers as strings, its content type in any case", () => {
    const h = headers();
    h.set('content-type', 'text/plain');
    h.set('x-messaging-attempt', '999');
    h.set('Nats-Msg-Id', 'abc');
    const { headers: back, props } = decodeHeaders(
      headersOf(receivedMsg((h as MsgHdrsImpl).encode(), Buffer.alloc(0))),
    );
    expect(back).toEqual({ 'x-messaging-attempt': '999' });
    expect(props.contentType).toBe('text/plain');
    expect(props.messageId).toBe('abc');
  });
});

describe('PulledMessage', () => {
  it('reads its delivery info from both forms of the ack subject, once', () => {
    const at = 1_700_000_000_123;
    const message = (reply: string) => new PulledMessage({ reply } as unknown as Msg);
    for (const reply of [
      `$JS.ACK.s-messages.r-c.3.42.7.${at}000000.5`,
      `$JS.ACK.hub.ACCHASH.s-messages.r-c.3.42.7.${at}000000.5.token`,
    ]) {
      const m = message(reply);
      expect([m.stream, m.seq, m.deliveryCount, m.storedAtMs]).toEqual(['s-messages', 42, 3, at]);
    }
  });
});

describe('NatsBackend options', () => {
  it('applies the defaults', () => {
    expect(resolveNatsOptions()).toMatchObject({
      servers: ['nats://127.0.0.1:4222'],
      prefix: 'messaging',
      ackWaitMs: 30_000,
      deliveryLimit: 20,
      confirmAcks: false,
      maxWaitingRequests: 1_000,
    });
    expect(resolveNatsOptions({ servers: ['nats://a:4222', 'nats://b:4222'] }).servers).toEqual([
      'nats://a:4222',
      'nats://b:4222',
    ]);
  });

  it.each([
    [{ server: 'nats://x' }, /no option 'server'; did you mean 'servers'/],
    [{ servers: 42 }, /servers must be a URL string/],
    [{ servers: [] }, /servers must be a URL string/],
    [{ servers: 'http://x y' }, /not a NATS URL/],
    [{ prefix: 'a.b' }, /namespace must be letters, digits/],
    [{ ackWaitMs: 10 }, /ackWaitMs must be a whole number from 500/],
    [{ storage: 'disk' }, /storage must be 'file' or 'memory'/],
    [{ user: 'u' }, /user and pass go together/],
    [{ confirmAcks: 'yes' }, /confirmAcks must be true or false, got "yes"/],
    [{ confirmAck: true }, /no option 'confirmAck'; did you mean 'confirmAcks'/],
    [{ maxWaitingRequests: -1 }, /maxWaitingRequests must be a whole number from 0/],
  ])('rejects %j with an error that names the fix', (options, message) => {
    expect(() => resolveNatsOptions(options as never)).toThrow(MessagingConfigError);
    expect(() => resolveNatsOptions(options as never)).toThrow(message);
  });

  it('ends the backoff pause of a failing delayer at once when stopped', async () => {
    let links = 0;
    const delayer = new NatsDelayer({
      confirmAcks: false,
      names: natsNames('p'),
      prefix: 'p',
      hub: new BackendEventHub(),
      logger: { warn: () => undefined },
      link: () => {
        links++;
        return Promise.reject(new Error('no server'));
      },
      publish: () => Promise.resolve(),
    });
    delayer.start();
    // After failures 1 and 2 (pauses of 200 and 400 ms) the third fails: its 800 ms pause begins.
    await waitFor(() => links === 3);
    await new Promise((r) => setImmediate(r));
    const stoppedAt = Date.now();
    await delayer.stop();
    await (delayer as unknown as { running: Promise<void> }).running;
    expect(Date.now() - stoppedAt).toBeLessThan(150);
  });

  it('ends the backoff pause of a failing pull at once when cancelled', async () => {
    const hub = new BackendEventHub();
    const errors: string[] = [];
    hub.on('error', (e) => errors.push(e.message));
    const options = resolveNatsOptions({});
    let declared = false;
    let checks = 0;
    const fake = fakePullConsumer(options, hub, () => {
      if (declared) {
        checks++;
        return Promise.reject(new Error('JetStream unavailable'));
      }
      declared = true;
      return Promise.resolve({
        config: { ack_wait: options.ackWaitMs * 1_000_000, max_deliver: -1 },
      });
    });
    const { consumer } = fake;
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    await consumer.start();
    expect(fake.pulls()).toBe(1);
    // The pull subscription fails: the consumer is checked after a pause, and again after a longer one.
    fake.failPull(new Error('permissions violation'));
    expect(consumer.state.attached).toBe(false);
    await waitFor(() => checks === 2);
    await new Promise((r) => setImmediate(r));
    const running = timers();
    const cancelledAt = Date.now();
    await consumer.cancel();
    await consumer.drain(0);
    // The puller wakes from its pause and ends: no check and no pull after the cancel.
    expect(Date.now() - cancelledAt).toBeLessThan(150);
    await new Promise((r) => setImmediate(r));
    // Nothing of it keeps the process alive: its backoff timer is gone (the others are unref'd).
    expect(running - timers()).toBe(1);
    expect(checks).toBe(2);
    expect(fake.pulls()).toBe(1);
    // Reported once for the streak, with what failed.
    expect(errors).toEqual([
      "NATS consumer of queue 's.r': pull subscription failed: permissions violation; pulling again",
    ]);
  });

  it('tries again the check of a failing pull that gets no answer (a cluster electing the leader), not after the API timeout', async () => {
    const hub = new BackendEventHub();
    const errors: string[] = [];
    hub.on('error', (e) => errors.push(e.message));
    const options = resolveNatsOptions({ publishTimeoutMs: 60_000 });
    let infos = 0;
    const found = { config: { ack_wait: options.ackWaitMs * 1_000_000, max_deliver: -1 } };
    // Declared (1st), then the first check is lost: answered by nobody (2nd), then found.
    const fake = fakePullConsumer(options, hub, () =>
      ++infos === 2 ? new Promise(() => undefined) : Promise.resolve(found),
    );
    const { consumer } = fake;
    await consumer.start();
    expect(fake.pulls()).toBe(1);
    const failedAt = Date.now();
    fake.failPull(new Error('connection lost'));
    // Pulling again once the second check is answered: well before the API's 60 s timeout.
    await waitFor(() => fake.pulls() === 2, { timeoutMs: RECOVER_CHECK_MS + 3_000 });
    expect(Date.now() - failedAt).toBeGreaterThanOrEqual(RECOVER_CHECK_MS);
    expect(infos).toBe(3);
    expect(consumer.state.attached).toBe(true);
    await consumer.cancel();
    await consumer.drain(0);
    expect(errors).toEqual([
      "NATS consumer of queue 's.r': pull subscription failed: connection lost; pulling again",
    ]);
  });

  it('names the packages to install when the NATS client is missing', () => {
    const missing = (id: string): never => {
      throw new Error(`Cannot find module '${id}'`);
    };
    expect(() => loadNatsModules(missing)).toThrow(
      /npm install @nats-io\/transport-node @nats-io\/jetstream/,
    );
  });
});

/**
 * A pull consumer of queue `s.r` on a fake link whose `consumers.info` answers with `info`: its pull
 * requests counted, its pull subscription failed at will.
 */
function fakePullConsumer(
  options: ReturnType<typeof resolveNatsOptions>,
  hub: BackendEventHub,
  info: () => Promise<unknown>,
) {
  let pulls = 0;
  let deliver: ((error: Error | null, msg: unknown) => void) | undefined;
  const link = {
    jsm: { consumers: { info, update: () => Promise.resolve({}) } },
    nc: {
      subscribe: (subject: string, opts: { callback: typeof deliver }) => {
        deliver = opts.callback;
        return {
          getSubject: () => subject,
          unsubscribe: () => undefined,
          drain: () => Promise.resolve(),
        };
      },
      publish: () => pulls++,
      flush: () => Promise.resolve(),
    },
  } as unknown as NatsLink;
  const consumer = new NatsConsumer(
    { service: 's', queue: 's.r', topics: [], external: true, concurrency: 1 },
    () => Promise.resolve({ action: 'ack' }),
    {
      options,
      names: natsNames('p'),
      hub,
      logger: new Logger('test'),
      link: () => Promise.resolve(link),
      current: () => link,
      inbox: () => '_INBOX.test',
      closing: () => false,
      publish: () => Promise.resolve(),
    },
  );
  return {
    consumer,
    pulls: () => pulls,
    failPull: (error: Error) => deliver?.(error, undefined),
  };
}
