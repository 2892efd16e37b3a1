/**
 * The AsyncAPI document of the sample system (docs/asyncapi.yaml): generated from the code of
 * order-service and payment-service, valid AsyncAPI 3.0 by the official parser, and committed as
 * generated (CI fails on drift). The only spec that loads @asyncapi/parser: it takes seconds.
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import {
  type AsyncAPIDocumentInterface,
  type Diagnostic,
  DiagnosticSeverity,
  Parser,
} from '@asyncapi/parser';
import { stringify } from 'yaml';
import {
  buildAsyncApiDocument,
  type MessagingDescription,
} from '../libs/messaging/src/asyncapi/asyncapi-builder';

// The script that writes the document: the test compares what it generates with the committed file.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const script = require('../scripts/asyncapi.js') as {
  generateAsyncApiYaml(): Promise<string>;
  ASYNCAPI_PATH: string;
};

const TIMEOUT_MS = 60_000;
// The parser's Diagnostic and its DiagnosticSeverity come from two copies of @stoplight/types.
const ERROR: number = DiagnosticSeverity.Error;

/** Parses `source`; fails, printing every diagnostic, on any error. */
async function expectValidAsyncApi(source: string): Promise<AsyncAPIDocumentInterface> {
  const { document, diagnostics } = await new Parser().parse(source);
  const errors = diagnostics.filter((d) => Number(d.severity) === ERROR);
  if (errors.length > 0 || document === undefined) {
    throw new Error(
      `The AsyncAPI parser found errors:\n${diagnostics.map(formatDiagnostic).join('\n')}`,
    );
  }
  // Warnings and hints do not fail the test but show in its output.
  if (diagnostics.length > 0)
    console.log(`AsyncAPI parser:\n${diagnostics.map(formatDiagnostic).join('\n')}`);
  return document;
}

function formatDiagnostic(d: Diagnostic): string {
  const level = ['error', 'warning', 'info', 'hint'][d.severity] ?? String(d.severity);
  return `  ${level} ${d.code} at ${d.path.join('.') || '(root)'}: ${d.message}`;
}

describe('docs/asyncapi.yaml', () => {
  let generated: string;
  beforeAll(async () => {
    generated = await script.generateAsyncApiYaml();
  }, TIMEOUT_MS);

  it(
    'is a valid AsyncAPI 3.0 document of both services',
    async () => {
      const document = await expectValidAsyncApi(generated);
      const operations = document.operations().all();
      const summary = operations.map(
        (o) => `${o.id()} ${o.action()} ${o.channels().all()[0]?.address() ?? ''}`,
      );
      expect(summary.sort()).toEqual([
        'orderService.onPaymentFailed receive payment.failed',
        'orderService.onPaymentSucceeded receive payment.succeeded',
        'orderService.sendOrderCreated send order.created',
        'paymentService.onOrderCreated receive order.created',
        'paymentService.sendPaymentFailed send payment.failed',
        'paymentService.sendPaymentSucceeded send payment.succeeded',
      ]);
      const orderCreated = document.components().messages().get('orderCreated');
      expect(orderCreated?.payload()?.required()).toEqual([
        'orderId',
        'customerId',
        'amount',
        'cardToken',
      ]);
    },
    TIMEOUT_MS,
  );

  it('is what the code says: the committed file equals the generated one, byte for byte', () => {
    let committed: string | undefined;
    try {
      committed = readFileSync(script.ASYNCAPI_PATH, 'utf8');
    } catch {
      committed = undefined;
    }
    if (committed === generated) return;
    const path = relative(process.cwd(), script.ASYNCAPI_PATH);
    const lines = [committed?.split('\n') ?? [], generated.split('\n')];
    const length = Math.max(lines[0].length, lines[1].length);
    const at = Array.from({ length }, (_, i) => i).find((i) => lines[0][i] !== lines[1][i]) ?? 0;
    throw new Error(
      committed === undefined
        ? `${path} is missing: run \`npm run asyncapi\` and commit it`
        : `${path} is out of date with the code: run \`npm run asyncapi\` and commit it.\n` +
            `First difference, line ${at + 1}:\n  committed: ${lines[0][at] ?? '(end of file)'}\n` +
            `  generated: ${lines[1][at] ?? '(end of file)'}`,
    );
  });

  it(
    'every shape the builder makes is valid too (named queues, replies, several types, none, versions)',
    async () => {
      const retry = {
        maxAttempts: 2,
        backoff: { initialDelayMs: 10, multiplier: 2, maxDelayMs: 100, jitter: 0 },
      };
      const spec = (queue: string, topics: string[]) => ({
        service: 'svc',
        queue,
        topics,
        external: topics.length === 0,
        concurrency: 1,
      });
      const json = (name: string) => ({
        name,
        contentType: 'application/json',
        schema: { $ref: `#/components/schemas/${name}` },
      });
      const common = { retry, deadLetter: true, idempotent: false };
      const system: MessagingDescription = {
        routes: [
          { ...common, name: 'A.hello', spec: spec('hello', []) },
          { ...common, name: 'A.one', spec: spec('svc.x', ['x.*']), payload: json('One') },
          { ...common, name: 'B.two', spec: spec('svc.x2', ['x.*']), payload: json('Two') },
          {
            ...common,
            name: 'C.versioned',
            spec: spec('svc.v', ['v']),
            payload: json('Two'),
            version: 3,
            upcastFrom: [1, 2],
          },
          {
            ...common,
            name: 'A.ask',
            spec: spec('svc.ask', ['ask']),
            payload: json('One'),
            reply: json('Two'),
            retry: false,
            deadLetter: false,
          },
        ],
        producers: [
          { service: 'other', owner: 'P', topic: 'x.*', allowUnroutable: false },
          { service: 'other', owner: 'P', topic: 'audit.#', allowUnroutable: true },
          { service: 'other', owner: 'P', queue: 'hello', allowUnroutable: false },
          { service: 'other', owner: 'P', topic: 'ask', allowUnroutable: false },
          { service: 'other', owner: 'P', topic: 'v', allowUnroutable: false, version: 2 },
        ],
        schemas: {
          One: { type: 'object', properties: { a: { type: 'string' } } },
          Two: { type: 'object' },
        },
      };
      // Each broker's bindings (RabbitMQ's by default), and the replies of request/reply.
      for (const broker of [undefined, { kind: 'redis' as const }, { kind: 'nats' as const }]) {
        const document = buildAsyncApiDocument(
          { title: 'All shapes', version: '1.0.0', ...(broker && { broker }) },
          system,
        );
        const parsed = await expectValidAsyncApi(
          stringify(document, { aliasDuplicateObjects: false }),
        );
        const asking = parsed
          .operations()
          .all()
          .filter((o) => o.reply() !== undefined);
        expect(asking.map((o) => o.id()).sort()).toEqual(['other.sendAsk', 'svc.ask']);
      }
    },
    TIMEOUT_MS,
  );
});
