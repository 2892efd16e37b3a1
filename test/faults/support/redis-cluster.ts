/**
 * A private Redis Cluster of 3 masters + 3 replicas on loopback, for the Redis Cluster suites
 * (`npm run test:cluster`): six `PrivateServer.redis()` nodes (private-server.ts: own port from
 * `freePort()`, own dir, `appendonly yes`, `appendfsync always`) started with `--cluster-enabled yes`,
 * joined by `redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes`. The shared Redis on
 * 6379 is never touched; every node is ended by its PID and its dir removed.
 *
 * | member                | what                                                                        |
 * | --------------------- | --------------------------------------------------------------------------- |
 * | `start()`             | boots the six nodes, creates the cluster, waits for `cluster_state:ok` on each and for every replica's link to its master |
 * | `urls`                | `redis://127.0.0.1:<port>` of every node (the backend's `cluster.nodes`)     |
 * | `slotOf(key)`         | `CLUSTER KEYSLOT` of a key (a prefix's hash tag)                            |
 * | `masterOf(slot)`      | the node serving `slot` now, as a live node's `CLUSTER SHARDS` says         |
 * | `shardSubscribers()`  | `PUBSUB SHARDNUMSUB` of a channel on a node (the instances of a route, on a cluster) |
 * | `commandCalls()`      | how many times a node ran a command (`INFO commandstats`)                   |
 * | `keysPerNode()`       | `DBSIZE` and role of every live node (where a prefix's keys are)           |
 * | `waitForFailover()`   | after a master's kill: until a live node serves the slot and the cluster says ok |
 * | `stop()`              | SIGTERM of every node by PID, dirs removed                                 |
 *
 * Each node's cluster bus port is set with `--cluster-port` (a second `freePort()`), not left at
 * port + 10000, which may be taken. `cluster-node-timeout` is 1,000 ms: a killed master is failed
 * over within about 2 s.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { waitFor } from '@app/messaging/testing';
import { freePort } from './broker';
import { PrivateServer } from './private-server';

const exec = promisify(execFile);

/** `cluster-node-timeout` of the nodes: how long a master may be silent before it is failed over. */
export const NODE_TIMEOUT_MS = 1_000;

export class PrivateRedisCluster {
  private constructor(readonly nodes: PrivateServer[]) {}

  static async start(masters = 3, replicasPerMaster = 1): Promise<PrivateRedisCluster> {
    const nodes: PrivateServer[] = [];
    try {
      for (let i = 0; i < masters * (1 + replicasPerMaster); i++) {
        nodes.push(
          await PrivateServer.redis([
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            'nodes.conf',
            '--cluster-node-timeout',
            String(NODE_TIMEOUT_MS),
            '--cluster-port',
            String(await freePort()),
          ]),
        );
      }
      const cluster = new PrivateRedisCluster(nodes);
      await exec(
        'redis-cli',
        [
          '--cluster',
          'create',
          ...nodes.map((n) => `127.0.0.1:${n.port}`),
          '--cluster-replicas',
          String(replicasPerMaster),
          '--cluster-yes',
        ],
        { timeout: 60_000 },
      );
      await cluster.waitHealthy(30_000);
      return cluster;
    } catch (error) {
      await Promise.all(nodes.map((n) => n.stop()));
      throw error;
    }
  }

  get urls(): string[] {
    return this.nodes.map((n) => n.url);
  }

  get running(): PrivateServer[] {
    return this.nodes.filter((n) => n.running);
  }

  /** The hash slot of `key`, as the cluster computes it. */
  async slotOf(key: string): Promise<number> {
    const slot = await this.ask(async (redis) =>
      Number(await redis.call('CLUSTER', 'KEYSLOT', key)),
    );
    if (slot === undefined) throw new Error('no live node answered CLUSTER KEYSLOT');
    return slot;
  }

