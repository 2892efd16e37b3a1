/**
 * `GET api/overview`, made from what the library already knows: the connections' backends, the
 * server's handlers, the health check, the dashboard's counters, the outbox relay.
 *
 * | field of a handler | from                                                                          |
 * | ------------------ | ----------------------------------------------------------------------------- |
 * | `state`            | circuit `open`/`half-open` first, then `paused`, then the health check's consumer (`attached`); a backend that reports no consumers (memory) counts as attached while connected |
 * | `topic`            | its topic patterns, comma-separated; none for `@Consume({ queue })`           |
 * | counters           | {@link DashboardCounters}, since the dashboard started                        |
 *
 * A connection's `health` is its own (the health check's top level is the default connection's,
 * made `down` by any other connection; here each says only its own).
 */
import type { HandlerHealth, MessagingHealth } from '../health/messaging-health.service';
import type { MessagingConnection } from '../server/messaging-connection';
import { DEFAULT_CONNECTION } from '../options/messaging-options';
import type { ServerHandler } from '../server/handler-holds';
import type { OutboxState } from '../store/outbox-relay';
import type { DashboardConnection, DashboardHandler, DashboardOverview } from './dashboard-api';
import type { HandlerCounts } from './dashboard-counters';

/** What an overview is made of. */
export interface OverviewParts {
  readonly service: string;
  readonly readOnly: boolean;
  readonly now: Date;
  readonly connections: readonly MessagingConnection[];
  readonly handlers: readonly ServerHandler[];
  readonly health?: MessagingHealth;
  readonly counts: (handler: string) => HandlerCounts;
  /** The outbox relay's state, when the app uses an outbox (a `store`, or a backlog). */
  readonly outbox?: OutboxState;
  readonly deadLetters: DashboardOverview['deadLetters'];
}

export function buildOverview(parts: OverviewParts): DashboardOverview {
  const { connections, health } = parts;
  const shown = new Set(connections.map((c) => c.name));
  const consumers = new Map<string, HandlerHealth>();
  for (const name of shown) {
    for (const h of healthOf(health, name)?.handlers ?? []) consumers.set(h.handler, h);
  }
  const connected = new Map(connections.map((c) => [c.name, c.backend.status === 'connected']));
  return {
    service: parts.service,
    generatedAt: parts.now.toISOString(),
    readOnly: parts.readOnly,
    connections: connections.map((c) => connectionOf(c, health)),
    handlers: parts.handlers
      .filter((h) => shown.has(h.connection))
      .map((h) =>
        handlerOf(h, consumers.get(h.handler), connected.get(h.connection) ?? false, parts),
      ),
    ...(parts.outbox && {
      outbox: {
        backlog: parts.outbox.pending,
        ...(parts.outbox.lastError !== undefined && { lastError: parts.outbox.lastError }),
      },
    }),
    deadLetters: parts.deadLetters,
  };
}

function healthOf(health: MessagingHealth | undefined, name: string) {
  if (!health) return undefined;
  return name === DEFAULT_CONNECTION ? health : health.connections?.[name];
}

function connectionOf(
  connection: MessagingConnection,
  health: MessagingHealth | undefined,
): DashboardConnection {
  const { backend } = connection;
  const own = healthOf(health, connection.name);
  const consumersUp = !own?.consumers?.some((c) => !c.attached && c.detachedSince !== undefined);
  // The top level's status also counts the other connections: judge the default one by its own.
  const up =
    own && !(connection.name === DEFAULT_CONNECTION && health?.connections)
      ? own.status === 'up'
      : backend.status === 'connected' && consumersUp;
  return {
    name: connection.name,
    backend: backend.name,
    status: backend.status,
    health: up ? 'up' : 'down',
    ...(backend.blocked !== undefined && { blocked: backend.blocked }),
  };
}

function handlerOf(
  handler: ServerHandler,
  consumer: HandlerHealth | undefined,
  connected: boolean,
  parts: OverviewParts,
): DashboardHandler {
  return {
    name: handler.handler,
    ...(handler.topics.length > 0 && { topic: handler.topics.join(', ') }),
    queue: handler.queue,
    connection: handler.connection,
    concurrency: handler.concurrency,
    state: stateOf(handler, consumer ? consumer.attached : connected),
    ...parts.counts(handler.handler),
  };
}

function stateOf(handler: ServerHandler, attached: boolean): DashboardHandler['state'] {
  if (handler.circuit === 'open') return 'circuit-open';
  if (handler.circuit === 'half-open') return 'circuit-half-open';
  if (handler.paused) return 'paused';
  return attached ? 'attached' : 'detached';
}
