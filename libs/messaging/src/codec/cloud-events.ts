/**
 * CloudEvents 1.0 (https://cloudevents.io) on every broker, read always and written on request.
 *
 * Reading: a delivery is a CloudEvent when it is one in either content mode; its handler gets the
 * event's data as the payload, `ctx.messageId` is the event's `id` (the inbox's idempotency key) and
 * `ctx.cloudEvent` holds its attributes. Every other delivery costs a few property reads here.
 *
 * | mode       | recognised by                                            | payload                          |
 * | ---------- | -------------------------------------------------------- | -------------------------------- |
 * | binary     | a `specversion` header with a binding's prefix, any case: | the body, decoded as any message's |
 * |            | `cloudEvents:` / `cloudEvents_` (AMQP), `ce-` (NATS, Redis fields, HTTP), `ce_` (Kafka) | (`datacontenttype` is the content type) |
 * | structured | content type `application/cloudevents+json`              | `data`; `data_base64` as a Buffer; none: undefined |
 * | batch      | content type `application/cloudevents-batch+json`        | refused (dead-lettered): one event per message |
 *
 * An event without `id`, `source` or `type`, or of a `specversion` other than `1.0`, is malformed: it
 * is dead-lettered with the reason, as a body that is not JSON is.
 *
 * Writing (`cloudEvents` on the module or a producer): binary mode adds `specversion` `1.0`, `id`
 * (the message id), `type` (the topic, or queue, unless given), `source` (the service unless given)
 * and `time` as headers with the broker's prefix (`cloudEvents:` on RabbitMQ as the AMQP binding
 * says, `ce-` elsewhere), the content type being `datacontenttype`; structured mode sends the event
 * as the body, `application/cloudevents+json`, with the payload as `data` (a Buffer as
 * `data_base64`). The same ids either way: a binary event's `id` is its message id.
 */
import type { Delivery, MessageHeaders } from '../backend/broker-backend.interface';
import { checkName, checkOptionsObject } from '../errors/config-checks';
import { MalformedMessageError, MessagingConfigError } from '../errors/messaging.errors';
import type { BodyEnvelope, EncodedMessage, MessageCodec } from './message-codec';

/** The attributes of a CloudEvent a handler received (`ctx.cloudEvent`). */
export interface CloudEventAttributes {
  readonly specversion: string;
  /** The event's id: also the delivery's `messageId`. */
  readonly id: string;
  readonly source: string;
  readonly type: string;
  readonly subject?: string;
  /** As the producer wrote it (RFC 3339). */
  readonly time?: string;
  readonly datacontenttype?: string;
  readonly dataschema?: string;
  /** Every other attribute (extensions such as `traceparent` or `partitionkey`), by name. */
  readonly extensions: Readonly<Record<string, string | number | boolean>>;
}

/** A delivery that carried a CloudEvent: its `messageId` is the event's `id`. */
export interface CloudEventDelivery extends Delivery {
  readonly cloudEvent: CloudEventAttributes;
}

/** A CloudEvent read off a delivery: the delivery the handler sees, and its payload. */
export interface ReadCloudEvent {
  readonly delivery: CloudEventDelivery;
  readonly payload: unknown;
}

/** `cloudEvents` of `MessagingModule.forRoot()` and `@Producer()`. */
export interface CloudEventsOptions {
  /** The `source` attribute (a URI reference). @default the module's `service` */
  source?: string;
  /**
   * `binary`: the attributes travel as headers and the body is the payload as without CloudEvents
   * (plain consumers read it unchanged). `structured`: the body is the whole event as JSON
   * (`application/cloudevents+json`). @default 'binary'
   */
  mode?: 'binary' | 'structured';
  /** The `type` attribute. Only on a producer: @default the topic (or the queue) */
  type?: string;
}

/** Resolved `cloudEvents` settings. */
export interface CloudEventsSettings {
  readonly source: string;
  readonly mode: 'binary' | 'structured';
  readonly type?: string;
}

const SPEC_VERSION = '1.0';
const REQUIRED = ['id', 'source', 'type'] as const;
const CORE = new Set(['specversion', 'id', 'source', 'type', 'subject', 'time', 'dataschema']);
/** Binding prefixes of binary-mode headers, lower case. */
const PREFIXES = ['cloudevents:', 'cloudevents_', 'ce-', 'ce_'];
/** Where a binary event's `specversion` is looked for first: the spellings the bindings write. */
const SPECVERSION_HEADERS = [
  'cloudEvents:specversion',
  'cloudEvents_specversion',
  'ce-specversion',
  'ce_specversion',
  'Ce-Specversion',
];
const STRUCTURED = /^\s*application\/cloudevents(-batch)?\+json\s*(;|$)/i;
const JSON_TYPE = 'application/json';
const STRUCTURED_TYPE = 'application/cloudevents+json; charset=utf-8';
const MODES = ['binary', 'structured'];

