import { headers, type Msg, type MsgHdrs } from '@nats-io/transport-node';
import { type NatsBackendOptions, resolveNatsOptions } from './nats-backend.options';
import type { NatsLink } from './nats-connection';
import { encodeHeaders } from './nats-messages';
import { pubAckError } from './nats-pubacks';
import { NatsPublisher } from './nats-publisher';
import type { NatsRoutes } from './nats-routes';
import { natsNames } from './nats-topology';
import { WireHeaders } from './nats-wire';

const text = (h: { encode(): Uint8Array }) => new TextDecoder().decode(h.encode());
const bytes = (s: string) => new TextEncoder().encode(s);

/** A publisher of prefix `p` over `link`, always connected. */
function publisherOver(link: NatsLink, options: NatsBackendOptions = {}): NatsPublisher {
  return new NatsPublisher({
    options: resolveNatsOptions(options),
    names: natsNames('p'),
    routes: {} as NatsRoutes,
    link: () => Promise.resolve(link),
    current: () => link,
    whenConnected: () => Promise.resolve(true),
    inbox: () => '_INBOX.p',
    closing: () => false,
  });
}

describe('NATS headers written', () => {
  it('sends no application header the server would read as its own (Nats-…, any case)', () => {
    const h = encodeHeaders(
      { 'Nats-Msg-Id': 'forwarded', 'nats-expected-stream': 'x', 'NATS-Rollup': 'all', 'x-a': 'b' },
      { messageId: 'm1' },
    );
    expect(text(h)).toBe('NATS/1.0\r\nx-a: b\r\nx-nats-message-id: m1\r\n\r\n');
  });

  it("is a whole MsgHdrs for nats.js: what a client version reads or changes, it finds as nats.js's own", () => {
    const wire = new WireHeaders().add('a', '1').add('b', '2');
    const own = headers();
    own.append('a', '1');
    own.append('b', '2');
    const both: MsgHdrs[] = [wire, own];
    for (const h of both) {
      h.set('a', 'one');
      h.append('b', 'two');
      h.append('c', '3');
      h.delete('c');
    }
    expect(text(wire)).toBe(text(own as unknown as { encode(): Uint8Array }));
    const read = (h: MsgHdrs) => [h.get('a'), h.values('b'), h.has('c'), h.keys(), h.last('b')];
    expect(read(wire)).toEqual(read(own));
    expect(read(wire)).toEqual(['one', ['2', 'two'], false, ['b', 'a'], 'two']);
    expect([...wire]).toEqual([...own]);
    expect([wire.code, wire.hasError, wire.status, wire.description]).toEqual([
      own.code,
      own.hasError,
      own.status,
      own.description,
    ]);
    // Written on after that: still one set of headers.
    wire.add('d', '4');
    expect(wire.get('d')).toBe('4');
    expect(text(wire)).toContain('d: 4\r\n');
  });
});

describe('PubAcks', () => {
  const answer = (data: string, code?: number) =>
    pubAckError({ data: bytes(data), headers: code ? headers(code, 'No Responders') : undefined });

  it('counts a publish as stored only when a stream says so', () => {
    expect(answer('{"stream":"p-messages","seq":7}')).toBeUndefined();
    expect(answer('{"seq":7,"stream":"p-messages","duplicate":true}')).toBeUndefined();
    for (const notStored of ['{"seq":7}', '{}', 'null', '"stream"', '{"s":1}', 'sure'])
      expect(answer(notStored)?.message).toMatch(/^not a PubAck/);
    const refused = answer(
      '{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}',
    );
    expect([refused?.message, refused?.retriable]).toEqual([
      'maximum messages exceeded (503, 10077)',
      false,
    ]);
    expect(answer('', 503)?.noStream).toBe(true);
  });
});

describe('NatsPublisher', () => {
  it('sends the same headers, one Nats-Msg-Id, every time it publishes again', async () => {
    const sent: string[] = [];
    let answer: ((error: Error | null, msg: Msg) => void) | undefined;
    const nc = {
      subscribe: (_: string, { callback }: { callback: typeof answer }) => {
        answer = callback;
        return { isClosed: () => false, unsubscribe: () => undefined };
      },
      publish: (
        _: string,
        __: Uint8Array,
        { reply, headers: h }: { reply: string; headers: WireHeaders },
      ) => {
        sent.push(text(h));
        // The first write is lost with the connection; the second is answered.
        if (sent.length === 1) throw new Error('connection closed');
        queueMicrotask(() =>
          answer?.(null, { subject: reply, data: bytes('{"stream":"s","seq":1}') } as Msg),
        );
      },
    };
    const link = { nc } as unknown as NatsLink;
    const publisher = publisherOver(link);
    await publisher.publish('p.t.a', bytes('{}'), new WireHeaders().add('x-a', 'b'), 'id-1');
    publisher.close();
    expect(sent).toHaveLength(2);
    for (const h of sent) expect(h).toBe('NATS/1.0\r\nx-a: b\r\nNats-Msg-Id: id-1\r\n\r\n');
  });
});

describe('NatsPublisher, a stream without a leader (a cluster electing one)', () => {
  /**
   * A connection whose stream subject has no responder (503) until `electedAt`, then PubAcks, and a
   * JetStream API that never answers meanwhile (nats-server 2.9 answers a leaderless stream's info
   * from nobody): what a client sees for the seconds a cluster elects a stream's new leader.
   */
  function electing(electedAt: number) {
    let answer: ((error: Error | null, msg: Msg) => void) | undefined;
    const infos: number[] = [];
    const nc = {
      subscribe: (_: string, { callback }: { callback: typeof answer }) => {
        answer = callback;
        return { isClosed: () => false, unsubscribe: () => undefined };
      },
      publish: (_: string, __: Uint8Array, { reply }: { reply: string }) => {
        const leader = Date.now() >= electedAt;
        queueMicrotask(() =>
          answer?.(null, {
            subject: reply,
            data: bytes(leader ? '{"stream":"p-messages","seq":1}' : ''),
            headers: leader ? undefined : headers(503, 'No Responders'),
          } as Msg),
        );
      },
    };
    const jsm = {
      streams: {
        // Lost: answered by nobody until the publish gives up on it.
        info: () => {
          infos.push(Date.now());
          return new Promise(() => undefined);
        },
      },
    };
    const link = { nc, jsm } as unknown as NatsLink;
    const publisher = publisherOver(link, { publishTimeoutMs: 8_000 });
    return { publisher, infos };
  }

  it('publishes again until the leader is elected, without waiting on the lost stream check', async () => {
    const started = Date.now();
    const { publisher, infos } = electing(started + 600);
    const publishes = Array.from({ length: 20 }, (_, i) =>
      publisher.publish('p.t.a', bytes('{}'), new WireHeaders(), `id-${i}`),
    );
    await Promise.all(publishes);
    publisher.close();
    // Confirmed within a pause of the election, far from the 8 s deadline.
    expect(Date.now() - started).toBeLessThan(2_500);
    // One check of the streams at a time for all of them, not one per publish.
    expect(infos.length).toBeLessThanOrEqual(2);
  });
});
