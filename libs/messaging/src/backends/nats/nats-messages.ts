/**
 * Pure conversions between NATS messages and the backend contract's types. NATS headers are strings;
 * the library's headers are strings, numbers and booleans, so a header `x-nats-types` records which
 * ones are not strings (and which strings were JSON-encoded because a header line cannot carry them).
 * Message properties travel in headers too: `x-nats-message-id`, `x-nats-correlation-id`,
 * `Content-Type`, `Content-Encoding`, `x-nats-timestamp`, `x-nats-reply-to` (a JetStream message's
 * own reply subject is its ack subject) and `x-nats-due` (delayed copies).
 */
import { randomUUID } from 'node:crypto';
import type { JsMsg } from '@nats-io/jetstream';
import type { MsgHdrs } from '@nats-io/transport-node';
import type {
  DeadLetter,
  Delivery,
  IncomingReply,
  OutgoingMessage,
} from '../../backend/broker-backend.interface';
import { attemptOf, producerHeaders, readDeadLetter, topicOf } from '../../backend/message-headers';
import { nameOfSubject, type NatsNames } from './nats-topology';

/** The backend's own header names (never an application header). */
export const NatsHeaders = {
  MESSAGE_ID: 'x-nats-message-id',
  CORRELATION_ID: 'x-nats-correlation-id',
  CONTENT_TYPE: 'Content-Type',
  CONTENT_ENCODING: 'Content-Encoding',
  TIMESTAMP: 'x-nats-timestamp',
  REPLY_TO: 'x-nats-reply-to',
  DUE: 'x-nats-due',
  TYPES: 'x-nats-types',
} as const;

const OWN = new Set(Object.values(NatsHeaders).map((h) => h.toLowerCase()));

/** Properties of a message besides body and application headers. */
export interface NatsProperties {
  readonly messageId?: string;
  readonly correlationId?: string;
  readonly contentType?: string;
  readonly contentEncoding?: string;
  readonly timestamp?: number;
  readonly replyTo?: string;
  readonly due?: number;
}

/** A header name NATS can carry: printable ASCII without `:` or spaces. */
const HEADER_NAME = /^[!-9;-~]+$/;
/** Whether NATS carries `text` as a header value as it is: not empty, no control characters, no edge spaces. */
function isPlainValue(text: string): boolean {
  if (text.length === 0 || text.trim() !== text) return false;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return false;
  }
  return true;
}

/** Encodes application headers and properties as NATS headers, through `make()` (nats' `headers()`). */
export function encodeHeaders(
  make: () => MsgHdrs,
  appHeaders: Readonly<Record<string, unknown>>,
  props: NatsProperties,
): MsgHdrs {
  const h = make();
  const types: Record<string, 'n' | 'b' | 'j'> = {};
  for (const [key, value] of Object.entries(appHeaders)) {
    if (value === undefined || value === null || OWN.has(key.toLowerCase())) continue;
    if (!HEADER_NAME.test(key)) {
      throw new TypeError(
        `NatsBackend: header name ${JSON.stringify(key)} cannot be sent over NATS (printable ASCII without ':' or spaces only)`,
      );
    }
    if (typeof value === 'number') {
      types[key] = 'n';
      h.set(key, String(value));
    } else if (typeof value === 'boolean') {
      types[key] = 'b';
      h.set(key, String(value));
    } else {
      const text = typeof value === 'string' ? value : JSON.stringify(value);
      if (typeof value === 'string' && isPlainValue(text)) h.set(key, text);
      else {
        types[key] = 'j';
        h.set(key, JSON.stringify(value));
      }
    }
  }
  if (Object.keys(types).length > 0) h.set(NatsHeaders.TYPES, JSON.stringify(types));
  setIf(h, NatsHeaders.MESSAGE_ID, props.messageId);
  setIf(h, NatsHeaders.CORRELATION_ID, props.correlationId);
  setIf(h, NatsHeaders.CONTENT_TYPE, props.contentType);
  setIf(h, NatsHeaders.CONTENT_ENCODING, props.contentEncoding);
  setIf(h, NatsHeaders.TIMESTAMP, props.timestamp);
  setIf(h, NatsHeaders.REPLY_TO, props.replyTo);
  setIf(h, NatsHeaders.DUE, props.due);
  return h;
}

function setIf(h: MsgHdrs, key: string, value: string | number | undefined): void {
  if (value === undefined || value === '') return;
  const text = String(value);
  if (isPlainValue(text)) h.set(key, text);
}

/** Application headers and properties of a received message. */
export function decodeHeaders(h: MsgHdrs | undefined): {
  headers: Record<string, unknown>;
  props: NatsProperties;
} {
  const headers: Record<string, unknown> = {};
  if (!h) return { headers, props: {} };
  const types = parseTypes(get(h, NatsHeaders.TYPES));
  for (const key of h.keys()) {
    const lower = key.toLowerCase();
    // JetStream's own headers (Nats-Msg-Id, Nats-Expected-…) and ours are not the application's.
    if (OWN.has(lower) || lower.startsWith('nats-')) continue;
    const raw = h.values(key)[0] ?? '';
    const type = Object.hasOwn(types, key) ? types[key] : undefined;
    headers[key] = decodeValue(raw, type);
  }
  const due = Number(get(h, NatsHeaders.DUE));
  const timestamp = Number(get(h, NatsHeaders.TIMESTAMP));
  return {
    headers,
    props: {
      messageId: get(h, NatsHeaders.MESSAGE_ID) ?? get(h, 'Nats-Msg-Id'),
      correlationId: get(h, NatsHeaders.CORRELATION_ID),
      contentType: get(h, NatsHeaders.CONTENT_TYPE),
      contentEncoding: get(h, NatsHeaders.CONTENT_ENCODING),
      timestamp: Number.isFinite(timestamp) && timestamp > 0 ? timestamp : undefined,
      replyTo: get(h, NatsHeaders.REPLY_TO),
      due: Number.isFinite(due) && due > 0 ? due : undefined,
    },
  };
}

