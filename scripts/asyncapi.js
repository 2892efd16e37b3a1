#!/usr/bin/env node
/**
 * `npm run asyncapi`: writes docs/asyncapi.yaml, the AsyncAPI 3.0 document of the sample system
 * (order-service and payment-service), generated from the code by `asyncApiDocument()`: their
 * `@Consume` handlers, `@Producer`s and payload classes. `npm run asyncapi -- --check` writes nothing
 * and exits 1 when the committed document differs from the code (test/asyncapi.e2e-spec.ts checks
 * the same in CI).
 *
 * Both services are built as Nest application contexts on the in-memory broker: no RabbitMQ, no
 * HTTP, nothing listens. The TypeScript sources run as they are, through the same @swc/core
 * transform as Jest, with the tsconfig `paths` (`@app/messaging`, ...), so the document never comes
 * from a stale build. NestJS 12's ES modules load through Node's own require(esm).
 *
 * Tests require this file for `generateAsyncApiYaml()`; under Jest the modules resolve as Jest does.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const ASYNCAPI_PATH = path.join(__dirname, '..', 'docs', 'asyncapi.yaml');

const HEADER =
  '# Generated from the code by `npm run asyncapi` (asyncApiDocument() of nest-messaging): do not\n' +
  '# edit. CI fails when it differs from what the code says (test/asyncapi.e2e-spec.ts).\n';

/** The document as YAML: deterministic (sorted ids, no timestamps), so it can be compared byte for byte. */
async function generateAsyncApiYaml() {
  const { NestFactory } = require('@nestjs/core');
  const YAML = require('yaml');
  const { asyncApiDocument, InMemoryBackend, InMemoryBroker } = require('@app/messaging');
  const { OrderServiceModule } = require('../apps/order-service/src/order-service.module');
  const { PaymentServiceModule } = require('../apps/payment-service/src/payment-service.module');
  const { version } = require('../package.json');

  const broker = new InMemoryBroker();
  const modules = [OrderServiceModule, PaymentServiceModule].map((module) =>
    module.register({ backend: new InMemoryBackend({ broker }) }),
  );
  const apps = [];
  try {
    for (const module of modules) {
      apps.push(await NestFactory.createApplicationContext(module, { logger: false }));
    }
    const document = asyncApiDocument(apps, {
      title: 'nest-messaging sample system',
      version,
      description:
        'The messages between the sample services of nest-messaging: order-service publishes ' +
        '`order.created` for each order placed; payment-service charges it and answers with ' +
        '`payment.succeeded` or `payment.failed`, which order-service applies to the order.',
    });
    return HEADER + YAML.stringify(document, { aliasDuplicateObjects: false, lineWidth: 100 });
  } finally {
    for (const app of apps.reverse()) await app.close();
  }
}

async function main() {
  const generated = await generateAsyncApiYaml();
  const relative = path.relative(process.cwd(), ASYNCAPI_PATH);
  if (process.argv.includes('--check')) {
    const committed = fs.existsSync(ASYNCAPI_PATH) ? fs.readFileSync(ASYNCAPI_PATH, 'utf8') : '';
    if (committed === generated) return console.log(`${relative} is up to date`);
    console.error(`${relative} differs from the code: run \`npm run asyncapi\` and commit it`);
    process.exitCode = 1;
    return;
  }
  fs.writeFileSync(ASYNCAPI_PATH, generated);
  console.log(`wrote ${relative}`);
}

module.exports = { generateAsyncApiYaml, ASYNCAPI_PATH };

if (require.main === module) {
  require('./faults-register'); // the TypeScript sources, as Jest loads them
  main().catch((error) => {
    console.error(error);
    process.exitCode = 1;
  });
}
