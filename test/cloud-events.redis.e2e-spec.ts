import { RedisStreamsBackend } from '@app/messaging';
import {
  deleteRedisPrefix,
  REDIS_URL,
  redisClient,
  uniqueRedisPrefix,
} from '../libs/messaging/src/testing/redis.fixture';
import { describeCloudEvents, queuedTap, type RawMessage } from './support/cloud-events-scenarios';

const prefix = uniqueRedisPrefix('cev');

describeCloudEvents({
  name: 'Redis Streams',
  run: prefix.replace(/[^a-z0-9]/gi, ''),
  prefix: 'ce-',
  backend: () => new RedisStreamsBackend({ url: REDIS_URL, namespace: prefix, blockMs: 200 }),
  // ioredis as any other application uses it: XADD and XREAD on the topic's stream, fields by name.
  raw: () => {
    const redis = redisClient();
    return Promise.resolve({
      publish: async (topic, { headers, contentType, body }) => {
        const fields = Object.entries(headers).flat();
        if (contentType) fields.push('content-type', contentType);
        await redis.xadd(`${prefix}:t:${topic}`, '*', 'body', body, ...fields);
      },
      tap: (topic) => {
        const reader = redisClient();
        const messages: RawMessage[] = [];
        let open = true;
        const read = async (from: string) => {
          let last = from;
          while (open) {
            const got = await reader.xreadBuffer(
              'BLOCK',
              200,
              'STREAMS',
              `${prefix}:t:${topic}`,
              last,
            );
            for (const [, entries] of got ?? []) {
              for (const [id, raw] of entries) {
                last = id.toString();
                messages.push(plainEntry(raw));
              }
            }
          }
        };
        // From now: entries added after this moment's time.
        const reading = read(`${Date.now()}-0`).catch(() => undefined);
        return Promise.resolve(
          queuedTap(messages, async () => {
            open = false;
            await reading;
            await reader.quit();
          }),
        );
      },
      close: async () => {
        await redis.quit();
      },
    });
  },
  cleanup: () => deleteRedisPrefix(prefix),
});

/** An entry as a plain Redis consumer reads it: headers from `headers` and from `ce-` fields. */
function plainEntry(raw: Buffer[]): RawMessage {
  const fields = new Map<string, Buffer>();
  for (let i = 0; i + 1 < raw.length; i += 2) fields.set(raw[i].toString(), raw[i + 1]);
  const headers: Record<string, unknown> = JSON.parse(fields.get('headers')?.toString() ?? '{}');
  for (const [name, value] of fields) if (name.startsWith('ce-')) headers[name] = value.toString();
  return {
    headers,
    contentType: fields.get('content-type')?.toString(),
    contentEncoding: fields.get('content-encoding')?.toString(),
    body: fields.get('body') ?? Buffer.alloc(0),
  };
}
