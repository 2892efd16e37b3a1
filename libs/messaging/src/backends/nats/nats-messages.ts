/**
 * Pure conversions between NATS messages and the backend contract's types. NATS headers are strings;
 * the library's headers are strings, numbers and booleans, so a header `x-nats-types` records which
 * ones are not strings (and which strings were JSON-encoded because a header line cannot carry them).
 * Message properties travel in headers too: `x-nats-message-id`, `x-nats-correlation-id`,
 * `Content-Type`, `Content-Encoding`, `x-nats-timestamp`, `x-nats-reply-to` (a JetStream message's
 * own reply subject is its ack subject), `x-nats-due` (delayed copies), and `x-nats-attempt` and
 * `x-nats-topic` (on the copies the library writes to a queue: retries, replays, delayed sends).
 *
 * The attempt and topic of a delivery come from `x-nats-attempt` and `x-nats-topic`, never from the
 * `x-messaging-*` headers, which anyone who publishes on a queue subject can write (a foreign
 * sender's `x-messaging-attempt: 999` would skip every retry). {@link encodeHeaders} never lets an
 * application header take a name of the backend's own, so only the library's copies carry them.
 */
import { randomUUID } from 'node:crypto';
import type { Msg } from '@nats-io/transport-node';
import type { DeadLetter, Delivery, OutgoingMessage } from '../../backend/broker-backend.interface';
import { attemptOf, producerHeaders, readDeadLetter, topicOf } from '../../backend/message-headers';
import type { PulledMessage } from './nats-pulled-message';
import { nameOfSubject, type NatsNames } from './nats-topology';
import { forEachHeader, type HeaderSource, headersOf, WireHeaders } from './nats-wire';

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
  REFUSAL: 'x-nats-refusal',
  ATTEMPT: 'x-nats-attempt',
  TOPIC: 'x-nats-topic',
} as const;

/** What {@link NatsHeaders.REFUSAL} says to the sender of a volatile request (`nats-responder.ts`). */
export const Refusal = {
  /** The route of the instance that got it holds `maxWaitingRequests` already. */
  BUSY: 'busy',
  /** Not matched by the route's patterns (its filter is wider): maybe no route takes it. */
  DECLINED: 'declined',
} as const;

const OWN = new Set(Object.values(NatsHeaders).map((h) => h.toLowerCase()));
/** What the names of the server's own headers start with (lower case). */
const SERVER_HEADERS = 'nats-';

/** Properties of a message besides body and application headers. */
export interface NatsProperties {
  readonly messageId?: string;
  readonly correlationId?: string;
  readonly contentType?: string;
  readonly contentEncoding?: string;
  readonly timestamp?: number;
  readonly replyTo?: string;
  readonly due?: number;
  /** Why a volatile request was not taken (`nats-responder.ts`); replies only. */
  readonly refusal?: string;
  /** The attempt of the next delivery: on a retry copy only. */
  readonly attempt?: number;
  /** The original topic: on a copy sent to a queue only (retry, replay, delayed send). */
  readonly topic?: string;
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

/**
 * Encodes application headers and properties as NATS headers. The backend's own names are skipped,
 * and so are names starting with `Nats-` (any case): the server reads those (`Nats-Msg-Id` decides
 * deduplication, `Nats-Expected-…` refuse a publish), so an application header must not pass for
 * one; received messages never show them either.
 */
export function encodeHeaders(
  appHeaders: Readonly<Record<string, unknown>>,
  props: NatsProperties,
): WireHeaders {
  const h = new WireHeaders();
  let types: Record<string, 'n' | 'b' | 'j'> | undefined;
  for (const key in appHeaders) {
    const value = appHeaders[key];
    if (value === undefined || value === null) continue;
    const lower = key.toLowerCase();
    if (OWN.has(lower) || lower.startsWith(SERVER_HEADERS)) continue;
    if (!HEADER_NAME.test(key)) {
      throw new TypeError(
        `NatsBackend: header name ${JSON.stringify(key)} cannot be sent over NATS (printable ASCII without ':' or spaces only)`,
      );
    }
    if (typeof value === 'number') {
      (types ??= {})[key] = 'n';
      h.add(key, String(value));
    } else if (typeof value === 'boolean') {
      (types ??= {})[key] = 'b';
      h.add(key, String(value));
    } else if (typeof value === 'string' && isPlainValue(value)) {
      h.add(key, value);
    } else {
      (types ??= {})[key] = 'j';
      h.add(key, JSON.stringify(value));
    }
  }
  if (types) h.add(NatsHeaders.TYPES, JSON.stringify(types));
  setIf(h, NatsHeaders.MESSAGE_ID, props.messageId);
  setIf(h, NatsHeaders.CORRELATION_ID, props.correlationId);
  setIf(h, NatsHeaders.CONTENT_TYPE, props.contentType);
  setIf(h, NatsHeaders.CONTENT_ENCODING, props.contentEncoding);
  setIf(h, NatsHeaders.TIMESTAMP, props.timestamp);
  setIf(h, NatsHeaders.REPLY_TO, props.replyTo);
  setIf(h, NatsHeaders.DUE, props.due);
  setIf(h, NatsHeaders.ATTEMPT, props.attempt);
  setIf(h, NatsHeaders.TOPIC, props.topic);
  return h;
}

function setIf(h: WireHeaders, key: string, value: string | number | undefined): void {
  if (value === undefined || value === '') return;
  const text = typeof value === 'string' ? value : String(value);
  if (isPlainValue(text)) h.add(key, text);
}

/** Properties of a received message, as {@link decodeHeaders} fills them in. */
type MutableProperties = { -readonly [K in keyof NatsProperties]: NatsProperties[K] };

/** What {@link decodeHeaders} reads, one header at a time. */
class HeaderReader {
  readonly headers: Record<string, unknown> = {};
  readonly props: MutableProperties = {};
  types?: string;
  natsMsgId?: string;

