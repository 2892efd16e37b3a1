/**
 * The AsyncAPI 3.0 document of one or more services, built from what their `@Consume` routes and
 * `@Producer` injections say. Pure: the same description always gives the same document, with
 * channels, operations, messages and schemas sorted by id, so a committed copy can be checked for
 * drift byte for byte.
 *
 * | AsyncAPI              | from                                                                   |
 * | --------------------- | ---------------------------------------------------------------------- |
 * | channel               | a topic (address = the topic) or a named queue                         |
 * | `receive` operation   | a `@Consume` handler: `<service>.<method>`, with its queue, retry and dead-letter policy (`x-messaging`) |
 * | `x-batch` on it        | a batch handler (`@Consume({ batch })`): `{ size, maxWaitMs }`; its messages are single items |
 * | `send` operation      | the `@Producer`s of one service for one channel: `<service>.send<Channel>` |
 * | message               | a payload type of the channel (`<channel>`, or `<channel>.<Type>` when several), of each version (`.v2`, with its `x-messaging-version` header) |
 * | `x-messaging.version` | a handler of `@Consume({ version, upcast })`: the version it takes and those it upcasts (`upcastFrom`); a `@Producer({ version })`'s (`versions`) |
 * | reply                 | a handler that returns a class (request/reply): on its `receive` operation, and on the `send` operations of its channel (`request()` waits for it) |
 * | bindings              | the broker's (`asyncapi-bindings.ts`): RabbitMQ's by default           |
 * | tag                   | the service, on each of its operations                                 |
 */
import { MessagingHeaders } from '../backend/message-headers';
import { deadLetterQueueName } from '../backend/queue-names';
import type { ResolvedRetryPolicy } from '../retry/retry-policy';
import type { Route } from '../server/route';
import { type AsyncApiBroker, type BrokerBindings, brokerBindings } from './asyncapi-bindings';
import { camelId, type Channel, ChannelTable, compare, type MessageRef } from './asyncapi-channels';
import type { JsonSchema, MessagePayload } from './payload-schema';

/** What the document says about the system besides its channels and operations. */
export interface AsyncApiDocumentOptions {
  readonly title: string;
  readonly version: string;
  readonly description?: string;
  /**
   * The broker whose bindings the document carries, with the names its backend was given.
   * `asyncApiDocument()` takes the kind from the apps' backend when they run on RabbitMQ, Redis or
   * NATS. @default { kind: 'amqp', exchange: this.exchange }
   */
  readonly broker?: AsyncApiBroker;
  /** The topic exchange named in the RabbitMQ bindings, when `broker` is not given. @default 'messaging' */
  readonly exchange?: string;
}

/** One `@Consume` handler, resolved as the server resolves it, with the types it takes and returns. */
export interface RouteDescription extends Pick<
  Route,
  'name' | 'spec' | 'retry' | 'deadLetter' | 'idempotent' | 'batch'
> {
  /** The connection it consumes on. @default 'default' */
  readonly connection?: string;
  /** One message of an `orderingKey` at a time (`@Consume(..., { ordered: true })`). */
  readonly ordered?: boolean;
  /** The `@Payload()` type; `undefined` when it names no class (an interface, `any`). */
  readonly payload?: MessagePayload;
  /** The reply to a request, when the handler returns a class. */
  readonly reply?: MessagePayload;
  /** The message version it takes (`@Consume({ version })`), if it has one. */
  readonly version?: number;
  /** The older versions it upcasts to `version` (`upcast`'s keys), lowest first. */
  readonly upcastFrom?: readonly number[];
}

/** One `@Producer` injection: which class of which service sends where. */
export interface ProducerDescription {
  readonly service: string;
  /** The class it is injected into. */
  readonly owner: string;
  readonly topic?: string;
  readonly queue?: string;
  readonly allowUnroutable: boolean;
  readonly payload?: MessagePayload;
  /** The connection it publishes on. @default 'default' */
  readonly connection?: string;
  /** The version of the messages it sends (`@Producer({ version })`), if it has one. */
  readonly version?: number;
}

/** Everything the document is built from. */
export interface MessagingDescription {
  readonly routes: readonly RouteDescription[];
  readonly producers: readonly ProducerDescription[];
  /** The schemas the payloads' `$ref`s point to, by name. */
  readonly schemas: Readonly<Record<string, JsonSchema>>;
}

/** An AsyncAPI 3.0 document as a plain object, ready for `JSON.stringify` or a YAML writer. */
export type AsyncApiDocument = Record<string, unknown>;

