/**
 * Faults under load on NATS JetStream (`NatsBackend`), on a private `nats-server -js -sd <dir>`
 * started and ended by this file (own port, own store dir); the shared NATS on 4222 is never used.
 * Each run has a prefix (streams, subjects) of its own.
 *
 * | id | fault                                                               | pass bar                                  |
 * | -- | ------------------------------------------------------------------- | ----------------------------------------- |
 * | N1 | 5 TCP cuts (RST both legs) through the chaos proxy, producer and consumers | bar                                |
 * | N2 | black hole of 3 s through the proxy                                 | bar; every publish settles                |
 * | N3 | server SIGKILL under load, restarted on its file store              | 0 confirmed lost; bar                     |
 * | N4 | SIGKILL of a consumer mid-handler (200 ms handlers), 3 times        | redelivered after `ackWaitMs`; bar        |
 * | N5 | half fail once (retry 300 ms), a fifth delayed 2 s; server SIGKILL + restart | all handled, retried on attempt 2, none early; bar |
 * | N6 | bad messages published raw (see below)                              | each dead-lettered with its reason; consumers alive |
 */
import { jetstream } from '@nats-io/jetstream';
import { connect, headers } from '@nats-io/transport-node';
import { PrivateServer } from './support/private-server';
import type { StreamRun } from './support/stream-run';
import {
  badInput,
  retriesAcrossRestart,
  blackHole,
  consumerKills,
  type RawMessage,
  serverKill,
  tcpCuts,
  useRig,
} from './support/stream-scenarios';

describe('faults: NATS JetStream (private nats-server)', () => {
  const rig = useRig({
    id: 'N',
    serverKillRepeatsAtMost: 500, // everything delivered before the kill at 500 (docs/reliability.md)
    startServer: () => PrivateServer.nats(),
    backend: (url) => ({ kind: 'nats', options: { servers: url, ackWaitMs: 3_000 } }),
    scheme: 'nats',
  });

  /** A JetStream publish as any NATS client can make one, to the run's topic subject. */
  const writeRaw = async (r: StreamRun, message: RawMessage) => {
    const nc = await connect({ servers: rig.server.url });
    try {
      const h = headers();
      h.set('x-nats-message-id', message.id);
      h.set('Content-Type', 'application/json');
      if (message.contentEncoding) h.set('Content-Encoding', message.contentEncoding);
      for (const [name, value] of Object.entries(message.headers)) h.set(name, value);
      await jetstream(nc).publish(`${r.prefix}.t.${r.topic}`, message.body, { headers: h });
    } finally {
      await nc.close();
    }
  };

  it('N3 server SIGKILL + restart under load: 0 confirmed lost', () => serverKill(rig));
  it('N1 five TCP cuts through the proxy (producer and consumers): nothing lost', () =>
    tcpCuts(rig));
  it('N4 consumer SIGKILL mid-handler x3: redelivered, nothing lost', () => consumerKills(rig));
  it('N2 black hole of 3 s through the proxy: every publish settles, nothing lost', () =>
    blackHole(rig));
  it('N5 retries and delays across a server SIGKILL + restart: all handled, none early', () =>
    retriesAcrossRestart(rig));
  it('N6 bad input is dead-lettered with its reason and never crashes a consumer', () =>
    badInput(rig, writeRaw));
});
