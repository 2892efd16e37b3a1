/**
 * Contender "raw ioredis": the reference on Redis Streams, hand-written ioredis 5 doing what
 * RedisStreamsBackend does, as a careful user would write it.
 *
 * - Each instance has a command connection (the producer shares instance 0's) and, to consume, a
 *   reader connection of its own: a connection blocked in `XREADGROUP` runs nothing else.
 * - One stream `<name>:s` and one consumer group on it (`XGROUP CREATE ... 0 MKSTREAM`); each
 *   instance is a consumer of the group, so instances compete.
 * - ioredis defaults (no `enableAutoPipelining`): the commands issued while others are pending are
 *   pipelined on the connection (sent without waiting for the replies), each written as issued.
 * - Publishes: `XADD <stream> MAXLEN ~ 100000 * body <json>`, each awaited (the driver keeps its
 *   window in flight, pipelined on the connection).
 * - Consumers: `XREADGROUP GROUP <group> <consumer> COUNT <free> BLOCK 1000 STREAMS <stream> >` with
 *   at most 100 entries being handled per instance (the prefetch of the other contenders); `XACK`
 *   after the handler resolved.
 * - Retry reference (no delay): a failed entry is re-added as a copy (`XADD`, attempt + 1) and acked
 *   in one `MULTI`.
 * - Request/reply, volatile (no stream entry, like a core NATS request or RabbitMQ's volatile RPC):
 *   the requester `PUBLISH`es `{ replyTo, cid, message }` to the server's channel `<name>:rr` and
 *   fails the call at once when `PUBLISH` says nobody received it; the server, subscribed on a
 *   connection of its own, `PUBLISH`es `{ cid, reply }` to the requester's channel, which the
 *   requester subscribed once, on a connection of its own. A correlation id and a timer per call.
 *
 * Everything it creates is under `<name>:`, deleted at close.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { runChild } from '../shared/child';
import { packageVersion } from '../shared/measure';
import type {
  BenchMessage,
  ChildTask,
  Contender,
  PubSubOptions,
  PubSubRig,
  RequestRig,
} from '../shared/protocol';
import { deleteRedisKeys } from './cleanup';

const PREFETCH = 100;
const BLOCK_MS = 1000;
const MAX_LENGTH = 100_000;
const GROUP = 'bench';

type Fields = string[];
type ReadReply = [stream: string, entries: [id: string, fields: Fields][]][] | null;

/** The value of `name` in a flat `[field, value, ...]` array. */
function field(fields: Fields, name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

export function rawRedisContender(task: ChildTask): Contender {
  const connect = async (role: string): Promise<Redis> => {
    const redis = new Redis(task.url, { lazyConnect: true, connectionName: `bench-raw:${role}` });
    redis.on('error', (error: Error) => console.error(`raw ioredis (${role}): error`, error));
    await redis.connect();
    return redis;
  };
  const createGroup = async (redis: Redis, stream: string): Promise<void> => {
    await redis.xgroup('CREATE', stream, GROUP, '0', 'MKSTREAM');
  };
  const add = (redis: Redis, stream: string, ...fields: string[]): Promise<string | null> =>
    redis.xadd(stream, 'MAXLEN', '~', MAX_LENGTH, '*', ...fields);

  return {
    settings: [
      `ioredis ${packageVersion('ioredis')} with its defaults (no enableAutoPipelining: concurrent commands are pipelined, each written as issued); one stream and one consumer group; a command connection per instance, plus a reader connection per consumer`,
      `XADD MAXLEN ~ ${MAX_LENGTH} * body <json>, each awaited`,
      `XREADGROUP COUNT <free slots> BLOCK ${BLOCK_MS}, ${PREFETCH} entries handled at most per instance, XACK after the handler`,
      'retry reference: MULTI { XADD a copy (attempt + 1), XACK the original }; no delay',
      "request/reply, volatile over pub/sub: PUBLISH { replyTo, cid, message } to the server's channel (0 receivers: refused at once), the server PUBLISHes { cid, reply } to the requester's channel; server and requester subscribed once, each on a connection of its own",
    ],
    supportsRetry: true,

    async pubSub(options: PubSubOptions): Promise<PubSubRig> {
      const stream = `${options.name}:s`;
      const commands = [await connect('producer')];
      for (let i = 1; i < options.consumers; i++) commands.push(await connect(`command-${i}`));
      await createGroup(commands[0], stream);
      const readers: GroupReader[] = [];
      for (let i = 0; i < options.consumers; i++) {
        const command = commands[i];
        readers.push(
          new GroupReader(await connect(`reader-${i}`), stream, `c${i}`, async (id, fields) => {
            const body = field(fields, 'body') ?? '';
            try {
              await options.handler(JSON.parse(body) as BenchMessage);
            } catch (error) {
              if (!options.retry) throw error;
              const attempt = Number(field(fields, 'attempt') ?? 1) + 1;
              const results = await command
                .multi()
                .xadd(stream, 'MAXLEN', '~', MAX_LENGTH, '*', 'body', body, 'attempt', `${attempt}`)
                .xack(stream, GROUP, id)
                .exec();
              const failed = results?.find(([err]) => err);
              if (!results || failed) throw failed?.[0] ?? new Error('MULTI aborted');
              return;
            }
            await command.xack(stream, GROUP, id);
          }),
        );
      }
      return {
        publish: async (message) => {
          await add(commands[0], stream, 'body', JSON.stringify(message));
        },
        close: async () => {
          await Promise.all(readers.map((r) => r.stop()));
          if (!options.keepQueue) await deleteRedisKeys(commands[0], `${options.name}:`);
          await Promise.all(commands.map((c) => c.quit()));
        },
      };
    },

    async requestReply({ name, handler }): Promise<RequestRig> {
      const requests = `${name}:rr`;
      const replies = `${name}:reply:${randomUUID()}`;
      const server = await connect('server');
      const serverSub = await connect('server-subscriber');
      const client = await connect('client');
      const clientSub = await connect('client-subscriber');
      serverSub.on('message', (_channel: string, text: string) => {
        const { replyTo, cid, message } = JSON.parse(text) as {
          replyTo: string;
          cid: string;
          message: BenchMessage;
        };
        server
          .publish(replyTo, JSON.stringify({ cid, reply: handler(message) }))
          .catch((error: unknown) => console.error('raw ioredis: reply failed', error));
      });
      await serverSub.subscribe(requests);
      const pending = new Map<string, Call>();
      const settle = (cid: string, error?: Error, reply?: { id: number }): void => {
        const call = pending.get(cid);
        if (!call) return;
        pending.delete(cid);
        clearTimeout(call.timer);
        if (error) call.reject(error);
        else call.resolve(reply!);
      };
      clientSub.on('message', (_channel: string, text: string) => {
        const { cid, reply } = JSON.parse(text) as { cid: string; reply: { id: number } };
        settle(cid, undefined, reply);
      });
      await clientSub.subscribe(replies);
      let next = 0;
      return {
        request: (message, timeoutMs) =>
          new Promise((resolve, reject) => {
            const cid = String(next++);
            const timer = setTimeout(
              () => settle(cid, new Error(`request timed out after ${timeoutMs} ms`)),
              timeoutMs,
            );
            pending.set(cid, { resolve, reject, timer });
            client.publish(requests, JSON.stringify({ replyTo: replies, cid, message })).then(
              (receivers) => {
                if (receivers === 0) settle(cid, new Error(`nobody subscribes ${requests}`));
              },
              (error: Error) => settle(cid, error),
            );
          }),
        close: async () => {
          await Promise.all([server, serverSub, client, clientSub].map((c) => c.quit()));
        },
      };
    },
  };
}

interface Call {
  resolve(reply: { id: number }): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

/**
 * One consumer of the group on its own reader connection: reads as many entries as it has free
 * slots (of {@link PREFETCH}), runs `handle` on each without waiting for the others.
 */
class GroupReader {
  private active = 0;
  private stopped = false;
  private wake?: () => void;
  private readonly done: Promise<void>;

  constructor(
    private readonly reader: Redis,
    private readonly stream: string,
    private readonly consumer: string,
    private readonly handle: (id: string, fields: Fields) => Promise<void>,
  ) {
    this.done = this.loop().catch((error: unknown) => {
      if (!this.stopped) console.error('raw ioredis: reader failed', error);
    });
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      if (this.active >= PREFETCH) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        continue;
      }
      const reply = (await this.reader.xreadgroup(
        'GROUP',
        GROUP,
        this.consumer,
        'COUNT',
        PREFETCH - this.active,
        'BLOCK',
        BLOCK_MS,
        'STREAMS',
        this.stream,
        '>',
      )) as ReadReply;
      for (const [, entries] of reply ?? []) {
        for (const [id, fields] of entries) {
          this.active++;
          void this.run(id, fields);
        }
      }
    }
  }

  private async run(id: string, fields: Fields): Promise<void> {
    try {
      await this.handle(id, fields);
    } catch (error) {
      // Left pending (unacked), like a nack: the workload reports it as lost.
      console.error(`raw ioredis: entry ${id} failed`, error);
    } finally {
      this.active--;
      this.wake?.();
      this.wake = undefined;
    }
  }

  /** Stops reading (aborting the blocked read), then waits for the entries being handled. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    this.reader.disconnect();
    await this.done;
    while (this.active > 0) await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

if (require.main === module) runChild(rawRedisContender);
