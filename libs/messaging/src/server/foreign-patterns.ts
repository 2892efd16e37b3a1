/**
 * Refuses, when `MessagingServer` starts, the `@EventPattern` / `@MessagePattern` handlers that Nest
 * binds to it: the server consumes only `@Consume` routes, so such a handler would never be called,
 * and its messages would pile up unconsumed without a word.
 *
 * Which handlers Nest binds to a server (`ListenersController.registerPatternHandlers`):
 *
 * | the decorator's `transport`          | bound to this server | here                                     |
 * | ------------------------------------ | -------------------- | ---------------------------------------- |
 * | ours (`MESSAGING_TRANSPORT`)         | yes                  | refused (unless it is `@Consume`'s own)  |
 * | none (`@EventPattern('a')`)          | yes, and to every    | refused when the app runs no other Nest  |
 * |                                      | other transport      | transport; else it is that one's handler |
 * | another (`Transport.TCP`, a symbol)  | no                   | left alone                               |
 */
import type { InstanceWrapper } from '@nestjs/core/injector/instance-wrapper';
import { MetadataScanner } from '@nestjs/core';
import {
  PATTERN_EXTRAS_METADATA,
  PATTERN_HANDLER_METADATA,
  PATTERN_METADATA,
  TRANSPORT_METADATA,
} from '@nestjs/microservices/constants';
import { PatternHandler } from '@nestjs/microservices/enums/pattern-handler.enum';
import { MessagingConfigError } from '../errors/messaging.errors';
import { CONSUME_METADATA } from '../messaging.constants';

/** One pattern handler of a controller: its metadata as Nest's decorators wrote it. */
interface PatternMethod {
  readonly name: string;
  readonly decorator: '@EventPattern' | '@MessagePattern';
  readonly patterns: readonly unknown[];
  readonly transport: unknown;
}

/** What Nest keeps its servers in (`ModulesContainer.getRpcTargetRegistry()`): it replays them all. */
export interface RpcTargets {
  subscribe(next: (target: unknown) => void): { unsubscribe(): void };
}

/**
 * Throws a `MessagingConfigError` naming each `@EventPattern` / `@MessagePattern` handler of
 * `controllers` that Nest binds to `server` (see the table above), with `@Consume` as the fix.
 * `targets`: Nest's servers, to tell whether the app runs another transport beside `server`.
 */
export function refuseForeignPatterns(
  controllers: readonly InstanceWrapper[],
  server: { readonly transportId?: unknown },
  targets?: RpcTargets,
): void {
  const others = targets !== undefined && hasOtherTransports(targets, server);
  const refused = controllers
    .flatMap(patternMethodsOf)
    .filter((m) => m.transport === server.transportId || (m.transport === undefined && !others));
  if (refused.length === 0) return;
  throw new MessagingConfigError(refused.map(describe).join('\n'));
}

/** Whether Nest has another server than `server` (`connectMicroservice` adds each one). */
function hasOtherTransports(targets: RpcTargets, server: unknown): boolean {
  // Every server connected so far arrives within subscribe().
  let others = false;
  targets
    .subscribe((target) => {
      if (target !== server) others = true;
    })
    .unsubscribe();
  return others;
}

const scanner = new MetadataScanner();

/** The methods of `wrapper`'s class that carry a Nest pattern other than `@Consume`'s. */
function patternMethodsOf(wrapper: InstanceWrapper): PatternMethod[] {
  const type = wrapper.metatype as (new (...args: unknown[]) => unknown) | undefined;
  if (typeof type !== 'function' || !type.prototype) return [];
  const prototype = type.prototype as Record<string, object>;
  return scanner.getAllMethodNames(prototype).flatMap((name) => {
    const method = prototype[name];
    const kind: unknown = Reflect.getMetadata(PATTERN_HANDLER_METADATA, method);
    if (kind === undefined) return [];
    if (Reflect.getMetadata(PATTERN_EXTRAS_METADATA, method)?.[CONSUME_METADATA]) return [];
    return [
      {
        name: `${type.name}.${name}`,
        decorator: kind === PatternHandler.EVENT ? '@EventPattern' : '@MessagePattern',
        patterns: [].concat(Reflect.getMetadata(PATTERN_METADATA, method) ?? []),
        transport: Reflect.getMetadata(TRANSPORT_METADATA, method),
      },
    ];
  });
}

/** `OrdersController.onCreated has @EventPattern('order.created'), which ...: use @Consume(...)`. */
function describe(method: PatternMethod): string {
  const shown = method.patterns.map(show).join(', ');
  const topic = method.patterns.length === 1 ? method.patterns[0] : undefined;
  const fix = typeof topic === 'string' ? `@Consume('${topic}')` : `@Consume('<topic>')`;
  const other =
    method.transport === undefined
      ? ` (if it belongs to another Nest transport of this app, connect that one before starting, or name it: ${method.decorator}(${shown}, Transport.TCP))`
      : '';
  return (
    `${method.name} has ${method.decorator}(${shown}), which the nest-messaging transport never ` +
    `calls: use ${fix} instead${other}.`
  );
}

function show(pattern: unknown): string {
  return typeof pattern === 'string' ? `'${pattern}'` : JSON.stringify(pattern);
}