  take(key: string, value: string): void {
    switch (key.toLowerCase()) {
      case 'x-nats-message-id':
        if (value) this.props.messageId ??= value;
        return;
      case 'x-nats-correlation-id':
        if (value) this.props.correlationId ??= value;
        return;
      case 'content-type':
        if (value) this.props.contentType ??= value;
        return;
      case 'content-encoding':
        if (value) this.props.contentEncoding ??= value;
        return;
      case 'x-nats-timestamp':
        this.props.timestamp ??= positive(value);
        return;
      case 'x-nats-reply-to':
        if (value) this.props.replyTo ??= value;
        return;
      case 'x-nats-due':
        this.props.due ??= positive(value);
        return;
      case 'x-nats-types':
        this.types ??= value;
        return;
      case 'x-nats-refusal':
        if (value) this.props.refusal ??= value;
        return;
      case 'x-nats-attempt':
        this.props.attempt ??= attemptNumber(value);
        return;
      case 'x-nats-topic':
        if (value) this.props.topic ??= value;
        return;
      case 'nats-msg-id':
        if (value) this.natsMsgId ??= value;
        return;
      default:
        // JetStream's own headers (Nats-Expected-…) are not the application's. A name given
        // several values: its first one.
        if (!/^nats-/i.test(key)) this.headers[key] ??= value;
    }
  }
}

/**
 * Application headers and properties of a received message (from {@link headersOf}), in one pass
 * over its headers: the backend's own are recognised whatever their case.
 */
export function decodeHeaders(source: HeaderSource): {
  headers: Record<string, unknown>;
  props: NatsProperties;
} {
  const reader = new HeaderReader();
  forEachHeader(source, reader);
  const { headers, props } = reader;
  props.messageId ??= reader.natsMsgId;
  if (reader.types) {
    const parsed = parseTypes(reader.types);
    for (const key in parsed) {
      if (Object.hasOwn(headers, key))
        headers[key] = decodeValue(headers[key] as string, parsed[key]);
    }
  }
  return { headers, props };
}

function positive(text: string): number | undefined {
  const n = Number(text);
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

/** An attempt number: a whole number in 1..1e6, as `attemptOf()` accepts one; else undefined. */
function attemptNumber(text: string): number | undefined {
  if (!/^\d{1,7}$/.test(text)) return undefined;
  const n = Number(text);
  return n >= 1 && n <= 1_000_000 ? n : undefined;
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

/** The last `x-nats-types` read, and what it says: most messages of a stream carry the same one. */
let lastTypes: [string, Readonly<Record<string, string>>] = ['', {}];

function parseTypes(raw: string): Readonly<Record<string, string>> {
  if (raw === lastTypes[0]) return lastTypes[1];
  let types: Record<string, string> = {};
  try {
    const parsed = JSON.parse(raw) as unknown;
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed))
      types = parsed as Record<string, string>;
  } catch {
    // Not ours: every value stays a string.
  }
  lastTypes = [raw, types];
  return types;
}

/** The properties of an outgoing message. */
export function outgoingProperties(message: OutgoingMessage): NatsProperties {
  return {
    messageId: message.messageId,
    correlationId: message.correlationId,
    contentType: message.contentType,
    contentEncoding: message.contentEncoding,
    timestamp: message.timestamp,
  };
}

/**
 * The {@link Delivery} of `msg`, consumed for `queue`. A message on a queue subject is a copy the
 * library made (retry, replay, delayed send) or a direct send: its attempt and original topic come
 * from the backend's own `x-nats-attempt` and `x-nats-topic`, which only the library's copies carry
 * (a direct send is a first attempt of the queue). A message published to a topic is a first
 * attempt of that topic. Whatever `x-messaging-*` headers a sender wrote, they decide neither.
 */
export function toDelivery(msg: PulledMessage, queue: string, names: NatsNames): Delivery {
  const { headers, props } = decodeHeaders(headersOf(msg.msg));
  const subject = msg.subject;
  const onQueue = subject.startsWith(names.queuePrefix);
  const routedBy = onQueue
    ? nameOfSubject(subject.slice(names.queuePrefix.length))
    : subject.slice(names.topicPrefix.length);
  return {
    body: Buffer.from(msg.data),
    topic: onQueue ? (props.topic ?? routedBy) : routedBy,
    queue,
    headers,
    messageId: props.messageId ?? `${msg.stream}:${msg.seq}`,
    correlationId: props.correlationId,
    contentType: props.contentType,
    contentEncoding: props.contentEncoding,
    replyTo: props.replyTo,
    timestamp: props.timestamp ?? msg.storedAtMs,
    attempt: onQueue ? (props.attempt ?? 1) : 1,
    redelivered: msg.redelivered,
  };
}

/**
 * The properties of a volatile request (`nats-responder.ts` reads them): its correlation id only
 * when it is not its message id (as the core sends it), which {@link requestDelivery} assumes
 * otherwise. A request is sent and parsed once per call; these are 60 bytes of its ~250.
 */
export function volatileRequestProperties(message: OutgoingMessage): NatsProperties {
  return {
    messageId: message.messageId,
    correlationId: message.correlationId === message.messageId ? undefined : message.correlationId,
    contentType: message.contentType,
    contentEncoding: message.contentEncoding,
    timestamp: message.timestamp,
  };
}

/**
 * The {@link Delivery} of a volatile request (core NATS, `nats-responder.ts`) on `topic`: a first
 * attempt, never redelivered, answered to its own reply subject; its correlation id is its message
 * id unless it says otherwise.
 */
export function requestDelivery(msg: Msg, topic: string, queue: string): Delivery {
  const { headers, props } = decodeHeaders(headersOf(msg));
  const messageId = props.messageId ?? randomUUID();
  return {
    body: Buffer.from(msg.data),
    topic,
    queue,
    headers,
    messageId,
    correlationId: props.correlationId ?? messageId,
    contentType: props.contentType,
    contentEncoding: props.contentEncoding,
    replyTo: msg.reply,
    timestamp: props.timestamp,
    attempt: 1,
    redelivered: false,
  };
}

/**
 * Properties of a copy of `delivery` (retry, dead letter): its ids, type and timestamp; a copy that
 * goes back to a queue (`attempt` given) says its attempt and original topic too.
 */
export function copyProperties(delivery: Delivery, attempt?: number): NatsProperties {
  return {
    messageId: delivery.messageId,
    correlationId: delivery.correlationId,
    contentType: delivery.contentType,
    contentEncoding: delivery.contentEncoding,
    timestamp: delivery.timestamp,
    attempt,
    topic: attempt === undefined ? undefined : delivery.topic,
  };
}

/** A stored message of the dead-letter stream as a {@link DeadLetter}. */
export function toDeadLetter(
  data: Uint8Array,
  h: HeaderSource,
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