/** Builds the document (see the file's table). */
export function buildAsyncApiDocument(
  options: AsyncApiDocumentOptions,
  system: MessagingDescription,
): AsyncApiDocument {
  const table = new ChannelTable();
  const routeChannel = (r: RouteDescription) =>
    r.spec.external ? table.get('queue', r.spec.queue) : table.get('topic', r.spec.topics[0]);
  const replyChannel = (r: RouteDescription) =>
    r.reply ? table.get('reply', routeChannel(r).name) : undefined;
  const producerChannel = (p: ProducerDescription) =>
    p.queue !== undefined ? table.get('queue', p.queue) : table.get('topic', p.topic ?? '');
  // The replies answered on each channel: what a request() to it waits for.
  const replies = new Map<Channel, Channel>();
  for (const route of system.routes) {
    const c = table.addPayload(routeChannel(route), route.payload, route.version);
    c.receivers.add(route.spec.service);
    for (const older of route.upcastFrom ?? []) table.addPayload(c, undefined, older);
    const reply = replyChannel(route);
    if (reply) replies.set(routeChannel(route), table.addPayload(reply, route.reply));
  }
  for (const producer of system.producers) {
    const c = table.addPayload(producerChannel(producer), producer.payload, producer.version);
    c.senders.add(producer.service);
  }
  table.seal();
  const bindings = brokerBindings(options.broker ?? { kind: 'amqp', exchange: options.exchange });
  const replyOf = (reply: Channel, messages: MessageRef[]) => ({
    address: { location: '$message.header#/replyTo', description: bindings.replyTo },
    channel: { $ref: `#/channels/${reply.id}` },
    messages,
  });

  const operations: Record<string, unknown> = {};
  const add = (id: string, operation: unknown) => {
    let unique = id;
    for (let n = 2; Object.hasOwn(operations, unique); n++) unique = `${id}${n}`;
    operations[unique] = operation;
  };
  const receiveIds = operationIds(system.routes);
  system.routes.forEach((route, i) => {
    const reply = replyChannel(route);
    const receive = receiveOperation(table, route, routeChannel(route), bindings);
    add(receiveIds[i], {
      ...receive,
      ...(reply && { reply: replyOf(reply, table.messageRefs(reply, route.reply)) }),
    });
  });
  for (const [id, group] of producerGroups(system.producers, producerChannel)) {
    const c = producerChannel(group[0]);
    const reply = replies.get(c);
    add(id, {
      ...sendOperation(table, group, c, bindings, reply !== undefined),
      ...(reply && { reply: replyOf(reply, table.messageRefs(reply, undefined)) }),
    });
  }
  const services = new Set([
    ...system.routes.map((r) => r.spec.service),
    ...system.producers.map((p) => p.service),
  ]);
  return {
    asyncapi: '3.0.0',
    info: {
      title: options.title,
      version: options.version,
      ...(options.description !== undefined ? { description: options.description } : {}),
      tags: [...services]
        .sort(compare)
        .map((name) => ({ name, description: `Operations of ${name}` })),
    },
    defaultContentType: 'application/json',
    channels: table.channelObjects(bindings),
    operations: sortedRecord(operations),
    components: { messages: table.messageObjects(), schemas: sortedRecord(system.schemas) },
  };
}

/** `<service>.<method>`, or `<service>.<Class>.<method>` where two handlers share a method name. */
function operationIds(routes: readonly RouteDescription[]): string[] {
  const short = routes.map((r) => `${camelId(r.spec.service)}.${r.name.split('.').pop() ?? ''}`);
  return routes.map((r, i) =>
    short.indexOf(short[i]) === short.lastIndexOf(short[i])
      ? short[i]
      : `${camelId(r.spec.service)}.${r.name}`,
  );
}

