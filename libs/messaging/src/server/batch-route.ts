import type { Type } from '@nestjs/common';
import type { ConsumeDefinition } from '../decorators/consume.decorator';
import { MessagingConfigError } from '../errors/messaging.errors';
import { BatchItemPipes } from './batch-items';

/**
 * The most deliveries one batch route may hold unacknowledged (`size` × `concurrency`): AMQP's
 * prefetch is a 16-bit number.
 */
export const MAX_BATCH_IN_FLIGHT = 65_535;

/** `@Consume({ batch })`, resolved. */
export interface ResolvedBatch {
  readonly size: number;
  readonly maxWaitMs: number;
  /** The class of one payload, if given (`batch.itemType`). */
  readonly itemType?: Type;
  /** What each item goes through before the handler sees it, if anything. */
  readonly pipes?: BatchItemPipes;
}

/**
 * The batch of a handler, or undefined. Its backend subscription must let `size` deliveries in per
 * batch the handler may run at once (`concurrency`), or a batch could never fill.
 */
export function resolveBatch(
  definition: ConsumeDefinition,
  concurrency: number,
  where: string,
): ResolvedBatch | undefined {
  const batch = definition.options.batch;
  if (!batch) return undefined;
  const inFlight = batch.size * concurrency;
  if (inFlight > MAX_BATCH_IN_FLIGHT) {
    throw new MessagingConfigError(
      `${where}: batch.size × concurrency = ${batch.size} × ${concurrency} = ${inFlight} messages in flight, ` +
        `over ${MAX_BATCH_IN_FLIGHT}; lower concurrency (batches run at once) or batch.size`,
    );
  }
  const pipes = BatchItemPipes.of(definition, batch);
  const { size, maxWaitMs, itemType } = batch;
  return { size, maxWaitMs, ...(itemType && { itemType }), ...(pipes && { pipes }) };
}