function decodeValue(raw: string, type: string | undefined): unknown {
  if (type === 'n') {
    const n = Number(raw);
    return Number.isFinite(n) ? n : raw;
  }
  if (type === 'b') return raw === 'true';
  if (type === 'j') {
    try {
      return JSON.parse(raw) as unknown;
    } catch {
      return raw;
    }
  }
  return raw;
}

function parseTypes(raw: string | undefined): Record<string, string> {
  if (!raw) return {};
  try {
    const parsed = JSON.parse(raw) as unknown;
    return parsed && typeof parsed === 'object' && !Array.isArray(parsed)
      ? (parsed as Record<string, string>)
      : {};
  } catch {
    return {};
  }
}

/** A header's first value, whatever the case of its name; undefined when absent or empty. */
function get(h: MsgHdrs, key: string): string | undefined {
  const value = h.values(key, 'insensitive')[0];
  return value !== undefined && value.length > 0 ? value : undefined;
}

/** The properties of an outgoing message. */
export function outgoingProperties(message: OutgoingMessage): NatsProperties {
  return {
    messageId: message.messageId,
    correlationId: message.correlationId,
    contentType: message.contentType,
    timestamp: message.timestamp,
  };
}

/**
 * The {@link Delivery} of `msg`, consumed for `queue`. A message on a queue subject is a copy the
 * library made (retry, replay, delayed send) or a direct send: its attempt and original topic come
 * from the library's headers. A message published to a topic is a first attempt of that topic,
 * whatever headers its sender wrote.
 */
export function toDelivery(msg: JsMsg, queue: string, names: NatsNames): Delivery {
  const { headers, props } = decodeHeaders(msg.headers);
  const onQueue = msg.subject.startsWith(names.queuePrefix);
  const routedBy = onQueue
    ? nameOfSubject(msg.subject.slice(names.queuePrefix.length))
    : msg.subject.slice(names.topicPrefix.length);
  return {
    body: Buffer.from(msg.data),
    topic: onQueue ? topicOf(headers, routedBy) : routedBy,
    queue,
    headers,
    messageId: props.messageId ?? `${msg.info.stream}:${msg.seq}`,
    correlationId: props.correlationId,
    contentType: props.contentType,
    contentEncoding: props.contentEncoding,
    replyTo: props.replyTo,
    timestamp: props.timestamp ?? Math.floor(msg.info.timestampNanos / 1_000_000),
    attempt: onQueue ? attemptOf(headers) : 1,
    redelivered: msg.redelivered,
  };
}

/** Properties of a copy of `delivery` (retry, dead letter): its ids, type and timestamp. */
export function copyProperties(delivery: Delivery): NatsProperties {
  return {
    messageId: delivery.messageId,
    correlationId: delivery.correlationId,
    contentType: delivery.contentType,
    contentEncoding: delivery.contentEncoding,
    timestamp: delivery.timestamp,
  };
}

/** A stored message of the dead-letter stream as a {@link DeadLetter}. */
export function toDeadLetter(
  data: Uint8Array,
  h: MsgHdrs | undefined,
  seq: number,
  storedAt: Date,
): DeadLetter {
  const { headers, props } = decodeHeaders(h);
  const stored = {
    body: Buffer.from(data),
    headers,
    messageId: props.messageId,
    correlationId: props.correlationId,
    contentType: props.contentType,
    contentEncoding: props.contentEncoding,
  };
  // Written by someone else (no dead-letter headers): still listed, with what is known.
  return (
    readDeadLetter(stored) ?? {
      id: `seq:${seq}`,
      messageId: props.messageId ?? '',
      correlationId: props.correlationId,
      topic: topicOf(headers, ''),
      queue: '',
      body: stored.body,
      contentType: props.contentType,
      contentEncoding: props.contentEncoding,
      headers: producerHeaders(headers),
      reason: 'delivery-limit',
      error: 'stored in the dead-letter stream without the library headers',
      errorClass: 'Error',
      attempts: attemptOf(headers),
      firstFailedAt: storedAt,
      lastFailedAt: storedAt,
      deadLetteredAt: storedAt,
    }
  );
}

/** A reply as the requester receives it. */
export function toReply(data: Uint8Array, h: MsgHdrs | undefined): IncomingReply {
  const { headers, props } = decodeHeaders(h);
  return {
    body: Buffer.from(data),
    headers,
    contentType: props.contentType,
    contentEncoding: props.contentEncoding,
  };
}

/** A fresh id for a message that carries none. */
export function freshId(): string {
  return randomUUID();
}
