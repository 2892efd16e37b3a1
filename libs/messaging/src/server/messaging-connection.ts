import type { DiscoveryService } from '@nestjs/core';
import type { BrokerBackend } from '../backend/broker-backend.interface';
import type { MessageCodec } from '../codec/message-codec';
import { MessagingConfigError } from '../errors/messaging.errors';
import { connectionToken } from '../messaging.constants';
import { DEFAULT_CONNECTION, type ResolvedMessagingOptions } from '../options/messaging-options';
import type { MessagingPublisher } from '../producer/messaging.publisher';
import type { MessageStore } from '../store/message-store';
import type { MessagingTracer } from '../observability/messaging-tracer';

/**
 * One `MessagingModule.forRoot()`: a broker, the options its handlers and producers use, and the
 * publisher that sends on it. An app has the `'default'` one and one more per `forRoot({ name })`;
 * `@Consume(..., { connection })` and `@Producer({ connection })` pick one by name.
 */
export class MessagingConnection {
  constructor(
    readonly options: ResolvedMessagingOptions,
    readonly backend: BrokerBackend,
    readonly codec: MessageCodec,
    readonly store: MessageStore,
    readonly publisher: MessagingPublisher,
    readonly tracer: MessagingTracer,
  ) {}

  get name(): string {
    return this.options.name;
  }
}

export { connectionToken };

/** Every connection of the app (one per `forRoot()` it imports), found among its providers. */
export function connectionsOf(discovery: DiscoveryService): MessagingConnection[] {
  const found = new Set<MessagingConnection>();
  for (const { instance } of discovery.getProviders()) {
    if (instance instanceof MessagingConnection) found.add(instance);
  }
  return [...found];
}

/** The connection called `name`, or an error for `where` that says how to add it. */
export function pickConnection(
  connections: readonly MessagingConnection[],
  name: string,
  where: string,
): MessagingConnection {
  const connection = connections.find((c) => c.name === name);
  if (connection) return connection;
  throw new MessagingConfigError(
    `${where}: no connection '${name}'. Import MessagingModule.forRoot({ name: '${name}', backend, service }) ` +
      `in the root module, or use one of: ${connections.map((c) => `'${c.name}'`).join(', ') || 'none'}`,
  );
}

/**
 * Checks the app's connections at start-up: one per name, and the default one among them (it
 * provides `MessagingServer` and the producers). Two `forRoot()` without a name would otherwise
 * split the app silently: handlers on one broker, producers on the other.
 */
export function checkConnections(connections: readonly MessagingConnection[]): void {
  const seen = new Map<string, MessagingConnection>();
  for (const connection of connections) {
    const first = seen.get(connection.name);
    if (first) {
      const which =
        connection.name === DEFAULT_CONNECTION
          ? "without a name (both are the connection 'default')"
          : `with name '${connection.name}'`;
      throw new MessagingConfigError(
        `MessagingModule.forRoot() is imported twice ${which}: services '${first.options.service}' on ${first.backend.name} ` +
          `and '${connection.options.service}' on ${connection.backend.name}. Import it once per connection and give ` +
          `each other one a name: MessagingModule.forRoot({ name: 'events', backend, service }), then pick it with ` +
          `@Consume(topic, { connection: 'events' }) and @Producer({ topic, connection: 'events' })`,
      );
    }
    seen.set(connection.name, connection);
  }
  const stores = new Map<MessageStore, string>();
  for (const { name, store } of connections) {
    const other = store.durable ? stores.get(store) : undefined;
    if (other !== undefined) {
      throw new MessagingConfigError(
        `Connections '${other}' and '${name}' share one message store: its outbox would be relayed to one ` +
          `broker only. Give each connection a store of its own, in a schema of its own ` +
          `(new PostgresMessageStore({ ..., schema: 'messaging_${name}' }))`,
      );
    }
    stores.set(store, name);
  }
  if (connections.length > 0 && !seen.has(DEFAULT_CONNECTION)) {
    const named = connections.map((c) => `'${c.name}'`).join(', ');
    throw new MessagingConfigError(
      `MessagingModule.forRoot() is imported only with a name (${named}): import it once without a name ` +
        `too (the 'default' connection, which provides MessagingServer for the handlers of every connection), ` +
        `or drop the name of one of them`,
    );
  }
}
