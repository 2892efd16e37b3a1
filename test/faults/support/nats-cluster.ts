/**
 * A 3-node NATS JetStream cluster on this machine for the NATS cluster scenarios
 * (nats-cluster.faults-spec.ts): three private `nats-server`s (support/nats-server.ts each: its own
 * client port and JetStream store in a temp dir of its own, ended by its PID), routed to each other
 * on 127.0.0.1, each with a monitoring port. The shared NATS on 4222 is never touched.
 *
 * | export                        | what                                                                    |
 * | ----------------------------- | ----------------------------------------------------------------------- |
 * | `startNatsCluster()`          | N nodes (`server_name` `<prefix><i>`, cluster `<prefix>`, a route to    |
 * |                               | every other node); resolves once every node's `/healthz` is ok: a       |
 * |                               | JetStream meta leader is elected and known to all                       |
 * | `cluster.urls`, `urlsFrom()`  | client URLs of every node: node 1 first, or the given node first (the   |
 * |                               | order a backend with `randomizeServers: false` tries them in)           |
 * | `cluster.stream()`            | a stream's leader and replicas (server names, current or not), from the |
 * |                               | JetStream API on a live node                                            |
 * | `cluster.consumers()`         | the same for each durable consumer of a stream, with its replicas       |
 * | `cluster.moveLeader()`        | a stream's (or one of its consumers') leader onto a chosen node:        |
 * |                               | `$JS.API.….LEADER.STEPDOWN` until the election lands there (2.9 has no  |
 * |                               | "to": each step elects one of the other replicas)                       |
 * | `cluster.metaLeader()`        | the JetStream meta leader (`/jsz` of a live node)                       |
 * | `cluster.connectionNodes()`   | the nodes connections of a given name are on (`/connz` of every live    |
 * |                               | node): where a backend is connected                                     |
 * | `cluster.kill()`              | SIGKILL of a node by its PID; resolves with the kill time once it exited |
 * | `cluster.restart()`           | starts a killed node again on its ports and store; resolves once its    |
 * |                               | `/healthz` is ok (caught up with the meta leader and its streams)       |
 * | `cluster.restartKilled()`     | restarts every node killed and not restarted yet                        |
 * | `cluster.stop()`              | kills every node (SIGKILL, by PID) and deletes their dirs                |
 *
 * Ports come from `freePort()` (below the ephemeral range, never twice): client and route ports
 * stay the same across a restart, so the routes of the others find the node again by themselves.
 */
