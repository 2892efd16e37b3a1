/**
 * TLS against a real TLS endpoint (issue 9, RELIABILITY.md §5 and §7 F23c). The spec makes its own CA
 * with openssl in a temp dir and stands a TLS-terminating proxy (Node `tls`, on a free port of
 * 127.0.0.1) in front of the shared broker, then drives `AmqpBackend` with `amqps://` URLs, alone or in
 * a Nest app, as a private user of a private vhost (both created here and deleted at the end):
 *
 * | case | client                                             | expected                                   |
 * | ---- | -------------------------------------------------- | ------------------------------------------ |
 * | 1    | no `tls`, `tls` without `ca`, or another CA        | certificate not trusted, at once (retrying |
 * |      |                                                    | cannot help), nothing reaches the broker   |
 * | 1c   | `rejectUnauthorized: false` set explicitly         | connects (control: only the check refused) |
 * | 1d   | an endpoint that never answers the handshake       | rejects at `connectTimeoutMs`, socket closed |
 * | 2    | right CA, `servername` not in the cert, or a cert  | host name mismatch, nothing reaches the    |
 * |      | for another name                                   | broker                                     |
 * | 3    | right CA, right name (`localhost`; also by IP)     | connects; a message published is consumed  |
 * | 4    | wrong password through TLS                         | ACCESS_REFUSED                              |
 * | 4b   | a password holding `'` and `"` (legal in a URL),    | connects / ACCESS_REFUSED; the password is |
 * |      | right or wrong                                     | in no log line or error                    |
 *
 * In every case the password (distinctive, with URL-reserved characters) must appear in no Nest log
 * line, no console output and no error (message, stack, cause, own properties).
 */
import { randomUUID } from 'node:crypto';
import { Controller, type INestApplication, type Type } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import {
  AmqpBackend,
  Consume,
  MessagingModule,
  MessagingPublisher,
  MessagingServer,
  type AmqpTlsOptions,
} from '@app/messaging';
import { waitFor } from '@app/messaging/testing';
import { createBrokerUser, distinctiveSecret, type BrokerUser } from './support/tls-broker-user';
import { makeTestPki, type TestPki } from './support/tls-certs';
import { LeakCapture } from './support/tls-leak-capture';
import {
  startSilentEndpoint,
  startTlsProxy,
  type SilentEndpoint,
  type TlsProxy,
} from './support/tls-proxy';

const RUN = randomUUID().slice(0, 8);
const CONNECT_TIMEOUT_MS = 1500;
/** What `connect()` may take beyond `connectTimeoutMs` on a busy 2-core box. */
const SLACK_MS = 1000;
const RECONNECT = { initialDelayMs: 50, maxDelayMs: 200, multiplier: 2 };
const TEST_TIMEOUT_MS = 30_000;

type CodedError = Error & { code?: unknown };

