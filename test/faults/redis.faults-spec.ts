/**
 * Faults under load on Redis Streams (`RedisStreamsBackend`), on a private `redis-server` started
 * and ended by this file (own port, own data dir, `appendonly yes`, `appendfsync always`); the
 * shared Redis on 6379 is never used. Each run has a key prefix of its own.
 *
 * | id | fault                                                               | pass bar                                  |
 * | -- | ------------------------------------------------------------------- | ----------------------------------------- |
 * | R1 | 5 TCP cuts (RST both legs) through the chaos proxy, producer and consumers | bar                                |
 * | R2 | black hole of 3 s through the proxy                                 | bar; every publish settles                |
 * | R3 | server SIGKILL under load, restarted on its append-only file        | 0 confirmed lost; bar                     |
 * | R4 | SIGKILL of a consumer mid-handler (200 ms handlers), 3 times        | redelivered by the claim; bar             |
 * | R5 | retries (`failUntil: 2`, 300 ms) and delayed publishes across a server SIGKILL + restart | all handled; bar |
 * | R6 | bad entries written raw (see below)                                 | each dead-lettered with its reason; consumers alive |
 */
import { Redis } from 'ioredis';
import { PrivateServer } from './support/private-server';
import type { StreamRun } from './support/stream-run';
import {
  badInput,
  blackHole,
  consumerKills,
  retriesAcrossRestart,
  type RawMessage,
  serverKill,
  tcpCuts,
  useRig,
} from './support/stream-scenarios';

describe('faults: Redis Streams (private redis-server)', () => {
  const rig = useRig({
    id: 'R',
    startServer: () => PrivateServer.redis(),
    backend: (url) => ({ kind: 'redis', options: { url, claimIdleMs: 2_000 } }),
    scheme: 'redis',
  });

  /** `XADD` of an entry as any Redis client can write one, to the run's topic stream. */
  const writeRaw = async (r: StreamRun, message: RawMessage) => {
    const redis = new Redis(rig.server.url);
    try {
      const fields: Array<string | Buffer> = ['body', message.body, 'message-id', message.id];
      fields.push('headers', JSON.stringify(message.headers), 'content-type', 'application/json');
      if (message.contentEncoding) fields.push('content-encoding', message.contentEncoding);
      await redis.xadd(`${r.prefix}:t:${r.topic}`, '*', ...fields);
    } finally {
      redis.disconnect();
    }
  };

  it('R3 server SIGKILL + restart under load: 0 confirmed lost', () => serverKill(rig));
  it('R1 five TCP cuts through the proxy (producer and consumers): nothing lost', () =>
    tcpCuts(rig));
  it('R4 consumer SIGKILL mid-handler x3: redelivered, nothing lost', () => consumerKills(rig));
  it('R2 black hole of 3 s through the proxy: every publish settles, nothing lost', () =>
    blackHole(rig));
  it('R5 retries and delayed messages across a server SIGKILL + restart', () =>
    retriesAcrossRestart(rig));
  it('R6 bad input is dead-lettered with its reason and never crashes a consumer', () =>
    badInput(rig, writeRaw));
});
