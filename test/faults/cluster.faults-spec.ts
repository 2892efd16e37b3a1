/**
 * A 3-node RabbitMQ cluster started for this file (support/cluster.ts: nodes `faults-clu<pid>-1..3`
 * on ports the OS hands out, one shared cookie), torn down by PID at the end. Quorum queues are
 * replicated on all three nodes (checked: `members` and `online` list the three), every client is
 * given the three URLs (its own node first). Each scenario loads 1,500 messages at 100/s, SIGKILLs
 * one node after 500, boots it again, and checks the ledger.
 *
 * | id  | producer | consumers | queue leader | node killed                    | pass bar                      |
 * | --- | -------- | --------- | ------------ | ------------------------------ | ----------------------------- |
 * | C1  | node 1   | node 1    | node 3       | 1: the clients' node           | bar; publishing resumes and   |
 * |     |          |           |              |                                | consumers are back < 15 s     |
 * | C2  | node 1   | node 2    | node 3       | 3: the work queue's leader,    | bar; a new leader is elected; |
 * |     |          |           |              | no client connected to it      | resumes < 15 s                |
 * | C3  | node 2   | node 2    | node 2       | 2: clients' node and leader at | bar; resumes and consumers    |
 * |     |          |           |              | once                           | back < 15 s                   |
 *
 * "Resumes": the first confirm of a publish sent after the kill, from the kill. "Consumers back":
 * the queue counts 2 consumers again (`list_queues consumers` on a live node). The leader is placed
 * by a throwaway consumer that declares the topology alone on the chosen node (quorum queues are
 * led by the declaring node); each scenario asserts the placement it relies on before the kill.
 * The killed node is restarted before the verdict and must be back among the queue's `online`.
 * "Consumers back" is polled with three `rabbitmqctl` calls (about 1 s each here), so its figure is
 * an upper bound; the first message handled after the kill is the finer one.
 *
 * Known failure, C3 (RabbitMQ 3.10.8, reproduced with raw amqplib too): the producer is connected
 * again about 20 ms after the kill, before the queue has a new leader (about 250 ms), and the broker
 * nacks every publish on that new channel for as long as the dead node stays down; a channel opened
 * after the election is served. The library reports each nack as `PublishFailedError` (nothing
 * lost), but publishing does not resume: see the report of issue 9.
 */
import { randomUUID } from 'node:crypto';
import { AmqpBackend } from '@app/messaging';
import { waitFor } from '@app/messaging/testing';
import { requestQueueName } from '../../libs/messaging/src/backends/amqp/amqp-topology';
import { ClusterConsumer, type RabbitCluster, startRabbitCluster } from './support/cluster';
import { FaultRun } from './support/fault-run';
import type { LedgerRow } from './support/ledger';
import { COPIES_PER_FAULT, expectPassBar } from './support/pass-bar';
import { recordResult } from './support/results';

const LOAD = { count: 1500, ratePerSec: 100, settleMs: 40_000 };
const KILL_AFTER = 500;
const CONSUMERS = 2;
const RESUME_BOUND_MS = 15_000;

interface Placement {
  producer: number;
  consumers: number;
  leader: number;
  kill: number;
}

