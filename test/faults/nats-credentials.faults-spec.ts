/**
 * Credentials of `NatsBackend` against a private nats-server that requires them (issue 20, T5): one
 * user per password shape (space, `@`, `:`, quotes, `/`, `%`, `#`, `?`, `\`, unicode), each
 * written in the server URL as it is and percent-encoded, or given in `pass`.
 *
 * | case | client                                           | expected                                        |
 * | ---- | ------------------------------------------------ | ----------------------------------------------- |
 * | 1    | the right password, raw or encoded in the URL, or in `pass` | connects (the URL's credentials are used) |
 * | 2    | a wrong password                                 | `NatsConnectError` at once: the host, "refused the credentials", what to check |
 * | 3    | nothing listens on the port                      | `NatsConnectError` within `connectTimeoutMs`: the host, the cause, the fix |
 *
 * In every case no password appears, raw or percent-encoded, in an error (message, stack, cause,
 * own properties) or a log line.
 */
import { inspect } from 'node:util';
import { Logger } from '@nestjs/common';
import { NatsBackend } from '@app/messaging/nats';
import { startNatsServer, type PrivateNatsServer } from './support/nats-server';
import { CapturingLogger } from './support/tls-leak-capture';

const SHAPES = [
  'with space',
  'p@ss@word',
  'p:a:ss',
  `q"uo'te`,
  'sl/ash/',
  'per%cent%zz',
  'ha#sh?q=1',
  'back\\slash',
  'üñí©ødé ✓',
  'enc%40ded%2F',
];
const CONNECT_TIMEOUT_MS = 1_500;
/** What connect() may take beyond its timeout on a busy 2-core box. */
const SLACK_MS = 1_000;

/** The forms a password could leak in. */
function forms(secret: string): string[] {
  return [...new Set([secret, encodeURIComponent(secret), encodeURI(secret)])];
}

describe('faults: NATS credentials in URLs and options never leak (issue 20, T5)', () => {
  let server: PrivateNatsServer;
  const logger = new CapturingLogger();
  const open: NatsBackend[] = [];

  const backend = (options: ConstructorParameters<typeof NatsBackend>[0]): NatsBackend => {
    const b = new NatsBackend({
      prefix: 'creds',
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      ...options,
    });
    b.on('error', (e) => logger.error(e));
    open.push(b);
    return b;
  };
  const hostOf = () => `127.0.0.1:${server.port}`;

  /** Everything an operator could see of `error`. */
  const rendered = (error: unknown) => inspect(error, { depth: 10, breakLength: Infinity });

  beforeAll(async () => {
    Logger.overrideLogger(logger);
    server = await startNatsServer({
      config: () =>
        `authorization { users = [ ${SHAPES.map(
          (password, i) => `{ user: "u${i}", password: ${JSON.stringify(password)} }`,
        ).join(', ')} ] }`,
    });
  }, 60_000);

  afterEach(async () => {
    await Promise.all(open.splice(0).map((b) => b.close()));
    const lines = logger.lines.join('\n');
    for (const password of SHAPES)
      for (const form of forms(password))
        expect({ form, logged: lines.includes(form) }).toEqual({ form, logged: false });
  });

  afterAll(async () => {
    await server?.remove();
    Logger.overrideLogger(false);
  });

  it.each(SHAPES.map((password, i) => [password, i] as const))(
    'connects with password %j, raw or percent-encoded in the URL or in pass',
    async (password, i) => {
      const encoded = `nats://u${i}:${encodeURIComponent(password)}@${hostOf()}`;
      // A raw `%` and two hex digits read as an escape, as in any URL: such a password only encoded.
      const raw = /%[0-9A-Fa-f]{2}/.test(password) ? [] : [`nats://u${i}:${password}@${hostOf()}`];
      for (const url of [...raw, encoded]) await backend({ servers: url }).connect();
      await backend({ servers: `nats://${hostOf()}`, user: `u${i}`, pass: password }).connect();
    },
  );

  it.each(SHAPES.map((password, i) => [password, i] as const))(
    'refuses a wrong password at once, naming the host and the fix, without showing %j',
    async (password, i) => {
      const wrong = `${password}-not`;
      const attempts = [
        backend({ servers: `nats://u${i}:${wrong}@${hostOf()}` }),
        backend({ servers: `nats://u${i}:${encodeURIComponent(wrong)}@${hostOf()}` }),
        backend({ servers: `nats://${hostOf()}`, user: `u${i}`, pass: wrong }),
      ];
      for (const attempt of attempts) {
        const startedAt = Date.now();
        const error = await attempt.connect().then(
          () => new Error('connected with a wrong password'),
          (e: unknown) => e,
        );
        expect(Date.now() - startedAt).toBeLessThan(CONNECT_TIMEOUT_MS);
        expect(error).toMatchObject({ name: 'NatsConnectError', code: 'CONNECT_FAILED' });
        const text = rendered(error);
        expect(text).toContain(`nats://${hostOf()}`);
        expect(text).toMatch(/refused the credentials.*check user and pass/);
        for (const form of [...forms(wrong), ...forms(password)])
          expect({ form, leaked: text.includes(form) }).toEqual({ form, leaked: false });
      }
    },
  );

  it('names the host, the cause and the fix when nothing listens, within connectTimeoutMs, without showing a password', async () => {
    const port = server.port + 1;
    const startedAt = Date.now();
    const errors = await Promise.all(
      SHAPES.map((password, i) =>
        backend({ servers: `nats://u${i}:${password}@127.0.0.1:${port}` })
          .connect()
          .then(
            () => new Error(`something listens on ${port}`),
            (e: unknown) => e,
          ),
      ),
    );
    expect(Date.now() - startedAt).toBeLessThan(CONNECT_TIMEOUT_MS + SLACK_MS);
    for (const [i, password] of SHAPES.entries()) {
      const text = rendered(errors[i]);
      expect(text).toContain(
        `could not connect to nats://127.0.0.1:${port} within ${CONNECT_TIMEOUT_MS} ms (connection refused). Is nats-server running`,
      );
      for (const form of forms(password))
        expect({ form, leaked: text.includes(form) }).toEqual({ form, leaked: false });
    }
  });
});
