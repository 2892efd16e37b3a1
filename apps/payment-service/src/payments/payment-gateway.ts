import { randomUUID } from 'node:crypto';

/** The card was refused for a business reason: final, never retried. */
export class PaymentDeclinedError extends Error {
  override readonly name = 'PaymentDeclinedError';
}

/** The gateway could not answer (timeout, 5xx): worth retrying. */
export class GatewayUnavailableError extends Error {
  override readonly name = 'GatewayUnavailableError';
}

/** One charge request. `attempt` is the delivery attempt, which the simulation keys flakiness on. */
export interface ChargeRequest {
  readonly orderId: string;
  readonly amount: number;
  readonly cardToken: string;
  readonly attempt: number;
}

export interface ChargeReceipt {
  readonly paymentId: string;
}

/** A charge the gateway made: what `GET /payments?orderId=` lists. */
export interface Charge {
  readonly orderId: string;
  readonly paymentId: string;
  readonly amount: number;
}

/** Card tokens with a scripted behaviour; any other token is declined as unknown. */
export const CARD_TOKENS = {
  ok: 'tok_ok',
  flaky: 'tok_flaky',
  declined: 'tok_declined',
  broken: 'tok_broken',
} as const;

/** How many first attempts of a `tok_flaky` charge time out. */
export const FLAKY_FAILURES = 2;

/**
 * A simulated card gateway keyed by card token:
 * `tok_ok` charges at once; `tok_flaky` times out on the first {@link FLAKY_FAILURES} attempts, then
 * charges (keyed on the attempt number, so it behaves the same across a restart); `tok_declined` is
 * a business decline; `tok_broken` always fails with a gateway error until {@link repair} is called.
 * It counts successful charges per order, so tests can prove nothing was charged twice.
 */
export class SimulatedPaymentGateway {
  private readonly charges = new Map<string, Charge[]>();
  private readonly repaired = new Set<string>();

  async charge(request: ChargeRequest): Promise<ChargeReceipt> {
    const { cardToken, attempt } = request;
    switch (this.repaired.has(cardToken) ? CARD_TOKENS.ok : cardToken) {
      case CARD_TOKENS.ok:
        break;
      case CARD_TOKENS.flaky:
        if (attempt <= FLAKY_FAILURES) {
          throw new GatewayUnavailableError(
            `gateway timeout for ${cardToken} (transient, attempt ${attempt})`,
          );
        }
        break;
      case CARD_TOKENS.declined:
        throw new PaymentDeclinedError('card declined: insufficient funds');
      case CARD_TOKENS.broken:
        throw new GatewayUnavailableError(`gateway error 502 for ${cardToken}`);
      default:
        throw new PaymentDeclinedError(`unknown card token '${cardToken}'`);
    }
    const charge: Charge = {
      orderId: request.orderId,
      paymentId: `pay_${randomUUID()}`,
      amount: request.amount,
    };
    this.charges.set(request.orderId, [...this.chargesOf(request.orderId), charge]);
    return { paymentId: charge.paymentId };
  }

  /** The charges made for `orderId`, oldest first; every charge when no order is given. */
  chargesOf(orderId?: string): Charge[] {
    if (orderId === undefined) return [...this.charges.values()].flat();
    return this.charges.get(orderId) ?? [];
  }

  /** How many times `orderId` was charged successfully. */
  chargeCount(orderId: string): number {
    return this.chargesOf(orderId).length;
  }

  /** Makes `cardToken` charge successfully from now on ("fixing" the gateway before a replay). */
  repair(cardToken: string): void {
    this.repaired.add(cardToken);
  }
}