describe('faults: 3-node RabbitMQ cluster (quorum queues, client failover)', () => {
  let cluster: RabbitCluster;
  let run: FaultRun | undefined;
  const consumers: ClusterConsumer[] = [];

  beforeAll(async () => {
    cluster = await startRabbitCluster({ prefix: `faults-clu${process.pid}-` });
  }, 180_000);
  afterEach(async () => {
    await Promise.all(consumers.splice(0).map((c) => c.close().catch(() => undefined)));
    await run?.close();
    run = undefined;
    // A scenario that failed between its kill and its restart leaves the next one a full cluster.
    await cluster?.restartKilled();
  }, 120_000);
  afterAll(() => cluster?.stop(), 120_000);

  /** Node name of 1-based index `i`. */
  const node = (i: number) => cluster.nodes[i - 1].node;

  async function scenario(id: string, name: string, at: Placement): Promise<void> {
    const all = cluster.nodes.map((n) => n.node).sort();
    const r = await FaultRun.start({
      scenario: id.toLowerCase(),
      url: cluster.urlsFrom(node(at.producer))[0],
      // The checker's connection: to a node that stays up.
      directUrl: cluster.urlsFrom(node((at.kill % 3) + 1))[0],
      consumers: 0,
      producer: {
        url: undefined,
        urls: cluster.urlsFrom(node(at.producer)),
        publishTimeoutMs: 15_000,
      },
    });
    run = r;
    const consumerOptions = (connectionName: string, first: number) => ({
      urls: cluster.urlsFrom(node(first)),
      service: r.service,
      topic: r.topic,
      ledgerDir: r.ledger.dir,
      connectionName,
    });
    // The declaring consumer alone on the leader's node: the work queue is led from there.
    const declarer = await ClusterConsumer.start(
      consumerOptions(`faults-cluster-declarer-${r.service}`, at.leader),
    );
    await declarer.close();
    for (let i = 0; i < CONSUMERS; i++) {
      consumers.push(
        await ClusterConsumer.start(
          consumerOptions(`faults-cluster-consumer-${r.service}-${i}`, at.consumers),
        ),
      );
    }
    const producerName = `faults-producer-${r.service}`;
    const consumerNames = consumers.map((_, i) => `faults-cluster-consumer-${r.service}-${i}`);
    const before = await cluster.queue(r.workQueue);
    // Placement and replication this scenario relies on.
    expect({
      leader: before.leader,
      members: [...before.members].sort(),
      online: [...before.online].sort(),
      consumers: await r.consumerCount(),
      producerOn: await cluster.connectionNodes(producerName),
      consumersOn: (await Promise.all(consumerNames.map((c) => cluster.connectionNodes(c)))).flat(),
    }).toEqual({
      leader: node(at.leader),
      members: all,
      online: all,
      consumers: CONSUMERS,
      producerOn: [node(at.producer)],
      consumersOn: consumerNames.map(() => node(at.consumers)),
    });

    const loading = r.load(LOAD);
    await r.waitSent(KILL_AFTER);
    const killedAt = await cluster.kill(node(at.kill));
    const since = (t: number) => t - killedAt;

    // Consumers back: each subscribed to the queue over a connection to a live node (C1, C3: they
    // moved; C2: their connections never broke, so this holds at once and handling tells more).
    let seen: unknown;
    await waitFor(
      async () => {
        const live = await cluster.consumersOf(r.workQueue).catch(() => []);
        seen = live;
        return consumerNames.every((c) =>
          live.some((x) => x.connectionName === c && x.node !== node(at.kill)),
        );
      },
      { timeoutMs: 30_000, intervalMs: 100, message: 'consumers back' },
    ).catch((error: Error) => {
      throw new Error(
        `${CONSUMERS} consumers of ${r.workQueue} not back on live nodes ${since(Date.now())} ms after ` +
          `the kill; last seen ${JSON.stringify(seen)}; ledger ${r.ledger.dir}`,
        { cause: error },
      );
    });
    const consumersBackMs = since(Date.now());
    // Volatile requests reach the handlers again: their request queue lived on the consumers' node,
    // so when that one is killed (C1, C3) they moved to its next generation together; C2 keeps it.
    const generation = at.kill === at.consumers ? 1 : 0;
    const requestQueue = requestQueueName('messaging', r.workQueue, generation);
    const requestConsumers = (await cluster.consumersOf(requestQueue)).map((c) => c.connectionName);
    expect(requestConsumers.sort()).toEqual([...consumerNames].sort());
    await askOnce(cluster.urlsFrom(node((at.kill % 3) + 1)), r.topic);
    const afterKill = await cluster.queue(r.workQueue);
    const brokerCountAfterKill = await r.consumerCount();
    // Publishing resumed: a publish sent after the kill was confirmed. A timeout is not thrown here:
    // the run goes on to its verdict so the report says what happened to those publishes.
    const resumed = await waitFor(
      () => firstAfter(r.ledger.rows(), killedAt, 'confirmed') !== undefined,
      { timeoutMs: 30_000, intervalMs: 50, message: 'a publish sent after the kill confirmed' },
    ).then(
      () => true,
      () => false,
    );
    const confirmedAt = firstAfter(r.ledger.rows(), killedAt, 'confirmed');
    const resumeMs = confirmedAt === undefined ? null : since(confirmedAt);
    const producerOnAfter = await cluster.connectionNodes(producerName);

    await cluster.restart(node(at.kill));
    const restartedAt = Date.now();
    await waitFor(
      async () =>
        ((await cluster.queue(r.workQueue).catch(() => undefined))?.online.length ?? 0) === 3,
      {
        timeoutMs: 30_000,
        intervalMs: 200,
        message: `${node(at.kill)} back online in ${r.workQueue}`,
      },
    );
    const rejoinMs = Date.now() - restartedAt;
    // Once the dead node is back the queue forgets the consumers it had there (suspected_down).
    await waitFor(async () => (await r.consumerCount().catch(() => -1)) === CONSUMERS, {
      timeoutMs: 30_000,
      intervalMs: 200,
      message: `the broker counts ${CONSUMERS} consumers of ${r.workQueue} after the rejoin`,
    });

    await loading;
    const settled = await r.settle(60_000);
    // Handling resumed too: a message sent after the kill was handled.
    const handledAfter = firstAfter(r.ledger.rows(), killedAt, 'handled');
    await Promise.all(consumers.splice(0).map((c) => c.close()));
    const report = await r.finish();
    const figures = {
      killed: node(at.kill),
      resumeMs,
      firstHandledAfterKillMs: handledAfter === undefined ? null : since(handledAfter),
      consumersBackMs,
      requestQueue,
      brokerCountAfterKill,
      leaderAfter: afterKill.leader,
      producerOnAfter,
      producerReconnects: r.producerStatuses.filter((s) => s.status === 'reconnecting').length,
      rejoinMs,
      backendErrors: report.backendErrors.length,
    };
    recordResult(`${id} ${name}`, report, figures);
    expect(settled).toBe(true);
    expectPassBar(report, {
      duplicatedAtMost: CONSUMERS * 10,
      copiesAtMost: COPIES_PER_FAULT,
    });
    expect(report.handled).toBe(LOAD.count);
    expect(afterKill.leader).not.toBe(node(at.kill));
    expect(producerOnAfter).not.toContain(node(at.kill));
    expect({ resumed, resumeMs }).toEqual({ resumed: true, resumeMs: expect.any(Number) });
    expect(resumeMs).toBeLessThan(RESUME_BOUND_MS);
    expect(consumersBackMs).toBeLessThan(RESUME_BOUND_MS);
    expect(handledAfter).toBeDefined();
  }

  /** One volatile request to `topic` (a probe: the workers leave it out of the ledger), answered. */
  async function askOnce(urls: string[], topic: string): Promise<void> {
    const caller = new AmqpBackend({ urls });
    caller.on('error', () => undefined);
    await caller.connect();
    try {
      await caller.request(
        {
          topic,
          body: Buffer.from(JSON.stringify({ probe: true })),
          headers: {},
          messageId: `probe-${randomUUID()}`,
          contentType: 'application/json',
          timestamp: Date.now(),
        },
        { timeoutMs: 10_000, durable: false },
      );
    } finally {
      await caller.close();
    }
  }

  it('C1 SIGKILL of the node the clients are connected to (not the leader): 0 lost, resumes < 15 s', () =>
    scenario('C1', 'kill the clients\u2019 node', {
      producer: 1,
      consumers: 1,
      leader: 3,
      kill: 1,
    }));

  it('C2 SIGKILL of the work queue leader (no client on it): 0 lost, resumes < 15 s', () =>
    scenario('C2', 'kill the queue leader', { producer: 1, consumers: 2, leader: 3, kill: 3 }));

  it('C3 SIGKILL of the node that is both the clients\u2019 and the leader: 0 lost, resumes < 15 s', () =>
    scenario('C3', 'kill the clients\u2019 node and leader', {
      producer: 2,
      consumers: 2,
      leader: 2,
      kill: 2,
    }));
});

/** Time of the first `kind` row (confirmed or handled) of a message sent after `t`. */
function firstAfter(
  rows: readonly LedgerRow[],
  t: number,
  kind: 'confirmed' | 'handled',
): number | undefined {
  const sentAfter = new Set<string>();
  for (const row of rows) if (row.kind === 'sent' && row.at > t) sentAfter.add(row.id);
  let first: number | undefined;
  for (const row of rows) {
    if (row.kind === kind && sentAfter.has(row.id) && (first === undefined || row.at < first)) {
      first = row.at;
    }
  }
  return first;
}
