import type { PipeTransform, Type } from '@nestjs/common';
import { checkInteger, checkOptionsObject } from '../errors/config-checks';
import { MessagingConfigError } from '../errors/messaging.errors';

/** The most items one batch may hold: a batch is held in memory, and every item is in flight. */
export const MAX_BATCH_SIZE = 10_000;
/** The longest a batch may wait for more items (1 min): longer, and messages sit unacknowledged. */
export const MAX_BATCH_WAIT_MS = 60_000;

/**
 * `@Consume(topic, { batch })`: the handler receives an array of 1..`size` payloads, in delivery
 * order, once `size` messages wait or `maxWaitMs` after the first of them arrived. See "Batch
 * consumption" in docs/concepts.md.
 */
export interface BatchOptions {
  /** The most payloads one call receives (1 to 10,000). */
  size: number;
  /** How long the first message of a batch waits for the others (0 to 60,000 ms). */
  maxWaitMs: number;
  /**
   * The class of one item, given to the `@Payload()` pipes when they run on each item (Nest's own
   * `@Payload() orders: Order[]` only says "an array"). An item its pipes reject is dead-lettered
   * alone, with the pipe's error as the reason; the handler gets the others.
   * @default none: the pipes run on each item with no metatype
   */
  itemType?: Type;
  /**
   * Pipes to run on each item, before the `@Payload()` parameter's own; for the pipes that
   * `app.useGlobalPipes()` gives every handler, which a batch handler cannot see per item.
   */
  itemPipes?: readonly PipeTransform[];
}

const BATCH_KEYS: readonly (keyof BatchOptions)[] = ['size', 'maxWaitMs', 'itemType', 'itemPipes'];

/** Checks `batch` of one `@Consume` where it is written, and what it cannot be combined with. */
export function checkBatchOptions(
  batch: unknown,
  consume: { idempotent?: boolean; ordered?: boolean; circuitBreaker?: unknown },
  where: string,
): void {
  if (batch === undefined) return;
  const at = `${where}: batch`;
  const options = checkOptionsObject(batch as BatchOptions, BATCH_KEYS, at) as BatchOptions;
  if (options.size === undefined || options.maxWaitMs === undefined) {
    throw new MessagingConfigError(
      `${at} needs both size and maxWaitMs, e.g. { batch: { size: 100, maxWaitMs: 50 } }`,
    );
  }
  checkInteger(options.size, 1, `${at}.size`, 1, MAX_BATCH_SIZE);
  checkInteger(options.maxWaitMs, 0, `${at}.maxWaitMs`, 0, MAX_BATCH_WAIT_MS);
  if (options.itemType !== undefined && typeof options.itemType !== 'function') {
    throw new MessagingConfigError(`${at}.itemType must be a class (the type of one payload)`);
  }
  const pipes = options.itemPipes;
  if (pipes !== undefined && (!Array.isArray(pipes) || !pipes.every(isPipe))) {
    throw new MessagingConfigError(
      `${at}.itemPipes must be an array of pipe instances (new ValidationPipe(...))`,
    );
  }
  if (consume.idempotent === true) {
    throw new MessagingConfigError(
      `${where}: idempotent runs one message per inbox transaction, a batch runs many at once; ` +
        'drop batch, or idempotent (and deduplicate by ctx.items[i].messageId in the handler)',
    );
  }
  if (consume.ordered === true) {
    throw new MessagingConfigError(
      `${where}: ordered and batch cannot be combined (a failed item would be retried after later ones); ` +
        'drop batch, or ordered',
    );
  }
  if (consume.circuitBreaker !== undefined) {
    throw new MessagingConfigError(
      `${where}: circuitBreaker and batch cannot be combined (a batch's failure is many messages' failure); ` +
        'drop circuitBreaker, or batch',
    );
  }
}

function isPipe(value: unknown): value is PipeTransform {
  return typeof (value as PipeTransform | null)?.transform === 'function';
}