/**
 * The CloudEvent `delivery` carries, with its payload decoded by `codec`; `undefined` when it is not
 * one (then it is decoded as any message). Throws `MalformedMessageError` for a broken event.
 */
export function readCloudEvent(
  delivery: Delivery,
  codec: MessageCodec,
): ReadCloudEvent | undefined {
  const event = readEvent(delivery, codec);
  if (event === undefined) return undefined;
  const { cloudEvent, payload } = event;
  return { delivery: { ...delivery, messageId: cloudEvent.id, cloudEvent }, payload };
}

/**
 * What the inbox (`idempotent: true`) keys `delivery` on: its message id; for a CloudEvent whose
 * `id` is not the message id (one from another producer), its `source` and `id`, which CloudEvents
 * makes unique only together (two sources may both send an event `1`).
 */
export function idempotencyKey(delivery: Delivery, event: ReadCloudEvent | undefined): string {
  const cloudEvent = event?.delivery.cloudEvent;
  if (cloudEvent === undefined || cloudEvent.id === delivery.messageId) return delivery.messageId;
  return JSON.stringify([cloudEvent.source, cloudEvent.id]);
}

/**
 * The attributes and payload of the CloudEvent `message` carries (a delivery, a dead letter);
 * `undefined` when it is not one. Throws `MalformedMessageError` for a broken event.
 */
export function readEvent(
  message: EncodedMessage,
  codec: MessageCodec,
): { readonly cloudEvent: CloudEventAttributes; readonly payload: unknown } | undefined {
  const { contentType, headers } = message;
  if (contentType !== undefined && contentType !== JSON_TYPE) {
    const structured = STRUCTURED.exec(contentType);
    if (structured) {
      if (structured[1]) {
        throw new MalformedMessageError(
          'A CloudEvents batch (application/cloudevents-batch+json) is not read: send each event as a message of its own',
        );
      }
      return readStructured(message, codec);
    }
  }
  if (!SPECVERSION_HEADERS.some((name) => headers[name] !== undefined)) return undefined;
  return readBinary(message, codec);
}

function readBinary(message: EncodedMessage, codec: MessageCodec) {
  // No prototype: a header named `ce-__proto__` is an attribute name like any other.
  const found = Object.create(null) as Record<string, unknown>;
  for (const name in message.headers) {
    const lower = name.toLowerCase();
    const prefix = PREFIXES.find((p) => lower.startsWith(p));
    if (prefix) found[lower.slice(prefix.length)] = headerText(message.headers[name]);
  }
  found.datacontenttype ??= message.contentType;
  return { cloudEvent: attributesOf(found, 'binary'), payload: codec.decode(message) };
}

function readStructured(message: EncodedMessage, codec: MessageCodec) {
  // One level more than a plain body: the envelope around the data.
  const event = codec.parseJson(codec.inflate(message), 1);
  if (typeof event !== 'object' || event === null || Array.isArray(event)) {
    throw new MalformedMessageError(
      'The CloudEvent (structured mode) is not a JSON object: send the event as one, with its data in "data"',
    );
  }
  const fields = event as Record<string, unknown>;
  const cloudEvent = attributesOf(fields, 'structured');
  const base64 = fields.data_base64;
  const payload =
    typeof base64 === 'string'
      ? Buffer.from(base64, 'base64')
      : 'data' in fields
        ? fields.data
        : undefined;
  return { cloudEvent, payload };
}

