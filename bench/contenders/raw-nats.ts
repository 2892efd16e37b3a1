/**
 * Contender "raw nats.js": the reference on NATS JetStream, hand-written `@nats-io/transport-node`
 * and `@nats-io/jetstream` doing what NatsBackend does, as a careful user would write it.
 *
 * - One connection per instance (the producer shares instance 0's).
 * - One file-storage stream `<name>` on subjects `<name>.>`, interest retention (a message is kept
 *   until the consumer acked it), and one durable pull consumer on it, explicit acks, shared by the
 *   instances (they compete).
 * - Publishes: `js.publish()` awaiting its PubAck (the driver keeps its window in flight).
 * - Consumers: `consumer.consume({ max_messages: 100 })`, at most 100 messages being handled per
 *   instance (the prefetch of the other contenders); `ack()` after the handler resolved, not
 *   confirmed (no `ackAck()`: the server's ack-wait redelivers a lost ack).
 * - Retry reference: a failed delivery is `nak()`ed, redelivered at once and handled again.
 * - Request/reply over core NATS, no JetStream (volatile: "no responders" fails a call at once):
 *   `nc.request()` with its defaults (one multiplexed reply inbox) on the requester's connection, a
 *   queue-group subscription on the server's that `respond()`s.
 *
 * The stream (with its consumer) is deleted at close.
 */
import {
  AckPolicy,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type ConsumerMessages,
  type JsMsg,
} from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { runChild } from '../shared/child';
import { packageVersion } from '../shared/measure';
import type {
  BenchMessage,
  ChildTask,
  Contender,
  MessageHandler,
  PubSubOptions,
  PubSubRig,
  RequestRig,
} from '../shared/protocol';

const PREFETCH = 100;
const DURABLE = 'bench';
const ACK_WAIT_NS = 30_000 * 1_000_000;

export function rawNatsContender(task: ChildTask): Contender {
  const open = (name: string): Promise<NatsConnection> =>
    connect({ servers: task.url, name: `bench-raw:${name}` });

  return {
    settings: [
      `@nats-io/transport-node ${packageVersion('@nats-io/transport-node')} + @nats-io/jetstream ${packageVersion('@nats-io/jetstream')}; one connection per instance`,
      'one file stream, interest retention; one durable pull consumer (explicit ack, ack_wait 30 s) shared by the instances',
      'js.publish() awaiting the PubAck',
      `consumer.consume({ max_messages: ${PREFETCH} }), ${PREFETCH} messages handled at most per instance, ack() after the handler (not confirmed: no ackAck)`,
      'retry reference: nak() the failed delivery, redelivered at once',
      'request/reply over core NATS (volatile): nc.request() with its defaults (multiplexed inbox), a queue-group subscription that respond()s',
    ],
    supportsRetry: true,

    async pubSub(options: PubSubOptions): Promise<PubSubRig> {
      const stream = options.name;
      const subject = `${stream}.msg`;
      const connections = [await open('producer')];
      for (let i = 1; i < options.consumers; i++) connections.push(await open(`consumer-${i}`));
      const jsm = await jetstreamManager(connections[0]);
      await jsm.streams.add({
        name: stream,
        subjects: [`${stream}.>`],
        retention: RetentionPolicy.Interest,
        storage: StorageType.File,
      });
      await jsm.consumers.add(stream, {
        durable_name: DURABLE,
        ack_policy: AckPolicy.Explicit,
        ack_wait: ACK_WAIT_NS,
        max_ack_pending: PREFETCH * Math.max(1, options.consumers),
      });
      const readers: PullReader[] = [];
      for (const nc of connections.slice(0, options.consumers)) {
        const consumer = await jetstream(nc).consumers.get(stream, DURABLE);
        readers.push(
          new PullReader(await consumer.consume({ max_messages: PREFETCH }), options.handler),
        );
      }
      const js = jetstream(connections[0]);
      return {
        publish: async (message) => {
          await js.publish(subject, JSON.stringify(message));
        },
        close: async () => {
          await Promise.all(readers.map((r) => r.stop()));
          if (!options.keepQueue) await jsm.streams.delete(stream);
          await Promise.all(connections.map((nc) => nc.close()));
        },
      };
    },

    async requestReply({ name, handler }): Promise<RequestRig> {
      const subject = `${name}.rr`;
      const server = await open('server');
      const client = await open('client');
      server.subscribe(subject, {
        queue: 'bench',
        callback: (error, msg) => {
          if (error) return console.error('raw nats.js: subscription error', error);
          msg.respond(JSON.stringify(handler(msg.json<BenchMessage>())));
        },
      });
      await server.flush();
      return {
        request: async (message, timeout) =>
          (await client.request(subject, JSON.stringify(message), { timeout })).json<{
            id: number;
          }>(),
        close: async () => {
          await Promise.all([server.close(), client.close()]);
        },
      };
    },
  };
}

/**
 * One instance's messages of the pull consumer: takes the next one only while fewer than
 * {@link PREFETCH} are being handled; acks after the handler, naks (redelivery at once) after a
 * failure.
 */
class PullReader {
  private active = 0;
  private wake?: () => void;
  private readonly done: Promise<void>;

  constructor(
    private readonly messages: ConsumerMessages,
    private readonly handler: MessageHandler,
  ) {
    this.done = this.loop().catch((error: unknown) =>
      console.error('raw nats.js: consume failed', error),
    );
  }

  private async loop(): Promise<void> {
    for await (const m of this.messages) {
      this.active++;
      void this.run(m);
      if (this.active >= PREFETCH) await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private async run(m: JsMsg): Promise<void> {
    try {
      await this.handler(m.json<BenchMessage>());
      m.ack();
    } catch {
      m.nak();
    } finally {
      this.active--;
      this.wake?.();
      this.wake = undefined;
    }
  }

  /** Stops pulling, then waits for the messages being handled. */
  async stop(): Promise<void> {
    await this.messages.close();
    this.wake?.();
    await this.done;
    while (this.active > 0) await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

if (require.main === module) runChild(rawNatsContender);