function receiveOperation(
  table: ChannelTable,
  route: RouteDescription,
  c: Channel,
  bindings: BrokerBindings,
) {
  const { spec, retry } = route;
  const dlq = route.deadLetter ? deadLetterQueueName(spec.service) : null;
  const from = spec.external ? '' : ` (bound to \`${spec.topics[0]}\`)`;
  const once =
    (route.idempotent ? ' Idempotent: each message id is handled once.' : '') +
    (route.ordered
      ? ' Ordered: the messages of one orderingKey are handled one at a time, in publish order.'
      : '');
  const then = dlq
    ? `the message goes to the dead-letter queue \`${dlq}\` (at once for an invalid payload or an UnrecoverableError).`
    : 'the message is dropped (no dead-letter queue).';
  const failure = `${describeRetry(retry)}${then}`;
  const request = route.reply ? ' A request is never retried: its caller gets the error.' : '';
  const { version, upcastFrom = [] } = route;
  const versions =
    version === undefined
      ? undefined
      : {
          text:
            ` Takes version ${version} of the message (header \`${MessagingHeaders.VERSION}\`, none = 1)` +
            (upcastFrom.length > 0 ? `, and version ${upcastFrom.join(', ')} upcast to it` : '') +
            '; any other version fails at once, without retries.',
          extension: { version, upcastFrom: [...upcastFrom] },
        };
  const batch = route.batch && {
    text: ` Consumed in batches of up to ${route.batch.size} messages (waiting at most ${route.batch.maxWaitMs} ms for them); each message is acknowledged, retried or dead-lettered on its own.`,
    extension: { 'x-batch': { size: route.batch.size, maxWaitMs: route.batch.maxWaitMs } },
  };
  return {
    action: 'receive',
    channel: { $ref: `#/channels/${c.id}` },
    messages: table.messageRefs(
      c,
      route.payload,
      version === undefined ? undefined : [version, ...upcastFrom],
    ),
    summary: `${route.name} handles ${spec.external ? 'queue' : 'topic'} ${c.name}`,
    description: `\`${route.name}\` consumes queue \`${spec.queue}\`${from}.${once}${batch?.text ?? ''}${versions ? versions.text : ''} ${failure}${request}`,
    tags: [{ name: spec.service }],
    ...bindings.receive(),
    'x-messaging': {
      service: spec.service,
      handler: route.name,
      queue: spec.queue,
      concurrency: spec.concurrency,
      idempotent: route.idempotent,
      retry:
        retry === false ? false : { maxAttempts: retry.maxAttempts, backoff: { ...retry.backoff } },
      deadLetterQueue: dlq,
      ...(route.ordered ? { ordered: true, orderedBy: 'orderingKey' } : {}),
      ...versions?.extension,
      ...onConnection(route.connection),
    },
    ...batch?.extension,
  };
}

/** How a failure is retried, up to what comes after the last attempt. */
function describeRetry(retry: ResolvedRetryPolicy | false): string {
  if (retry === false) return 'A failure is not retried: ';
  const { initialDelayMs, multiplier, maxDelayMs, jitter } = retry.backoff;
  return (
    `A failure is retried, up to ${retry.maxAttempts} attempts in all, the first after ` +
    `${initialDelayMs} ms, each wait ${multiplier} times the one before (at most ${maxDelayMs} ms, ` +
    `plus up to ${Math.round(jitter * 100)}% jitter); then `
  );
}

/** Producers by operation id `<service>.send<Channel>`: one operation per service and channel. */
function producerGroups(
  producers: readonly ProducerDescription[],
  channelOf: (p: ProducerDescription) => Channel,
): Map<string, ProducerDescription[]> {
  const groups = new Map<string, ProducerDescription[]>();
  for (const p of producers) {
    const c = channelOf(p);
    const on =
      p.connection === undefined || p.connection === 'default' ? '' : `.${camelId(p.connection)}`;
    const id = `${camelId(p.service)}${on}.send${c.id[0].toUpperCase()}${c.id.slice(1)}`;
    groups.set(id, [...(groups.get(id) ?? []), p]);
  }
  return groups;
}

function sendOperation(
  table: ChannelTable,
  group: readonly ProducerDescription[],
  c: Channel,
  bindings: BrokerBindings,
  answered: boolean,
) {
  const { service } = group[0];
  const owners = [...new Set(group.map((p) => p.owner))].sort(compare);
  const mandatory = !group.every((p) => p.allowUnroutable);
  const payload = group.find((p) => p.payload)?.payload;
  // The versions it sends, when each of its producers has one (else whatever the channel carries).
  const versions = group.every((p) => p.version !== undefined)
    ? [...new Set(group.map((p) => p.version as number))].sort((a, b) => a - b)
    : undefined;
  const unroutable = mandatory
    ? ' It rejects with UnroutableError when no queue receives the message.'
    : ' A message no queue receives is accepted (allowUnroutable).';
  return {
    action: 'send',
    channel: { $ref: `#/channels/${c.id}` },
    messages: table.messageRefs(c, payload, versions),
    summary: `${service} publishes to ${c.kind === 'queue' ? 'queue' : 'topic'} ${c.name}`,
    description:
      `Published through \`@Producer\` in ${owners.map((o) => `\`${o}\``).join(', ')}: ` +
      `\`publish()\` resolves once the broker has confirmed the message.${unroutable}` +
      (answered ? ' A handler of it answers: `request()` resolves with its reply.' : ''),
    tags: [{ name: service }],
    ...bindings.send(mandatory),
    'x-messaging': {
      service,
      producers: owners,
      allowUnroutable: !mandatory,
      ...(versions && { versions }),
      ...onConnection(group[0].connection),
    },
  };
}

/** `x-messaging.connection`, for an operation on a connection other than the default one. */
function onConnection(connection: string | undefined): { connection?: string } {
  return connection === undefined || connection === 'default' ? {} : { connection };
}

function sortedRecord<T>(record: Readonly<Record<string, T>>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => compare(a, b)));
}