/** The attributes of an event, checked: the required ones present, a supported specversion. */
function attributesOf(
  fields: Readonly<Record<string, unknown>>,
  mode: 'binary' | 'structured',
): CloudEventAttributes {
  const specversion = fields.specversion;
  if (specversion !== SPEC_VERSION) {
    throw new MalformedMessageError(
      `The CloudEvent (${mode} mode) has specversion ${JSON.stringify(specversion)}: only CloudEvents 1.0 is read`,
    );
  }
  for (const name of REQUIRED) {
    const value = fields[name];
    if (typeof value !== 'string' || value.length === 0) {
      throw new MalformedMessageError(
        `The CloudEvent (${mode} mode) has no "${name}" attribute: a CloudEvents 1.0 event needs specversion, id, source and type`,
      );
    }
  }
  const extensions: Record<string, string | number | boolean> = {};
  for (const name of Object.keys(fields)) {
    if (CORE.has(name) || name === 'datacontenttype' || name === 'data' || name === 'data_base64')
      continue;
    if (name === '__proto__') continue;
    const value = fields[name];
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
      extensions[name] = value;
    }
  }
  return {
    specversion: SPEC_VERSION,
    id: fields.id as string,
    source: fields.source as string,
    type: fields.type as string,
    subject: optionalText(fields.subject),
    time: optionalText(fields.time),
    datacontenttype: optionalText(fields.datacontenttype),
    dataschema: optionalText(fields.dataschema),
    extensions,
  };
}

/** The binary-mode header prefix of a backend (`BrokerBackend.name`): the AMQP binding's on RabbitMQ. */
export function cloudEventsPrefix(backend: string): string {
  return backend === 'amqp' ? 'cloudEvents:' : 'ce-';
}

/** What a CloudEvent we send says of its message. */
export interface SentEvent {
  readonly messageId: string;
  readonly topic?: string;
  readonly queue?: string;
  readonly timestamp: number;
}

/** The binary-mode headers of `message`, with `prefix` ({@link cloudEventsPrefix}). */
export function cloudEventHeaders(
  settings: CloudEventsSettings,
  prefix: string,
  message: SentEvent,
): MessageHeaders {
  return {
    [`${prefix}specversion`]: SPEC_VERSION,
    [`${prefix}id`]: message.messageId,
    [`${prefix}type`]: typeOf(settings, message),
    [`${prefix}source`]: settings.source,
    [`${prefix}time`]: new Date(message.timestamp).toISOString(),
  };
}

/**
 * The structured-mode envelope of `message` for `MessageCodec.encode()`: the attributes, then the
 * payload as `data` (JSON as it is, text as a string) or `data_base64` (bytes).
 */
export function structuredEnvelope(
  settings: CloudEventsSettings,
  message: SentEvent,
): BodyEnvelope {
  return (body, contentType) => {
    const head = JSON.stringify({
      specversion: SPEC_VERSION,
      id: message.messageId,
      source: settings.source,
      type: typeOf(settings, message),
      time: new Date(message.timestamp).toISOString(),
      datacontenttype: contentType,
    });
    const data =
      contentType === JSON_TYPE
        ? `"data":${body.toString('utf8')}`
        : contentType.startsWith('text/')
          ? `"data":${JSON.stringify(body.toString('utf8'))}`
          : `"data_base64":"${body.toString('base64')}"`;
    return {
      body: Buffer.from(`${head.slice(0, -1)},${data}}`, 'utf8'),
      contentType: STRUCTURED_TYPE,
    };
  };
}

function typeOf(settings: CloudEventsSettings, message: SentEvent): string {
  return settings.type ?? message.topic ?? (message.queue as string);
}

/**
 * Resolves a `cloudEvents` option (`true`, an object, or `false`/absent for none); `inherited` are
 * the module's settings a producer's option is merged over. Throws a `MessagingConfigError` naming
 * the field.
 */
export function resolveCloudEvents(
  option: boolean | CloudEventsOptions | undefined,
  defaults: { readonly service: string; readonly inherited?: CloudEventsSettings },
  where: string,
): CloudEventsSettings | undefined {
  if (option === undefined) return defaults.inherited;
  if (option === false) return undefined;
  const base: CloudEventsSettings = defaults.inherited ?? {
    source: defaults.service,
    mode: 'binary',
  };
  if (option === true) return base;
  const options = checkOptionsObject(option, ['source', 'mode', 'type'], where);
  const mode = options?.mode ?? base.mode;
  if (!MODES.includes(mode)) {
    throw new MessagingConfigError(
      `${where}.mode must be 'binary' or 'structured', got ${JSON.stringify(mode)}`,
    );
  }
  return {
    source: checkName(options?.source, `${where}.source`, 2048) ?? base.source,
    mode,
    type: checkName(options?.type, `${where}.type`, 2048) ?? base.type,
  };
}

function headerText(value: unknown): unknown {
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (value instanceof Date) return value.toISOString();
  return value;
}

function optionalText(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}