describe('faults: TLS to the broker through a real TLS endpoint (issue 9, F23c)', () => {
  const capture = new LeakCapture();
  let pki: TestPki;
  let user: BrokerUser;
  let proxy: TlsProxy;
  let wrongNameProxy: TlsProxy;
  let silent: SilentEndpoint;
  let apps: INestApplication[] = [];
  let backends: AmqpBackend[] = [];
  let emitted: CodedError[] = [];
  let counter = 0;
  const wrongPassword = distinctiveSecret('WrongPw');

  beforeAll(async () => {
    capture.install();
    pki = await makeTestPki();
    user = await createBrokerUser();
    proxy = await startTlsProxy(pki.server);
    wrongNameProxy = await startTlsProxy(pki.wrongName);
    silent = await startSilentEndpoint();
  }, 90_000);

  beforeEach(() => {
    emitted = [];
  });

  afterEach(async () => {
    const open = apps;
    apps = [];
    await Promise.all(open.map((app) => app.close().catch((e: unknown) => capture.error(e))));
    const left = backends;
    backends = [];
    await Promise.all(left.map((b) => b.close()));
  }, TEST_TIMEOUT_MS);

  afterAll(async () => {
    await Promise.all([proxy?.close(), wrongNameProxy?.close(), silent?.close()]);
    await user?.remove();
    pki?.remove();
    capture.uninstall();
  }, 90_000);

  function makeBackend(url: string, tls?: AmqpTlsOptions): AmqpBackend {
    const backend = new AmqpBackend({
      url,
      ...(tls ? { tls } : {}),
      exchange: `faults-tls-${RUN}`,
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      reconnect: RECONNECT,
    });
    backend.on('error', (error) => {
      emitted.push(error);
      capture.error(error);
    });
    backends.push(backend);
    return backend;
  }

  /** A Nest app on an `AmqpBackend`, its logs going to the capture; consumes when given controllers. */
  async function startApp(
    url: string,
    tls: AmqpTlsOptions | undefined,
    controllers: Type[] = [],
  ): Promise<INestApplication> {
    const backend = makeBackend(url, tls);
    const moduleRef = await Test.createTestingModule({
      imports: [MessagingModule.forRoot({ backend, service: `faults-tls-${RUN}-${++counter}` })],
      controllers,
    })
      .setLogger(capture.logger)
      .compile();
    const app = moduleRef.createNestApplication({ logger: capture.logger });
    apps.push(app);
    if (controllers.length > 0) {
      app.connectMicroservice({ strategy: app.get(MessagingServer) }, { inheritAppConfig: true });
      await app.startAllMicroservices();
    }
    await app.init();
    return app;
  }

  /** Runs `attempt`, which must reject; resolves with its error and how long it took. */
  async function failure(
    attempt: () => Promise<unknown>,
  ): Promise<{ error: CodedError; ms: number }> {
    const started = Date.now();
    const outcome = await attempt().then(
      () => undefined,
      (error: unknown) => error,
    );
    const ms = Date.now() - started;
    capture.error(outcome);
    if (!(outcome instanceof Error))
      throw new Error(`expected a rejection with an Error, got ${String(outcome)}`);
    return { error: outcome, ms };
  }

  function expectNoCredentialLeak(): void {
    expect(capture.leaks(user.password, user.marker)).toEqual([]);
    expect(capture.leaks(wrongPassword.password, wrongPassword.marker)).toEqual([]);
  }

  /** The private user's URL through the proxy that serves the right certificate. */
  const goodUrl = (host = 'localhost'): string => user.url(host, proxy.port);

  describe('1. a certificate the client was not told to trust', () => {
    it.each<[string, () => AmqpTlsOptions | undefined]>([
      ['no tls options at all', () => undefined],
      ['tls options without ca (rejectUnauthorized left out)', () => ({ servername: 'localhost' })],
      ['the ca of another authority', () => ({ ca: pki.otherCa })],
    ])(
      '%s: app start fails at once with "certificate not trusted"',
      async (_name, tls) => {
        const handshakesBefore = proxy.handshakeErrors.length;
        const forwardedBefore = proxy.forwarded();

        const { error, ms } = await failure(() => startApp(goodUrl(), tls()));

        expect(error.code).toBe('CONNECT_FAILED');
        // Refused for good by every URL: no waiting out connectTimeoutMs.
        expect(error.message).toMatch(
          /unable to verify the first certificate.*Retrying will not help/,
        );
        expect(ms).toBeLessThan(CONNECT_TIMEOUT_MS);
        expect(emitted.length).toBeGreaterThan(0);
        expect(emitted.every((e) => e.code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE')).toBe(true);
        // The operator sees why in the log, at once (BackendErrorLog), with the URL redacted.
        const logged = capture.logLines(/unable to verify the first certificate/);
        expect(logged.length).toBeGreaterThan(0);
        expect(logged.join('\n')).toContain(`amqps://${user.user}:***@localhost:${proxy.port}`);
        // The client hung up during the handshake: no AMQP byte, so no credential, reached the broker.
        // (It gave up at once: the endpoint may see the handshake fail a moment later.)
        await waitFor(() => proxy.handshakeErrors.length > handshakesBefore);
        expect(proxy.forwarded()).toBe(forwardedBefore);
        expectNoCredentialLeak();
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'connects to the same endpoint without the ca only when rejectUnauthorized:false is set explicitly (control)',
      async () => {
        const backend = makeBackend(goodUrl(), { rejectUnauthorized: false });
        await backend.connect();
        expect(backend.status).toBe('connected');
        expectNoCredentialLeak();
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'an endpoint that never answers the TLS handshake: connect() rejects at connectTimeoutMs, close() leaves no socket',
      async () => {
        const backend = makeBackend(user.url('localhost', silent.port), { ca: pki.ca });

        const { error, ms } = await failure(() => backend.connect());

        expect(error.code).toBe('CONNECT_FAILED');
        expect(error.message).toContain(`within ${CONNECT_TIMEOUT_MS} ms`);
        expect(ms).toBeGreaterThanOrEqual(CONNECT_TIMEOUT_MS - 50);
        expect(ms).toBeLessThan(CONNECT_TIMEOUT_MS + SLACK_MS);
        expect(silent.accepted()).toBeGreaterThan(0);
        const closing = Date.now();
        await backend.close();
        expect(Date.now() - closing).toBeLessThan(CONNECT_TIMEOUT_MS + SLACK_MS);
        await waitFor(() => silent.open() === 0, {
          timeoutMs: CONNECT_TIMEOUT_MS + SLACK_MS,
          message: 'the client closed its half-open TLS socket',
        });
        expectNoCredentialLeak();
      },
      TEST_TIMEOUT_MS,
    );
  });

  describe('2. a trusted certificate for another name', () => {
    it.each<[string, () => { url: string; tls: AmqpTlsOptions }]>([
      [
        'servername not in the certificate',
        () => ({ url: goodUrl(), tls: { ca: pki.ca, servername: 'wrong-name.invalid' } }),
      ],
      [
        'the endpoint serves a certificate for wrong-name.invalid, client dials localhost',
        () => ({ url: user.url('localhost', wrongNameProxy.port), tls: { ca: pki.ca } }),
      ],
      [
        'the endpoint serves a certificate for wrong-name.invalid, client dials 127.0.0.1',
        () => ({ url: user.url('127.0.0.1', wrongNameProxy.port), tls: { ca: pki.ca } }),
      ],
    ])(
      '%s: connect() fails with a host name mismatch',
      async (_name, client) => {
        const { url, tls } = client();
        const target = url.includes(`:${wrongNameProxy.port}/`) ? wrongNameProxy : proxy;
        const forwardedBefore = target.forwarded();
        const backend = makeBackend(url, tls);

        const { error, ms } = await failure(() => backend.connect());

        expect(error.code).toBe('CONNECT_FAILED');
        expect(error.message).toMatch(/does not match certificate's altnames/);
        expect(ms).toBeLessThan(CONNECT_TIMEOUT_MS + SLACK_MS);
        expect(emitted.length).toBeGreaterThan(0);
        expect(emitted.every((e) => e.code === 'ERR_TLS_CERT_ALTNAME_INVALID')).toBe(true);
        expect(backend.status).not.toBe('connected');
        expect(target.forwarded()).toBe(forwardedBefore);
        expectNoCredentialLeak();
      },
      TEST_TIMEOUT_MS,
    );
  });

  describe('3. the right CA and the right name', () => {
    it(
      'a Nest app connects through TLS by host name, and a message it publishes is consumed',
      async () => {
        const topic = `faults-tls.${RUN}.hello`;
        const seen: unknown[] = [];
        @Controller()
        class Hello {
          @Consume(topic)
          handle(@Payload() payload: unknown): void {
            seen.push(payload);
          }
        }
        const forwardedBefore = proxy.forwarded();

        const app = await startApp(goodUrl(), { ca: pki.ca }, [Hello]);
        const id = await app.get(MessagingPublisher).publish({ topic }, { hello: RUN });
        await waitFor(() => seen.length === 1, { message: 'the message consumed through TLS' });

        expect(seen).toEqual([{ hello: RUN }]);
        expect(id).toEqual(expect.any(String));
        expect(proxy.forwarded()).toBeGreaterThan(forwardedBefore);
        expect(emitted).toEqual([]);
        expect(
          capture.logLines(
            new RegExp(
              `Connected to RabbitMQ at amqps://${user.user}:\\*\\*\\*@localhost:${proxy.port}/`,
            ),
          ).length,
        ).toBeGreaterThan(0);
        expectNoCredentialLeak();
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'connects by IP address, verified against the certificate IP SAN',
      async () => {
        const backend = makeBackend(goodUrl('127.0.0.1'), { ca: pki.ca });
        await backend.connect();
        expect(backend.status).toBe('connected');
        expect(emitted).toEqual([]);
        expectNoCredentialLeak();
      },
      TEST_TIMEOUT_MS,
    );
  });

  describe('4. credentials', () => {
    it(
      'a wrong password through TLS fails with ACCESS_REFUSED and the password is nowhere',
      async () => {
        const forwardedBefore = proxy.forwarded();
        const url = user.url('localhost', proxy.port, wrongPassword.password);

        const { error, ms } = await failure(() => startApp(url, { ca: pki.ca }));

        expect(error.code).toBe('CONNECT_FAILED');
        expect(error.message).toMatch(/ACCESS.REFUSED/);
        expect(ms).toBeLessThan(CONNECT_TIMEOUT_MS + SLACK_MS);
        expect(emitted.length).toBeGreaterThan(0);
        expect(emitted.some((e) => /ACCESS.REFUSED/.test(e.message))).toBe(true);
        // It did get through TLS to the broker, which refused the login.
        expect(proxy.forwarded()).toBeGreaterThan(forwardedBefore);
        expect(capture.logLines(/ACCESS.REFUSED/).length).toBeGreaterThan(0);
        expectNoCredentialLeak();
      },
      TEST_TIMEOUT_MS,
    );
  });

  describe('4b. a password holding quote characters, which a URL may carry', () => {
    let quoted: BrokerUser;
    beforeAll(async () => {
      quoted = await createBrokerUser(`'q"r`);
    }, 60_000);
    afterAll(() => quoted?.remove(), 60_000);

    it.each<[string, (u: BrokerUser) => string]>([
      [
        "percent-encoded by encodeURIComponent (which leaves the ' as is)",
        (u) => u.url('localhost', proxy.port),
      ],
      [
        'written as is in the URL (WHATWG URL accepts it)',
        (u) =>
          `amqps://${u.user}:${u.password}@localhost:${proxy.port}/${encodeURIComponent(u.vhost)}`,
      ],
    ])(
      '%s: connects through TLS, and the password is in no log line or error',
      async (_name, url) => {
        const backend = makeBackend(url(quoted), { ca: pki.ca });
        await backend.connect();
        expect(backend.status).toBe('connected');
        expect(
          capture.logLines(new RegExp(`Connected to RabbitMQ at amqps://${quoted.user}:`)).length,
        ).toBeGreaterThan(0);
        expect(capture.leaks(quoted.password, quoted.marker)).toEqual([]);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "a wrong password holding ' through TLS: ACCESS_REFUSED, and the password is in no error",
      async () => {
        const wrong = distinctiveSecret('WrongQ', "'q");
        const backend = makeBackend(quoted.url('localhost', proxy.port, wrong.password), {
          ca: pki.ca,
        });

        const { error } = await failure(() => backend.connect());

        expect(error.message).toMatch(/ACCESS.REFUSED/);
        expect(emitted.length).toBeGreaterThan(0);
        expect(capture.leaks(wrong.password, wrong.marker)).toEqual([]);
      },
      TEST_TIMEOUT_MS,
    );
  });

  describe('5. the whole run', () => {
    it('over the whole run, neither password appears in any log line, output or error', () => {
      // The capture did see the run: log lines of failures and successes, and errors.
      expect(capture.logLines(/Connected to RabbitMQ at amqps:/).length).toBeGreaterThan(0);
      expect(capture.logLines(/ACCESS.REFUSED/).length).toBeGreaterThan(0);
      expect(capture.texts().length).toBeGreaterThan(10);
      expectNoCredentialLeak();
    });
  });
});
