/**
 * Message versions: what a handler that takes version N of a message (`@Consume(topic, { version: N,
 * upcast })`) does with one, by the version it was sent as (its `x-messaging-version` header, stamped
 * by `@Producer({ version })` or `publish(..., { version })`; a message without it is version 1).
 * Decided here, in one pure function; the server runs {@link MessageVersions.upcast} after decoding
 * and before the handler's pipes, so a `ValidationPipe` sees the upcast payload.
 *
 * | sent as (`x-messaging-version`) | handler: `version`, `upcast` keys | outcome                                        |
 * | ------------------------------- | --------------------------------- | ---------------------------------------------- |
 * | absent, `1` or `"1"`            | 1, none                           | as is                                          |
 * | 3 (or `"3"`: NATS, other clients) | 3                               | as is                                          |
 * | absent (1)                      | 3, `{ 1, 2 }`                     | `upcast[1]`, then `upcast[2]`: version 3       |
 * | 2                               | 3, `{ 1, 2 }`                     | `upcast[2]`                                    |
 * | 1                               | 3, `{ 2 }`                        | dead letter, `unrecoverable`: no `upcast[1]`   |
 * | 4                               | 3                                 | dead letter, `unrecoverable`: deploy a handler of version 4, then replay it |
 * | `"abc"`, `0`, `2.5`, `true`     | any                               | dead letter, `malformed`                       |
 *
 * `upcast[n]` turns version n into n + 1 (it may be async, and gets the message's context). A handler
 * without `version` never reads the header: versions cost nothing where they are not used. At
 * start-up, `upcast`'s keys must be versions below `version` with no gap up to `version - 1` (an
 * upcaster that no chain reaches is a mistake); a gap at the bottom is a choice: the versions below
 * it are no longer taken.
 */
import type { MessageHandler } from '@nestjs/microservices';
import { MAX_MESSAGE_VERSION, MessagingHeaders, versionOf } from '../backend/message-headers';
import { checkInteger } from '../errors/config-checks';
import {
  MalformedMessageError,
  MessagingConfigError,
  UnrecoverableError,
} from '../errors/messaging.errors';
import type { MessageContext } from '../context/message-context';

/**
 * Turns the payload of version n of a message into that of version n + 1; may be async. It gets the
 * message's context (headers, message id) too. A throw fails the message as the handler's would.
 */
export type Upcaster = (payload: any, ctx: MessageContext) => unknown;

/**
 * The upcasters of a handler, by the version each takes: `{ 1: (v1) => v2, 2: (v2) => v3 }` for a
 * handler of version 3 that takes versions 1 and 2 too.
 */
export type Upcasters = Readonly<Record<number, Upcaster>>;

/** What a handler of versions does with one message (see the file's table). */
export type VersionPlan =
  /** The message is of the handler's version: the payload as it is. */
  | { readonly action: 'take'; readonly sent: number }
  /** An older version: `upcast[sent]`, ..., `upcast[version - 1]`, in turn. */
  | { readonly action: 'upcast'; readonly sent: number }
  /** Not taken: dead-lettered with this error (no retry can change it). */
  | { readonly action: 'refuse'; readonly error: MalformedMessageError | UnrecoverableError };

/** A handler's versions: the one it takes, and the lowest its upcasters reach it from. */
export interface HandlerVersion {
  readonly version: number;
  /** The lowest version taken (`version` when it has no upcasters). */
  readonly lowest: number;
}

/** The one decision: what a handler of `handler`'s version does with a message of `headers`. */
export function planVersion(
  headers: Readonly<Record<string, unknown>>,
  handler: HandlerVersion,
  where: string,
): VersionPlan {
  const sent = versionOf(headers);
  const { version, lowest } = handler;
  if (sent === undefined) {
    const value = JSON.stringify(headers[MessagingHeaders.VERSION]) ?? 'undefined';
    return refuse(
      new MalformedMessageError(
        `header ${MessagingHeaders.VERSION} is ${value}, not a version (a whole number from 1 to ${MAX_MESSAGE_VERSION}): ${where} cannot read the message`,
      ),
    );
  }
  if (sent === version) return { action: 'take', sent };
  if (sent > version) {
    return refuse(
      new UnrecoverableError(
        `the message is version ${sent}, newer than the version ${version} ${where} takes: ` +
          `deploy a handler that takes version ${sent} (@Consume(topic, { version: ${sent} })), then replay the dead letter`,
      ),
    );
  }
  if (sent < lowest) {
    return refuse(
      new UnrecoverableError(
        `the message is version ${sent} and ${where} takes versions ${lowest} to ${version}: no upcaster ` +
          `turns version ${sent} into ${sent + 1}; add upcast: { ${sent}: (payload) => ... } ` +
          `(and each version up to ${lowest - 1}), then replay the dead letter`,
      ),
    );
  }
  return { action: 'upcast', sent };
}

function refuse(error: MalformedMessageError | UnrecoverableError): VersionPlan {
  return { action: 'refuse', error };
}

/**
 * The versions of one `@Consume` handler, resolved: upcasts each message to the handler's version.
 * Made only for a handler with `version`.
 */
export class MessageVersions implements HandlerVersion {
  readonly lowest: number;

