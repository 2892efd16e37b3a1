import type { BrokerBindings } from './asyncapi-bindings';
import type { JsonSchema, MessagePayload } from './payload-schema';

/** A topic, a named queue consumed as it is, or the replies to the requests of a topic or queue. */
export type ChannelKind = 'topic' | 'queue' | 'reply';

/** A channel and the payloads, senders and receivers collected for it. */
export interface Channel {
  readonly kind: ChannelKind;
  /** The topic or queue (of the requests, for `reply`). */
  readonly name: string;
  readonly payloads: Map<string, MessagePayload>;
  readonly senders: Set<string>;
  readonly receivers: Set<string>;
  /** The channel's id, once the table is sealed. */
  id: string;
  /** Message id of each payload key ('' for a channel with no known payload), once sealed. */
  messages: Map<string, string>;
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

  /** Records that `payload` travels on `channel`; returns the channel. */
  addPayload(channel: Channel, payload: MessagePayload | undefined): Channel {
    if (payload) channel.payloads.set(payloadKey(payload), payload);
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
      const keys = [...c.payloads.keys()].sort(compare);
      const id = (key: string) =>
        unique(messageIds, keys.length <= 1 ? c.id : `${c.id}.${c.payloads.get(key)?.name}`);
      c.messages = new Map((keys.length === 0 ? [''] : keys).map((key) => [key, id(key)]));
    }
  }

  /** The messages an operation handles: its own payload's, or else every message of the channel. */
  messageRefs(c: Channel, payload: MessagePayload | undefined): MessageRef[] {
    const own = payload ? payloadKey(payload) : undefined;
    const keys = own !== undefined && c.messages.has(own) ? [own] : [...c.messages.keys()];
    return keys.map((key) => ({ $ref: `#/channels/${c.id}/messages/${c.messages.get(key)}` }));
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

function messageObject(c: Channel, id: string, payload: MessagePayload | undefined) {
  const title = c.kind === 'reply' ? `Reply to ${c.name}` : c.name;
  if (!payload) {
    const description =
      'Its payload is not described: no handler of it takes a class (an interface is erased at run time).';
    return { name: id, title, contentType: 'application/json', description };
  }
  const schema: JsonSchema = payload.schema;
  return { name: id, title, contentType: payload.contentType, payload: schema };
}
