import type { Logger } from '@nestjs/common';
import type { MessageHandler } from '@nestjs/microservices';
import type { BrokerBackend } from '../backend/broker-backend.interface';
import type { MessageCodec } from '../codec/message-codec';
import type { MessagingInstruments } from '../observability/messaging-metrics';
import type { MessagingTracer } from '../observability/messaging-tracer';
import type { ResolvedMessagingOptions } from '../options/messaging-options';
import { Inbox } from '../store/inbox';
import { checkConnections, type MessagingConnection, pickConnection } from './messaging-connection';
import { buildRoutes, type Route } from './route';
import { Settlements } from './settlements';

/** What the server consumes one connection with. */
export interface Consuming {
  readonly options: ResolvedMessagingOptions;
  readonly backend: BrokerBackend;
  readonly codec: MessageCodec;
  readonly settlements: Settlements;
  readonly inbox: Inbox;
  readonly tracer: MessagingTracer;
}

/** A route with the connection it consumes on. */
export interface ServedRoute extends Route {
  readonly via: Consuming;
}

/** What consuming one connection takes: its settlements (its codec) and its inbox (its store). */
export function consumingOf(
  connection: Pick<MessagingConnection, 'options' | 'backend' | 'codec' | 'store' | 'tracer'>,
  logger: Logger,
  instruments: MessagingInstruments,
): Consuming {
  const { options, backend, codec, store, tracer } = connection;
  return {
    options,
    backend,
    codec,
    settlements: new Settlements(codec, logger),
    inbox: new Inbox(store, backend, options.service, options.inbox.ttlMs, instruments),
    tracer,
  };
}

/**
 * Every handler's route, each with the connection it consumes on: `home` (the server's own, the
 * default) or one of `connections`, consumed with what `consumingOf` makes for it. Throws a
 * `MessagingConfigError` for connections that are wrong together, or a route's unknown connection.
 */
export function serveRoutes(
  handlers: Map<string, MessageHandler>,
  home: Consuming,
  connections: readonly MessagingConnection[],
  consuming: (connection: MessagingConnection) => Consuming,
): ServedRoute[] {
  // Also checked at init; the server may start first (startAllMicroservices before init).
  checkConnections(connections);
  const byName = new Map<string, Consuming>([[home.options.name, home]]);
  const viaOf = (name: string, where: string): Consuming => {
    let via = byName.get(name);
    if (!via) {
      via = consuming(pickConnection(connections, name, where));
      byName.set(name, via);
    }
    return via;
  };
  return buildRoutes(handlers, (name, where) => viaOf(name, where).options).map((route) => ({
    ...route,
    via: viaOf(route.connection, route.name),
  }));
}
