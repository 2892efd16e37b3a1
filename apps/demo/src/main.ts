import type { INestApplication } from '@nestjs/common';
import { InMemoryBackend, InMemoryBroker } from '@app/messaging';
import { createOrderApp } from '../../order-service/src/order-service.app';
import { createPaymentApp } from '../../payment-service/src/payment-service.app';
import { SimulatedPaymentGateway } from '../../payment-service/src/payments/payment-gateway';
import { DemoJournal, shorten } from './demo-journal';

/**
 * `npm run demo`: order-service and payment-service in one process on the in-memory broker, one order
 * per card token, each order's journey as it happens, a dead-letter replay, and the final statuses.
 * The services talk over HTTP on ephemeral ports, exactly as the outside world does.
 */

const TOKENS = ['tok_ok', 'tok_flaky', 'tok_declined', 'tok_broken'] as const;
const FINAL = new Set(['PAID', 'PAYMENT_FAILED']);

interface OrderView {
  id: string;
  status: string;
  cardToken: string;
  amount: number;
  paymentId?: string;
  failureReason?: string;
}

interface DeadLetterView {
  id: string;
  attempts: number;
  error: string;
  payload: { orderId?: string };
}

async function main(): Promise<void> {
  const journal = new DemoJournal();
  const broker = new InMemoryBroker();
  const gateway = new SimulatedPaymentGateway();
  const apps: INestApplication[] = [];
  try {
    journal.say('Starting order-service and payment-service on one in-memory broker...');
    apps.push(
      await createOrderApp({ backend: new InMemoryBackend({ broker }), port: 0, logger: journal }),
    );
    apps.push(
      await createPaymentApp({
        backend: new InMemoryBackend({ broker }),
        port: 0,
        gateway,
        logger: journal,
      }),
    );
    const [orders, payments] = await Promise.all(apps.map((app) => app.getUrl()));

    const placed: OrderView[] = [];
    for (const [i, cardToken] of TOKENS.entries()) {
      journal.say(`\n== Order ${i + 1}: ${cardToken} ${'='.repeat(60 - cardToken.length)}`);
      journal.mark();
      const amount = 25 * (i + 1);
      journal.say(
        `  POST /orders { customerId: 'customer-${i + 1}', amount: ${amount}, cardToken: '${cardToken}' }`,
      );
      const order = await http<OrderView>('POST', `${orders}/orders`, {
        customerId: `customer-${i + 1}`,
        amount,
        cardToken,
      });
      journal.say(`  -> 201 { id: ${shorten(order.id)}, status: ${order.status} }`);
      const outcome = await until(async () => {
        const current = await http<OrderView>('GET', `${orders}/orders/${order.id}`);
        if (FINAL.has(current.status)) return `order is ${current.status}`;
        const letters = await http<DeadLetterView[]>('GET', `${payments}/dead-letters`);
        return letters.some((l) => l.payload.orderId === order.id)
          ? 'order stays PENDING, its message is a dead letter'
          : undefined;
      });
      journal.say(`  => ${outcome}`);
      placed.push(order);
    }

    journal.say(`\n== Dead letters of payment-service ${'='.repeat(43)}`);
    const [letter] = await http<DeadLetterView[]>('GET', `${payments}/dead-letters`);
    const broken = placed[3];
    journal.say(
      `  GET /dead-letters -> ${letter.id.slice(0, 8)}: order ${shorten(broken.id)}, ${letter.attempts} attempts, "${letter.error}"`,
    );

    journal.say('\n  Replay while the gateway is still broken:');
    journal.mark();
    await http('POST', `${payments}/dead-letters/${letter.id}/replay`);
    const again = await until(async () => {
      const letters = await http<DeadLetterView[]>('GET', `${payments}/dead-letters`);
      return letters.find((l) => l.payload.orderId === broken.id);
    });
    journal.say(`  => failed again, back in the dead letters as ${again.id.slice(0, 8)}`);

    journal.say('\n  Fix the gateway for tok_broken, then replay:');
    gateway.repair('tok_broken');
    journal.mark();
    await http('POST', `${payments}/dead-letters/${again.id}/replay`);
    await until(async () =>
      (await http<OrderView>('GET', `${orders}/orders/${broken.id}`)).status === 'PAID'
        ? true
        : undefined,
    );
    journal.say(
      '  => order is PAID; no dead letters left: ' +
        String((await http<unknown[]>('GET', `${payments}/dead-letters`)).length === 0),
    );

    journal.say(`\n== Final state ${'='.repeat(63)}`);
    const rows = await Promise.all(
      placed.map((o) => http<OrderView>('GET', `${orders}/orders/${o.id}`)),
    );
    const charges = await Promise.all(rows.map((o) => gateway.chargeCount(o.id)));
    printTable(
      ['order', 'card token', 'amount', 'status', 'detail', 'charges'],
      rows.map((o, i) => [
        shorten(o.id),
        o.cardToken,
        String(o.amount),
        o.status,
        o.paymentId ? shorten(o.paymentId) : (o.failureReason ?? '-'),
        String(charges[i]),
      ]),
      journal,
    );
  } finally {
    await Promise.allSettled(apps.reverse().map((app) => app.close()));
  }
}

async function http<T = unknown>(method: 'GET' | 'POST', url: string, body?: unknown): Promise<T> {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = (await res.json()) as T;
  if (!res.ok) throw new Error(`${method} ${url} -> ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/** Polls `check` until it returns something; gives up after 15 s. */
async function until<T>(check: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await check();
    if (result !== undefined) return result;
    if (Date.now() > deadline)
      throw new Error(`the demo waited more than ${timeoutMs} ms for a step to finish`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function printTable(header: string[], rows: string[][], journal: DemoJournal): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const format = (cells: string[]) => '  ' + cells.map((c, i) => c.padEnd(widths[i])).join('  ');
  journal.say(format(header));
  journal.say(format(widths.map((w) => '-'.repeat(w))));
  for (const row of rows) journal.say(format(row));
}

// Exits by itself once both apps are closed: nothing is left holding the event loop.
main().catch((error: unknown) => {
  process.stderr.write(`demo failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exitCode = 1;
});
