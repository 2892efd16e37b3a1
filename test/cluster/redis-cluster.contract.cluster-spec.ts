/**
 * The shared backend contract (`runBackendContract`, the same suite as redis.contract.redis.spec.ts)
 * against a private Redis Cluster of 3 masters + 3 replicas (support/redis-cluster.ts), through
 * `RedisStreamsBackend`'s `cluster` option with a hash-tagged prefix: every contract test must pass
 * there as on one server; then every key the suite left is on the master of the prefix's slot (and
 * its replica), none on the two other masters. Started and ended by this file; the shared Redis is
 * never used.
 */
import { randomUUID } from 'node:crypto';
import { runBackendContract } from '@app/messaging/testing';
import { RedisStreamsBackend } from '@app/messaging/redis';
import { PrivateRedisCluster } from '../faults/support/redis-cluster';

const PREFIX = `{contract-${randomUUID().slice(0, 8)}}`;
let cluster: PrivateRedisCluster | undefined;

beforeAll(async () => {
  cluster = await PrivateRedisCluster.start();
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
}, 60_000);

runBackendContract(
  'redis cluster (3 masters + 3 replicas)',
  // Short block times keep the suite fast, as in the single-server contract suite.
  () =>
    new RedisStreamsBackend({
      cluster: { nodes: cluster!.urls },
      prefix: PREFIX,
      blockMs: 200,
    }),
  {
    servicePrefix: `redis-cluster-${PREFIX.slice(1, -1)}`,
    // As on one server: Redis keeps no kind of consumer with a stream (an exclusive queue is one
    // with a lease), so a queue that changes kind is not refused; the crash case runs there.
    exclusive: { refusesMismatch: false },
  },
);

describe('the cluster after the contract suite', () => {
  it("holds every key of the prefix on its slot's master and replica, none elsewhere", async () => {
    const c = cluster!;
    const master = await c.masterOf(await c.slotOf(PREFIX));
    const perNode = await c.keysPerNode();
    const masters = perNode.filter((n) => n.role === 'master');
    expect(masters).toHaveLength(3);
    expect(masters.find((n) => n.port === master.port)?.keys).toBeGreaterThan(0);
    expect(masters.filter((n) => n.port !== master.port).map((n) => n.keys)).toEqual([0, 0]);
  });
});
