import type { Delivery, Settlement } from '../backend/broker-backend.interface';
import type { FailureReason } from '../errors/failure';
import type { ConsumeOutcome, MessagingInstruments } from '../observability/messaging-metrics';
import type { CircuitVerdict } from '../retry/circuit-breaker';

/** How a delivery was settled: how `consumed_total` counts it, and what its circuit breaker hears. */
export interface Outcome {
  value: ConsumeOutcome;
  /** How a throw is classified (`classifyFailure`), when the handler or decoding threw. */
  threw?: FailureReason;
}

/** What a settled delivery says of its handler's health, for its circuit breaker. */
export function verdictOf(outcome: Outcome): CircuitVerdict {
  if (outcome.threw !== undefined) return outcome.threw === 'handler-error' ? 'failed' : 'none';
  return outcome.value === 'ack' ? 'ok' : 'none';
}

/** `settle()` of a delivery of `handler`, counted and timed for the metrics (from its handler's turn). */
export async function measured(
  instruments: MessagingInstruments,
  handler: string,
  delivery: Delivery,
  outcome: Outcome,
  settle: () => Promise<Settlement>,
): Promise<Settlement> {
  const started = performance.now();
  instruments.running(handler, 1);
  try {
    const settlement = await settle();
    const seconds = (performance.now() - started) / 1000;
    const reason = settlement.action === 'dead-letter' ? settlement.failure.reason : undefined;
    instruments.settled(
      { handler, topic: delivery.topic, redelivered: delivery.redelivered },
      outcome.value,
      seconds,
      reason,
    );
    return settlement;
  } finally {
    instruments.running(handler, -1);
  }
}