  private constructor(
    readonly version: number,
    /** `steps[n]` turns version n into n + 1. */
    private readonly steps: readonly (Upcaster | undefined)[],
    private readonly where: string,
  ) {
    let lowest = version;
    while (lowest > 1 && steps[lowest - 1]) lowest--;
    this.lowest = lowest;
  }

  /** The versions of a handler (`where` names it: `@Consume on A.b`), or undefined without `version`. */
  static of(
    options: { readonly version?: number; readonly upcast?: Upcasters },
    where: string,
  ): MessageVersions | undefined {
    if (options.version === undefined) return undefined;
    const steps: (Upcaster | undefined)[] = [];
    for (const [key, upcaster] of Object.entries(options.upcast ?? {}))
      steps[Number(key)] = upcaster;
    return new MessageVersions(options.version, steps, where);
  }

  /** The older versions the handler takes too, lowest first. */
  get upcastFrom(): number[] {
    return Array.from({ length: this.version - this.lowest }, (_, i) => this.lowest + i);
  }

  /**
   * The payload of the handler's version: `payload` itself when the message is of it (no promise),
   * else a promise of the upcast one. Throws the refusal (malformed, too new, no upcaster).
   */
  upcast(payload: unknown, ctx: MessageContext): unknown {
    const plan = planVersion(ctx.headers, this, this.where);
    if (plan.action === 'take') return payload;
    if (plan.action === 'refuse') throw plan.error;
    return this.chain(payload, ctx, plan.sent);
  }

  /**
   * `handler` behind the upcasters: what the server calls for one message of a versioned handler,
   * inside Nest's processing hooks and the message's trace, before the handler's pipes. It keeps
   * the handler's Nest properties (`extras`: the `@Consume` definition).
   */
  wrap(handler: MessageHandler): MessageHandler {
    const upcasting = (payload: unknown, ctx: MessageContext) => {
      const taken = this.upcast(payload, ctx);
      return taken instanceof Promise
        ? taken.then((upcast) => handler(upcast, ctx))
        : handler(taken, ctx);
    };
    return Object.assign(upcasting, {
      extras: handler.extras,
      isEventHandler: handler.isEventHandler,
    }) as MessageHandler;
  }

  private async chain(payload: unknown, ctx: MessageContext, sent: number): Promise<unknown> {
    let value = payload;
    for (let n = sent; n < this.version; n++) value = await (this.steps[n] as Upcaster)(value, ctx);
    return value;
  }
}

/** Checks `version` and `upcast` of one `@Consume` (`where`), so a mistake fails where it is written. */
export function checkVersionOptions(version: unknown, upcast: unknown, where: string): void {
  checkVersion(version, `${where}: version`);
  if (upcast === undefined) return;
  if (version === undefined) {
    throw new MessagingConfigError(
      `${where}: upcast needs version, the version the handler takes: { version: 2, upcast: { 1: (v1) => v2 } }`,
    );
  }
  const top = version as number;
  if (upcast === null || typeof upcast !== 'object' || Array.isArray(upcast)) {
    throw new MessagingConfigError(
      `${where}: upcast must be an object of upcasters by the version each takes, e.g. { 1: (v1) => v2 }, got ${upcast === null ? 'null' : Array.isArray(upcast) ? 'an array' : typeof upcast}`,
    );
  }
  const keys: number[] = [];
  for (const [key, upcaster] of Object.entries(upcast)) {
    const n = /^[1-9]\d*$/.test(key) ? Number(key) : NaN;
    if (!(n < top)) {
      throw new MessagingConfigError(
        `${where}: upcast has key '${key}', not a version below ${top}: upcast[n] turns version n into n + 1, ` +
          `so its keys are versions 1 to ${top - 1} (raise version to take newer ones)`,
      );
    }
    if (typeof upcaster !== 'function') {
      throw new MessagingConfigError(
        `${where}: upcast[${n}] must be a function (payload, ctx) => the payload of version ${n + 1}, got ${typeof upcaster}`,
      );
    }
    keys.push(n);
  }
  const gap = keys.length > 0 ? missingStep(keys, top) : undefined;
  if (gap !== undefined) {
    throw new MessagingConfigError(
      `${where}: upcast has no ${gap}, so a message of version ${gap} or below never reaches version ${top}: ` +
        `add upcast[${gap}] (turns version ${gap} into ${gap + 1}), or drop the upcasters below it`,
    );
  }
}

/** The first version in `min(keys)..top-1` without an upcaster. */
function missingStep(keys: readonly number[], top: number): number | undefined {
  for (let n = Math.min(...keys); n < top; n++) if (!keys.includes(n)) return n;
  return undefined;
}

/** A message version (`@Producer({ version })`, `publish(..., { version })`, `@Consume`'s). */
export function checkVersion(version: unknown, where: string): void {
  if (version !== undefined) checkInteger(version, 1, where, 1, MAX_MESSAGE_VERSION);
}

/**
 * `headers` with `x-messaging-version: version`; the same object when there is no version to stamp,
 * so a producer without one pays nothing.
 */
export function withVersion<H extends Readonly<Record<string, unknown>>>(
  headers: H,
  version: number | undefined,
  where: string,
): H {
  if (version === undefined) return headers;
  checkVersion(version, where);
  return { ...headers, [MessagingHeaders.VERSION]: version };
}
