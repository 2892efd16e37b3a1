import { MessagingHeaders } from '../backend/message-headers';
import type { BrokerBindings } from './asyncapi-bindings';
import type { JsonSchema, MessagePayload } from './payload-schema';

/** A topic, a named queue consumed as it is, or the replies to the requests of a topic or queue. */
export type ChannelKind = 'topic' | 'queue' | 'reply';

/** A channel and the payloads, senders and receivers collected for it. */
export interface Channel {
  readonly kind: ChannelKind;
  /** The topic or queue (of the requests, for `reply`). */
  readonly name: string;
  /** Each message of the channel by key: its payload (if known) and version (if it has one). */
  readonly payloads: Map<string, ChannelMessage>;
  readonly senders: Set<string>;
  readonly receivers: Set<string>;
  /** The channel's id, once the table is sealed. */
  id: string;
  /** Message id of each payload key ('' for a channel with no known payload), once sealed. */
  messages: Map<string, string>;
}

/** One kind of message of a channel: a payload type, of a version (`x-messaging-version`) or not. */
export interface ChannelMessage {
  readonly payload?: MessagePayload;
  readonly version?: number;
}

/** Reference to one message of a channel, as an operation lists it. */
export type MessageRef = { readonly $ref: string };

/** Plain string order, the same on every machine (no locale). */
export const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** `order.created` -> `orderCreated`, `payment-service` -> `paymentService`, `order.*` -> `orderStar`. */
export function camelId(name: string): string {
  const words = name
    .replace(/\*/g, ' star ')
    .replace(/#/g, ' hash ')
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean);
  const id = words.map((w, i) => (i === 0 ? w : w[0].toUpperCase() + w.slice(1))).join('');
  return id === '' ? 'channel' : id;
}

const payloadKey = (p: MessagePayload): string =>
  `${p.name} ${p.contentType} ${JSON.stringify(p.schema)}`;

/** A message's key: its payload's, after its version (zero-padded: versions sort as numbers). */
const messageKey = (m: ChannelMessage): string =>
  (m.version === undefined ? '' : `v${String(m.version).padStart(7, '0')} `) +
  (m.payload ? payloadKey(m.payload) : '');

/**
 * The channels of a document: collected first (`get`, `addPayload`), then sealed, which names them in
 * address order (`orderCreated`, `helloQueue`, `orderCreatedReply`) and their messages (a channel's
 * one message has the channel's id; `<id>.<Type>` when it carries several types).
 */
export class ChannelTable {
  private readonly byKey = new Map<string, Channel>();
  private sorted: Channel[] = [];

  /** The channel of a kind and name, created on first use. */
  get(kind: ChannelKind, name: string): Channel {
    const key = `${kind}:${name}`;
    let found = this.byKey.get(key);
    if (!found) {
      const empty = { id: '', messages: new Map<string, string>() };
      found = {
        kind,
        name,
        payloads: new Map(),
        senders: new Set(),
        receivers: new Set(),
        ...empty,
      };
      this.byKey.set(key, found);
    }
    return found;
  }

  /**
   * Records that `payload` travels on `channel`, as `version` when given (a version without a known
   * payload is a message too: listed unless a payload of that version is); returns the channel.
   */
  addPayload(channel: Channel, payload: MessagePayload | undefined, version?: number): Channel {
    if (payload || version !== undefined) {
      const message = { ...(payload && { payload }), ...(version !== undefined && { version }) };
      channel.payloads.set(messageKey(message), message);
    }
    return channel;
  }

  /** Names every channel and message; call once everything was collected. */
  seal(): void {
    this.sorted = [...this.byKey.values()].sort(
      (a, b) => compare(a.name, b.name) || compare(a.kind, b.kind),
    );
    const channelIds = new Set<string>();
    const messageIds = new Set<string>();
    const suffix = { topic: '', queue: 'Queue', reply: 'Reply' };
    for (const c of this.sorted) c.id = unique(channelIds, camelId(c.name) + suffix[c.kind]);
    for (const c of this.sorted) {
      // A version without a payload is no message of its own when a payload of it is known.
      const described = new Set([...c.payloads.values()].map((m) => m.payload && m.version));
      for (const [key, m] of c.payloads) {
        if (!m.payload && described.has(m.version)) c.payloads.delete(key);
      }
      const keys = [...c.payloads.keys()].sort(compare);
      const types = new Set([...c.payloads.values()].flatMap((m) => m.payload?.name ?? []));
      const id = (key: string) => {
        const { payload, version } = c.payloads.get(key) ?? {};
        const type = types.size > 1 && payload ? `.${payload.name}` : '';
        return unique(messageIds, `${c.id}${type}${version === undefined ? '' : `.v${version}`}`);
      };
      c.messages = new Map((keys.length === 0 ? [''] : keys).map((key) => [key, id(key)]));
    }
  }

