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
  /**
   * The same key twice returns the first charge instead of charging again, as real gateways do
   * (Stripe's `Idempotency-Key`). payment-service passes the message id. @default no deduplication
   */
  readonly idempotencyKey?: string;
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

/** Where the simulated gateway keeps its charges: the "other side" of the gateway, not our ledger. */
export interface ChargeBook {
  /** The charge made under `idempotencyKey`, if any. */
  byKey(idempotencyKey: string): Promise<Charge | undefined>;
  /** Records `charge`; under a key already used, keeps and resolves the first charge instead. */
  add(charge: Charge, idempotencyKey?: string): Promise<Charge>;
  /** The charges of `orderId`, oldest first; all of them without it. */
  list(orderId?: string): Promise<Charge[]>;
}

/** Charges in this process's memory. */
export class InMemoryChargeBook implements ChargeBook {
  private readonly charges: Charge[] = [];
  private readonly keys = new Map<string, Charge>();

  async byKey(idempotencyKey: string): Promise<Charge | undefined> {
    return this.keys.get(idempotencyKey);
  }

  async add(charge: Charge, idempotencyKey?: string): Promise<Charge> {
    const first = idempotencyKey === undefined ? undefined : this.keys.get(idempotencyKey);
    if (first) return first;
    this.charges.push(charge);
    if (idempotencyKey !== undefined) this.keys.set(idempotencyKey, charge);
    return charge;
  }

  async list(orderId?: string): Promise<Charge[]> {
    return orderId === undefined
      ? [...this.charges]
      : this.charges.filter((c) => c.orderId === orderId);
  }
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
 * It keeps every successful charge in its {@link ChargeBook}, so tests can prove nothing was charged
 * twice, and honours idempotency keys.
 */
export class SimulatedPaymentGateway {
  private readonly repaired = new Set<string>();

  constructor(
    private readonly book: ChargeBook = new InMemoryChargeBook(),
    /** How long a charge takes; the charge is made half-way, as a real gateway's call. @default 0 */
    private readonly latencyMs = 0,
  ) {}

  async charge(request: ChargeRequest): Promise<ChargeReceipt> {
    const { cardToken, attempt, idempotencyKey } = request;
    const earlier =
      idempotencyKey === undefined ? undefined : await this.book.byKey(idempotencyKey);
    if (earlier) return { paymentId: earlier.paymentId };
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
    await this.pause();
    const kept = await this.book.add(charge, idempotencyKey);
    await this.pause();
    return { paymentId: kept.paymentId };
  }

  private pause(): Promise<void> {
    return this.latencyMs > 0
      ? new Promise((resolve) => setTimeout(resolve, this.latencyMs / 2))
      : Promise.resolve();
  }

  /** The charges made for `orderId`, oldest first; every charge when no order is given. */
  chargesOf(orderId?: string): Promise<Charge[]> {
    return this.book.list(orderId);
  }

  /** How many times `orderId` was charged successfully. */
  async chargeCount(orderId: string): Promise<number> {
    return (await this.chargesOf(orderId)).length;
  }

  /** Makes `cardToken` charge successfully from now on ("fixing" the gateway before a replay). */
  repair(cardToken: string): void {
    this.repaired.add(cardToken);
  }
}