  /** The node that serves `slot` now (as the first live node answering `CLUSTER SHARDS` says). */
  async masterOf(slot: number): Promise<PrivateServer> {
    const port = await this.ask(async (redis) => {
      const shards = (await redis.call('CLUSTER', 'SHARDS')) as unknown[][];
      for (const shard of shards) {
        const fields = pairs(shard);
        const slots = fields.slots as number[];
        for (let i = 0; i < slots.length; i += 2) {
          if (slot < Number(slots[i]) || slot > Number(slots[i + 1])) continue;
          for (const node of fields.nodes as unknown[][]) {
            const n = pairs(node);
            if (n.role === 'master' && n.health === 'online') return Number(n.port);
          }
        }
      }
      return undefined;
    });
    const node = this.nodes.find((n) => n.port === port);
    if (!node) throw new Error(`no live master serves slot ${slot}`);
    return node;
  }

  /** `PUBSUB SHARDNUMSUB channel` on `node`: its subscribers there. */
  async shardSubscribers(node: PrivateServer, channel: string): Promise<number> {
    return this.on(node, async (redis) => {
      const reply = (await redis.call('PUBSUB', 'SHARDNUMSUB', channel)) as [string, number];
      return Number(reply[1]);
    });
  }

  /** How many times `node` ran `command` since it started (`INFO commandstats`, `calls=`). */
  async commandCalls(node: PrivateServer, command: string): Promise<number> {
    return this.on(node, async (redis) => {
      const stats = await redis.info('commandstats');
      const line = new RegExp(`^cmdstat_${command.toLowerCase()}:calls=(\\d+)`, 'm').exec(stats);
      return line ? Number(line[1]) : 0;
    });
  }

  /** `DBSIZE` and role of every live node. */
  async keysPerNode(): Promise<Array<{ port: number; role: string; keys: number }>> {
    const out: Array<{ port: number; role: string; keys: number }> = [];
    for (const node of this.running) {
      out.push(
        await this.on(node, async (redis) => ({
          port: node.port,
          role: /role:master/.test(await redis.info('replication')) ? 'master' : 'replica',
          keys: await redis.dbsize(),
        })),
      );
    }
    return out;
  }

  /** Until every live node says `cluster_state:ok` and every live replica's link to its master is up. */
  async waitHealthy(timeoutMs: number): Promise<void> {
    await waitFor(
      async () => {
        for (const node of this.running) {
          const ok = await this.on(node, async (redis) => {
            if (!/cluster_state:ok/.test(await redis.cluster('INFO'))) return false;
            const replication = await redis.info('replication');
            return !/role:slave/.test(replication) || /master_link_status:up/.test(replication);
          });
          if (!ok) return false;
        }
        return true;
      },
      {
        timeoutMs,
        intervalMs: 200,
        message: 'the private Redis Cluster healthy (cluster_state:ok)',
      },
    );
  }

  /** After the master of `slot` was killed: until a live node serves it and the cluster is ok. */
  async waitForFailover(slot: number, killed: PrivateServer, timeoutMs = 30_000): Promise<void> {
    await waitFor(
      async () => {
        const master = await this.masterOf(slot).catch(() => undefined);
        if (!master || master === killed || !master.running) return false;
        return this.on(master, async (redis) =>
          /cluster_state:ok/.test(await redis.cluster('INFO')),
        );
      },
      { timeoutMs, intervalMs: 100, message: `a replica promoted for slot ${slot}` },
    );
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()));
  }

  /** Runs `ask` on the live nodes in turn until one answers. */
  private async ask<T>(ask: (redis: Redis) => Promise<T | undefined>): Promise<T | undefined> {
    for (const node of this.running) {
      const answer = await this.on(node, ask).catch(() => undefined);
      if (answer !== undefined) return answer;
    }
    return undefined;
  }

  private async on<T>(node: PrivateServer, ask: (redis: Redis) => Promise<T>): Promise<T> {
    const redis = new Redis(node.port, '127.0.0.1', {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      connectTimeout: 1_000,
    });
    redis.on('error', () => undefined);
    try {
      await redis.connect();
      return await ask(redis);
    } finally {
      redis.disconnect();
    }
  }
}

/** A RESP map as a flat array (`[k1, v1, k2, v2, ...]`) as an object. */
function pairs(flat: unknown[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = flat[i + 1];
  return out;
}