  /**
   * The messages an operation handles. Without `versions`: its own payload's, or else every message
   * of the channel. With them: of the first, its own payload's (or else all of it), and every message
   * of the others; every message of the channel when none is of them.
   */
  messageRefs(
    c: Channel,
    payload: MessagePayload | undefined,
    versions?: readonly number[],
  ): MessageRef[] {
    const all = [...c.messages.keys()];
    const ofVersion = (version: number | undefined) =>
      version === undefined ? all : all.filter((key) => c.payloads.get(key)?.version === version);
    const ownOf = (keys: string[]) => {
      const own = payload && payloadKey(payload);
      const found = keys.find((key) => {
        const p = c.payloads.get(key)?.payload;
        return p !== undefined && payloadKey(p) === own;
      });
      return found !== undefined ? [found] : keys;
    };
    const [first, ...others] = versions ?? [undefined];
    const keys = [...ownOf(ofVersion(first)), ...others.flatMap(ofVersion)];
    return (keys.length > 0 ? keys : all).map((key) => ({
      $ref: `#/channels/${c.id}/messages/${c.messages.get(key)}`,
    }));
  }

  /** `channels` of the document, in address order, with the broker's bindings. */
  channelObjects(bindings: BrokerBindings): Record<string, unknown> {
    return Object.fromEntries(this.sorted.map((c) => [c.id, channelObject(c, bindings)]));
  }

  /** `components.messages` of the document, sorted by id. */
  messageObjects(): Record<string, unknown> {
    const entries = this.sorted.flatMap((c) =>
      [...c.messages].map(([key, id]) => [id, messageObject(c, id, c.payloads.get(key))] as const),
    );
    return Object.fromEntries(entries.sort(([a], [b]) => compare(a, b)));
  }
}

function unique(taken: Set<string>, base: string): string {
  let id = base;
  for (let n = 2; taken.has(id); n++) id = `${base}${n}`;
  taken.add(id);
  return id;
}

function channelObject(c: Channel, bindings: BrokerBindings): Record<string, unknown> {
  const who = (verb: string, services: Set<string>) =>
    services.size > 0 ? `${verb} by ${[...services].sort(compare).join(', ')}` : undefined;
  const parts = [who('sent', c.senders), who('received', c.receivers)].filter(Boolean);
  const what = {
    topic: `Topic \`${c.name}\``,
    queue: `Named queue \`${c.name}\`, consumed as it is`,
    reply: `Replies to requests on \`${c.name}\`, sent to each request's reply-to address`,
  }[c.kind];
  const messages = Object.fromEntries(
    [...c.messages.values()].map((id) => [id, { $ref: `#/components/messages/${id}` }]),
  );
  return {
    // A reply goes where its request says (the operation's reply.address): no fixed address.
    address: c.kind === 'reply' ? null : c.name,
    description: parts.length > 0 ? `${what}: ${parts.join('; ')}.` : `${what}.`,
    messages,
    ...(c.kind === 'reply' ? {} : bindings.channel(c)),
  };
}

function messageObject(c: Channel, id: string, message: ChannelMessage | undefined) {
  const { payload, version } = message ?? {};
  const name = c.kind === 'reply' ? `Reply to ${c.name}` : c.name;
  const title = version === undefined ? name : `${name} v${version}`;
  const versioned = version !== undefined && { headers: versionHeaders(version) };
  if (!payload) {
    const description =
      version === undefined
        ? 'Its payload is not described: no handler of it takes a class (an interface is erased at run time).'
        : `Version ${version}. Its payload is not described: no handler of this version takes a class.`;
    return { name: id, title, contentType: 'application/json', description, ...versioned };
  }
  const schema: JsonSchema = payload.schema;
  return { name: id, title, contentType: payload.contentType, payload: schema, ...versioned };
}

/** The headers schema of version `version` of a message: its `x-messaging-version` (absent = 1). */
function versionHeaders(version: number): JsonSchema {
  return {
    type: 'object',
    properties: {
      [MessagingHeaders.VERSION]: {
        type: 'integer',
        const: version,
        description:
          version === 1
            ? 'The version of the message; a message without it is version 1.'
            : 'The version of the message.',
      },
    },
    ...(version > 1 && { required: [MessagingHeaders.VERSION] }),
  };
}
