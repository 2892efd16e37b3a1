/**
 * Redis Cluster support without a cluster: the prefix rule and the `cluster` / `waitForReplicas`
 * options checked at construction (each error names the fix), the hash slot computed as Redis does,
 * and single-server key names unchanged. The cluster itself: test/cluster/ (`npm run test:cluster`).
 */
import { MessagingConfigError } from '../../errors/messaging.errors';
import { resolveRedisOptions } from './redis-backend.options';
import { hashTagOf, keySlot } from './redis-cluster';
import { RedisKeys } from './redis-topology';

const nodes = ['redis://127.0.0.1:7000', 'redis://127.0.0.1:7001'];

describe('Redis Cluster options', () => {
  it('takes a cluster with a hash-tagged prefix; url is the first node, for logs', () => {
    const resolved = resolveRedisOptions({ cluster: { nodes }, prefix: '{shop}' });
    expect(resolved.cluster).toEqual({ nodes });
    expect(resolved.url).toBe(nodes[0]);
    expect(resolved.waitForReplicas).toBeUndefined();
  });

  it('refuses a prefix without a hash tag on a cluster, naming the prefix to use', () => {
    expect(() => resolveRedisOptions({ cluster: { nodes }, prefix: 'shop' })).toThrow(
      /must carry a hash tag.*use prefix '\{shop\}'/,
    );
    expect(() => resolveRedisOptions({ cluster: { nodes } })).toThrow(/'\{messaging\}'/);
  });

  it('refuses url beside cluster, an empty node list, a database, mixed schemes', () => {
    expect(() =>
      resolveRedisOptions({ url: 'redis://a:1', cluster: { nodes }, prefix: '{p}' }),
    ).toThrow(/either url .* or cluster/);
    expect(() => resolveRedisOptions({ cluster: { nodes: [] }, prefix: '{p}' })).toThrow(
      /cluster\.nodes must list at least one node/,
    );
    expect(() =>
      resolveRedisOptions({ cluster: { nodes: ['redis://h:7000/2'] }, prefix: '{p}' }),
    ).toThrow(/only database 0: remove '\/2'/);
    expect(() =>
      resolveRedisOptions({
        cluster: { nodes: ['redis://h:7000', 'rediss://h:7001'] },
        prefix: '{p}',
      }),
    ).toThrow(/mixes redis:\/\/ and rediss:\/\//);
    expect(() =>
      resolveRedisOptions({ cluster: { nodes: ['http://h:1'] }, prefix: '{p}' }),
    ).toThrow(MessagingConfigError);
  });

  it('allows one hash tag in a prefix on one server too, and nothing else new', () => {
    expect(resolveRedisOptions({ prefix: 'a{b}c' }).prefix).toBe('a{b}c');
    for (const prefix of ['{}', 'a{b', 'a}b', '{a}{b}', 'a:b', '']) {
      expect(() => resolveRedisOptions({ prefix })).toThrow(/namespace .* is not valid/);
    }
  });

  it('checks waitForReplicas: replicas >= 1, timeoutMs below commandTimeoutMs', () => {
    expect(
      resolveRedisOptions({ waitForReplicas: { replicas: 1, timeoutMs: 1000 } }).waitForReplicas,
    ).toEqual({ replicas: 1, timeoutMs: 1000 });
    expect(() =>
      resolveRedisOptions({ waitForReplicas: { replicas: 0, timeoutMs: 1000 } }),
    ).toThrow(/waitForReplicas\.replicas must be a whole number from 1/);
    expect(() =>
      resolveRedisOptions({
        commandTimeoutMs: 2000,
        waitForReplicas: { replicas: 1, timeoutMs: 2000 },
      }),
    ).toThrow(/waitForReplicas\.timeoutMs must be a whole number from 1 to 1999/);
    expect(() =>
      resolveRedisOptions({ waitForReplicas: 1 as unknown as { replicas: 1; timeoutMs: 1 } }),
    ).toThrow(/waitForReplicas must be an object such as/);
  });
});

describe('hash slots', () => {
  it('hashes as Redis does (CLUSTER KEYSLOT), the tag alone when there is one', () => {
    // Values from CLUSTER KEYSLOT of Redis 7.
    expect(keySlot('foo')).toBe(12182);
    expect(keySlot('123456789')).toBe(12739);
    expect(keySlot('{user1000}.following')).toBe(keySlot('user1000'));
    expect(keySlot('foo{}{bar}')).toBe(keySlot('foo{}{bar}'));
    expect(hashTagOf('foo{}{bar}')).toBeUndefined();
    expect(hashTagOf('{shop}:t:orders')).toBe('shop');
  });

  it('puts every key of a tagged prefix in its slot; single-server names are unchanged', () => {
    const keys = new RedisKeys('{shop}', 0, true);
    for (const key of [
      keys.topic('orders.created'),
      keys.queue('billing.route'),
      keys.externalRetries('x'),
      keys.topics,
      keys.bindings,
      keys.routing,
      keys.requests('q'),
      keys.requestChannel('q'),
      keys.delayed,
      keys.delayedMessage('id'),
      keys.dataset,
      keys.slotKey,
    ]) {
      expect(keySlot(key)).toBe(keys.slot);
    }
    const plain = new RedisKeys('messaging');
    expect([plain.topic('a'), plain.queue('b'), plain.delayed, plain.sharded]).toEqual([
      'messaging:t:a',
      'messaging:q:b',
      'messaging:delayed',
      false,
    ]);
  });
});
