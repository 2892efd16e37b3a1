/**
 * The requests and replies of {@link RedisStreamsBackend} as they travel outside streams: a volatile
 * request in its route's list, a reply over pub/sub. Pure conversions.
 */
import type {
  Delivery,
  IncomingReply,
  OutgoingMessage,
  OutgoingReply,
} from '../../backend/broker-backend.interface';
import { bodyArgument } from './redis-messages';

/**
 * A volatile request as it waits in its route's list (`<prefix>:rq:<queue>`): one line of JSON (topic
 * `t`, headers `h`, message id `id`, correlation id `c`, content type `ct`, content encoding `ce`,
 * timestamp `ts`, reply address `r`; `JSON.stringify` leaves out those undefined), a newline, then the body as it is. `JSON.stringify` escapes every newline, so the
 * first one ends the line.
 */
export function requestEntry(
  message: OutgoingMessage,
  topic: string,
  replyTo: string,
): string | Buffer {
  const line = JSON.stringify({
    t: topic,
    h: message.headers,
    id: message.messageId,
    c: message.correlationId,
    ct: message.contentType,
    ce: message.contentEncoding,
    ts: message.timestamp,
    r: replyTo,
  });
  // As text when the body is UTF-8: see `bodyArgument`.
  const body = bodyArgument(message.body);
  return typeof body === 'string'
    ? `${line}\n${body}`
    : Buffer.concat([Buffer.from(`${line}\n`), body]);
}

/** The {@link Delivery} of a {@link requestEntry} taken by `queue`; undefined when it is not one. */
export function fromRequestEntry(entry: Buffer, queue: string): Delivery | undefined {
  const end = entry.indexOf(10);
  if (end < 0) return undefined;
  let meta: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(entry.toString('utf8', 0, end));
    if (!isPlainObject(parsed)) return undefined;
    meta = parsed;
  } catch {
    return undefined;
  }
  const { t: topic, r: replyTo, id: messageId, ts: timestamp } = meta;
  if (typeof topic !== 'string' || typeof replyTo !== 'string' || typeof messageId !== 'string')
    return undefined;
  return {
    body: entry.subarray(end + 1),
    topic,
    queue,
    headers: isPlainObject(meta.h) ? meta.h : {},
    messageId,
    correlationId: typeof meta.c === 'string' ? meta.c : undefined,
    contentType: typeof meta.ct === 'string' ? meta.ct : undefined,
    contentEncoding: typeof meta.ce === 'string' ? meta.ce : undefined,
    replyTo,
    timestamp: typeof timestamp === 'number' && timestamp > 0 ? timestamp : undefined,
    attempt: 1,
    redelivered: false,
  };
}

/**
 * A reply as sent over pub/sub: JSON, the body in base64 `b`, headers `h`, content type `ct`,
 * content encoding `ce`.
 */
export function encodeReply(reply: OutgoingReply): string {
  return JSON.stringify({
    b: reply.body.toString('base64'),
    h: reply.headers,
    ct: reply.contentType,
    ce: reply.contentEncoding,
  });
}

/** Reads a reply sent by {@link encodeReply}; undefined when it is not one. */
export function decodeReply(message: string): IncomingReply | undefined {
  try {
    const parsed = JSON.parse(message) as { b?: unknown; h?: unknown; ct?: unknown; ce?: unknown };
    if (typeof parsed.b !== 'string') return undefined;
    return {
      body: Buffer.from(parsed.b, 'base64'),
      headers: isPlainObject(parsed.h) ? parsed.h : {},
      contentType: typeof parsed.ct === 'string' ? parsed.ct : undefined,
      contentEncoding: typeof parsed.ce === 'string' ? parsed.ce : undefined,
    };
  } catch {
    return undefined;
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