import { get } from 'node:http';
import { type ClusterInfo, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { waitFor } from '@app/messaging/testing';
import { freePort } from './broker';
import { type PrivateNatsServer, startNatsServer } from './nats-server';

export interface NatsClusterNode {
  /** `server_name`, `<prefix><i>`: the name JetStream gives leaders and replicas by. */
  readonly name: string;
  /** `nats://127.0.0.1:<port>`. */
  readonly url: string;
  readonly routePort: number;
  readonly monitorPort: number;
  readonly server: PrivateNatsServer;
}

export interface StreamPlacement {
  /** Server name of the stream's leader; undefined while none is elected. */
  leader: string | undefined;
  /** The followers, each with whether it is caught up and whether it is seen offline. */
  replicas: Array<{ name: string; current: boolean; offline: boolean }>;
}

export interface ConsumerPlacement extends StreamPlacement {
  name: string;
  /** `num_replicas` of its config: 0 means the stream's. */
  numReplicas: number;
}

export interface NatsCluster {
  readonly nodes: readonly NatsClusterNode[];
  /** Client URLs, node 1 first. */
  readonly urls: readonly string[];
  /** The client URLs starting with `node`'s, then the others in order. */
  urlsFrom(node: string): string[];
  nodeOf(node: string): NatsClusterNode;
  /** Leader and replicas of `stream` (throws while the JetStream API does not answer). */
  stream(name: string): Promise<StreamPlacement>;
  /** Leader and replicas of each durable consumer of `stream`. */
  consumers(stream: string): Promise<ConsumerPlacement[]>;
  /**
   * Makes `node` the leader of `stream`, or of its consumer `consumer`: steps the leader down until
   * the election lands on `node`; resolves with the number of step-downs.
   */
  moveLeader(
    target: { stream: string; consumer?: string },
    node: string,
    timeoutMs?: number,
  ): Promise<number>;
  /** Server name of the JetStream meta leader, as a live node's `/jsz` has it. */
  metaLeader(): Promise<string | undefined>;
  /** Nodes on which client connections named `name` are open, each once (live nodes only). */
  connectionNodes(name: string): Promise<string[]>;
  /** SIGKILL of the node's server; resolves with the time of the kill once it exited. */
  kill(node: string): Promise<number>;
  /** Starts a killed node again (same ports and store); resolves once its /healthz is ok. */
  restart(node: string): Promise<void>;
  /** Restarts every node killed and not restarted yet. */
  restartKilled(): Promise<void>;
  stop(): Promise<void>;
}

export interface NatsClusterOptions {
  /** Server names are `<prefix><i>`, i = 1..size; the cluster is named `<prefix>`. */
  prefix: string;
  /** @default 3 */
  size?: number;
  /** Bound of the boot of all nodes, and of a restart. @default 30000 */
  startTimeoutMs?: number;
}

/**
 * Starts `size` routed JetStream servers at once and waits until each one's `/healthz` is ok. On
 * any failure the nodes started so far are killed and their dirs deleted before the error is thrown.
 */
export async function startNatsCluster(options: NatsClusterOptions): Promise<NatsCluster> {
  const size = options.size ?? 3;
  const startTimeoutMs = options.startTimeoutMs ?? 30_000;
  const plan: Array<{ name: string; routePort: number; monitorPort: number }> = [];
  for (let i = 1; i <= size; i++) {
    plan.push({
      name: `${options.prefix}${i}`,
      routePort: await freePort(),
      monitorPort: await freePort(),
    });
  }
  const started: PrivateNatsServer[] = [];
  const nodes: NatsClusterNode[] = [];
  const killed = new Set<string>();
  const nodeOf = (name: string): NatsClusterNode => {
    const found = nodes.find((n) => n.name === name);
    if (!found)
      throw new Error(`no node ${name} in this cluster (${nodes.map((n) => n.name).join(', ')})`);
    return found;
  };
  const live = () => nodes.filter((n) => !killed.has(n.name));
  const healthy = async (n: NatsClusterNode): Promise<boolean> =>
    (await monitor(n.monitorPort, '/healthz').catch(() => undefined))?.status === 200;
  const waitHealthy = (n: NatsClusterNode[], what: string) =>
    waitFor(async () => (await Promise.all(n.map(healthy))).every(Boolean), {
      timeoutMs: startTimeoutMs,
      intervalMs: 100,
      message: `${what}: /healthz of ${n.map((x) => x.name).join(', ')} ok`,
    });

  /** Runs `work` with a JetStream manager on a fresh connection to the live nodes. */
  const withJsm = async <T>(
    work: (jsm: JetStreamManager, nc: NatsConnection) => Promise<T>,
  ): Promise<T> => {
    const nc = await connect({ servers: live().map((n) => n.url), timeout: 2_000 });
    try {
      return await work(await jetstreamManager(nc, { timeout: 3_000 }), nc);
    } finally {
      await nc.close().catch(() => undefined);
    }
  };
  /** Whether `n` alone answers a JetStream API request (its account info). */
  const answersJetStream = async (n: NatsClusterNode): Promise<boolean> => {
    const nc = await connect({ servers: n.url, timeout: 2_000 }).catch(() => undefined);
    if (!nc) return false;
    try {
      await (await jetstreamManager(nc, { timeout: 3_000 })).getAccountInfo();
      return true;
    } catch {
      return false;
    } finally {
      await nc.close().catch(() => undefined);
    }
  };
  const placement = (cluster: ClusterInfo | undefined): StreamPlacement => ({
    leader: cluster?.leader || undefined,
    replicas: (cluster?.replicas ?? []).map((r) => ({
      name: r.name,
      current: r.current,
      offline: r.offline === true,
    })),
  });
  const stream = (name: string): Promise<StreamPlacement> =>
    withJsm(async (jsm) => placement((await jsm.streams.info(name)).cluster));
  const consumer = (name: string, durable: string): Promise<StreamPlacement> =>
    withJsm(async (jsm) => placement((await jsm.consumers.info(name, durable)).cluster));

  const stop = async (): Promise<void> => {
    await Promise.all(started.map((s) => s.remove().catch(() => undefined)));
  };

  // Every node at once (each waits for a route to the others only for its JetStream, not its start).
  const boots = await Promise.allSettled(
    plan.map((p) => {
      const routes = plan
        .filter((other) => other !== p)
        .map((other) => `nats-route://127.0.0.1:${other.routePort}`);
      return startNatsServer({
        readyTimeoutMs: startTimeoutMs,
        config: () =>
          [
            `server_name: ${p.name}`,
            `http: 127.0.0.1:${p.monitorPort}`,
            'cluster {',
            `  name: ${options.prefix.replace(/-+$/, '')}`,
            `  listen: 127.0.0.1:${p.routePort}`,
            `  routes: [${routes.join(', ')}]`,
            '}',
          ].join('\n'),
      });
    }),
  );
  for (const boot of boots) if (boot.status === 'fulfilled') started.push(boot.value);
  try {
    const failed = boots.find((b): b is PromiseRejectedResult => b.status === 'rejected');
    if (failed) throw failed.reason;
    plan.forEach((p, i) => nodes.push({ ...p, url: started[i].url, server: started[i] }));
    await waitHealthy(nodes, `NATS cluster ${options.prefix} of ${size}`);
    // A node's /healthz can be ok a moment before it answers JetStream's API (a client's first
    // request there then times out): every node answers one before a scenario starts.
    await waitFor(async () => (await Promise.all(nodes.map(answersJetStream))).every(Boolean), {
      timeoutMs: startTimeoutMs,
      intervalMs: 200,
      message: `NATS cluster ${options.prefix}: JetStream's API answered on every node`,
    });
  } catch (error) {
    await stop();
    throw error;
  }

  return {
    nodes,
    urls: nodes.map((n) => n.url),
    urlsFrom: (node) => {
      const i = nodes.indexOf(nodeOf(node));
      return [...nodes.slice(i), ...nodes.slice(0, i)].map((n) => n.url);
    },
    nodeOf,
    stream,
    consumers: (name) =>
      withJsm(async (jsm) => {
        const out: ConsumerPlacement[] = [];
        for await (const info of jsm.consumers.list(name)) {
          out.push({
            name: info.name,
            numReplicas: info.config.num_replicas ?? 0,
            ...placement(info.cluster),
          });
        }
        return out;
      }),
    moveLeader: async (target, node, timeoutMs = 30_000) => {
      nodeOf(node);
      const what = target.consumer
        ? `consumer ${target.stream} > ${target.consumer}`
        : `stream ${target.stream}`;
      const read = () =>
        target.consumer ? consumer(target.stream, target.consumer) : stream(target.stream);
      const stepDown = target.consumer
        ? `$JS.API.CONSUMER.LEADER.STEPDOWN.${target.stream}.${target.consumer}`
        : `$JS.API.STREAM.LEADER.STEPDOWN.${target.stream}`;
      let steps = 0;
      let seen: StreamPlacement | undefined;
      await waitFor(
        async () => {
          seen = await read().catch(() => undefined);
          if (!seen?.leader) return false; // an election under way
          if (seen.leader === node) return true;
          // Only once every replica is caught up: a lagging one cannot be elected anyway.
          if (!seen.replicas.every((r) => r.current && !r.offline)) return false;
          steps++;
          await withJsm((_, nc) => nc.request(stepDown, undefined, { timeout: 3_000 })).catch(
            () => undefined,
          );
          return false;
        },
        {
          timeoutMs,
          intervalMs: 100,
          message: `${what} led by ${node} (last seen: ${JSON.stringify(seen)})`,
        },
      );
      return steps;
    },
    metaLeader: async () => {
      const res = await monitor(live()[0].monitorPort, '/jsz');
      return (JSON.parse(res.body) as { meta_cluster?: { leader?: string } }).meta_cluster?.leader;
    },
    connectionNodes: async (name) => {
      const found = await Promise.all(
        live().map(async (n) => {
          const res = await monitor(n.monitorPort, '/connz?limit=10000');
          const conns = (JSON.parse(res.body) as { connections?: Array<{ name?: string }> })
            .connections;
          return (conns ?? []).some((c) => c.name === name) ? [n.name] : [];
        }),
      );
      return found.flat();
    },
    kill: async (node) => {
      const n = nodeOf(node);
      if (killed.has(node) || n.server.pid === undefined) {
        throw new Error(`${node} is not running: restart() it before killing it again`);
      }
      killed.add(node);
      const at = Date.now();
      await n.server.stop('SIGKILL');
      return at;
    },
    restart: async (node) => {
      const n = nodeOf(node);
      await n.server.start();
      killed.delete(node);
      await waitHealthy([n], `restart of ${node}`);
    },
    restartKilled: async () => {
      for (const n of nodes.filter((x) => killed.has(x.name))) {
        await n.server.start();
        killed.delete(n.name);
      }
      await waitHealthy(nodes, 'restart of the killed nodes');
    },
    stop,
  };
}

/** GET `path` on a node's monitoring port: status and body (bounded: 2 s). */
function monitor(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path, timeout: 2_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} on ${port}: no answer in 2 s`)));
    req.on('error', reject);
  });
}
