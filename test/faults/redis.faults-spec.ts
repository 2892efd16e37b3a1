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
import { ChaosProxy } from './support/chaos-proxy';
import { PrivateServer } from './support/private-server';
import { StreamRun } from './support/stream-run';
import {
  badInput,
  blackHole,
  consumerKills,
  retriesAcrossRestart,
  type RawMessage,
  type Rig,
  serverKill,
  tcpCuts,
} from './support/stream-scenarios';

describe('faults: Redis Streams (private redis-server)', () => {
  let server: PrivateServer;
  let proxy: ChaosProxy;
  let run: StreamRun | undefined;

  beforeAll(async () => {
    server = await PrivateServer.redis();
    proxy = new ChaosProxy(server.port);
    await proxy.listen();
  }, 60_000);
  afterEach(async () => {
    proxy.restore();
    await run?.close();
    run = undefined;
  });
  afterAll(async () => {
    await proxy?.close();
    await server?.stop();
  }, 60_000);

  const start: Rig['start'] = (
    scenario: string,
    extra: { viaProxy?: boolean; handlerMs?: [number, number]; maxBodyBytes?: number } = {},
  ) =>
    StreamRun.start({
      scenario,
      backend: { kind: 'redis', options: { url: server.url, claimIdleMs: 2_000 } },
      serviceUrl: extra.viaProxy ? `redis://127.0.0.1:${proxy.port}` : undefined,
      consumers: 2,
      consumer: {
        handlerMs: extra.handlerMs ?? [5, 50],
        retryDelayMs: 300,
        maxBodyBytes: extra.maxBodyBytes,
      },
    }).then((r) => (run = r));

  /** `XADD` of an entry as any Redis client can write one, to the run's topic stream. */
  const writeRaw = async (r: StreamRun, message: RawMessage) => {
    const redis = new Redis(server.url);
    try {
      const fields: Array<string | Buffer> = ['body', message.body, 'message-id', message.id];
      fields.push('headers', JSON.stringify(message.headers), 'content-type', 'application/json');
      if (message.contentEncoding) fields.push('content-encoding', message.contentEncoding);
      await redis.xadd(`${r.prefix}:t:${r.topic}`, '*', ...fields);
    } finally {
      redis.disconnect();
    }
  };

  const rig: Rig = {
    id: 'R',
    get server() {
      return server;
    },
    get proxy() {
      return proxy;
    },
    start,
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
