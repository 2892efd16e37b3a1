import { inspect } from 'node:util';
import { Logger } from '@nestjs/common';
import { BackendEventHub } from '../../backend/backend-events';
import { MessagingConfigError } from '../../errors/messaging.errors';
import { resolveNatsOptions } from './nats-backend.options';
import { explainConnectFailure } from './nats-connect-errors';
import { loadNatsModules, NatsConnectError, NatsConnectionManager } from './nats-connection';
import { maskSecrets, maskUserInfo, splitServer } from './nats-servers';

/** Passwords a URL cannot hold as they are, and their forms in errors. */
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
];

describe('NATS server URLs', () => {
  it.each([
    ['nats://h:4222', { server: 'nats://h:4222' }],
    ['h:4222', { server: 'h:4222' }],
    ['TLS://h:4443/', { server: 'tls://h:4443' }],
    ['nats://[::1]:4222', { server: 'nats://[::1]:4222' }],
    ['nats://t0ken@h', { server: 'nats://h', credentials: { token: 't0ken' } }],
    [
      'nats://alice:s3cr%40t@h:1',
      { server: 'nats://h:1', credentials: { user: 'alice', pass: 's3cr@t' } },
    ],
    ['nats://al%3Aice:p@h', { server: 'nats://h', credentials: { user: 'al:ice', pass: 'p' } }],
    [
      'nats://a:p@ss w/rd#x?@h',
      { server: 'nats://h', credentials: { user: 'a', pass: 'p@ss w/rd#x?' } },
    ],
    ['nats://a:100%zz@h', { server: 'nats://h', credentials: { user: 'a', pass: '100%zz' } }],
    ['nats://a:%ce%zz@h', { server: 'nats://h', credentials: { user: 'a', pass: '%ce%zz' } }],
    ['nats://@h', { server: 'nats://h' }],
  ])('splits %j into its server and credentials', (text, expected) => {
    expect(splitServer(text)).toEqual(expected);
  });

  it.each(['http://h', 'nats://', 'nats://h h', 'nats://a:b@', 'nats://h:port', 'a@h:4222', ''])(
    'finds no NATS URL in %j',
    (text) => {
      expect(splitServer(text)).toBeUndefined();
    },
  );

  it.each(SHAPES)('takes password %j out of the URL, raw or percent-encoded', (password) => {
    for (const written of [password, encodeURIComponent(password)]) {
      if (written === password && /%[0-9A-Fa-f]{2}/.test(password)) continue;
      const resolved = resolveNatsOptions({ servers: `nats://alice:${written}@h:4222` });
      expect(resolved).toMatchObject({ servers: ['nats://h:4222'], user: 'alice', pass: password });
    }
  });

  it.each(SHAPES)('shows no password %j in a config error', (password) => {
    for (const servers of [
      `nats://alice:${password}@bad host`,
      [`nats://alice:${password}@h`, 'ftp://x'],
      [`nats://alice:${password}@h`, `nats://bob:${password}@h2`],
      `alice:${password}@h:4222`,
    ]) {
      const error = (() => {
        try {
          resolveNatsOptions({ servers });
          return undefined;
        } catch (e) {
          return e as Error;
        }
      })();
      expect(error).toBeInstanceOf(MessagingConfigError);
      for (const form of [password, encodeURIComponent(password)])
        expect({ servers, leaked: inspect(error).includes(form) }).toEqual({
          servers,
          leaked: false,
        });
    }
  });

  it.each([
    [{ servers: 'nats://a:p@h', user: 'b', pass: 'q' }, /credentials are given twice/],
    [{ servers: ['nats://a:p@h', 'nats://a:q@h2'] }, /carry different credentials.*give it once/],
    [{ servers: ['tls://h', 'nats://h2'] }, /mixes tls:\/\/ and nats:\/\/.*every URL as tls:\/\//],
    [{ servers: 'a@h:4222' }, /not a NATS URL.*nats:\/\/user:password@host:4222/],
    [{ pass: 'x'.repeat(5_000), user: 'u' }, /pass must be a non-empty string .* got one of 5000/],
    [{ pingIntervalMs: 50 }, /pingIntervalMs must be a whole number from 100 to 3600000, got 50/],
    [{ maxPingsOutstanding: 0 }, /maxPingsOutstanding must be a whole number from 1/],
  ])('rejects %j with an error that names the fix', (options, message) => {
    expect(() => resolveNatsOptions(options as never)).toThrow(MessagingConfigError);
    expect(() => resolveNatsOptions(options as never)).toThrow(message);
  });

  it('requires TLS with the tls option (even {}) or a tls:// URL, and checks the option', () => {
    expect(resolveNatsOptions({ servers: 'nats://h' }).tls).toBeUndefined();
    expect(resolveNatsOptions({ servers: 'tls://h' }).tls).toEqual({ rejectUnauthorized: true });
    expect(resolveNatsOptions({ servers: 'nats://h', tls: {} }).tls).toEqual({
      rejectUnauthorized: true,
    });
    expect(
      resolveNatsOptions({ servers: 'TLS://h', tls: { servername: 'nats.internal' } }).tls,
    ).toEqual({ servername: 'nats.internal', rejectUnauthorized: true });
    // The option's own checks are backend/tls-options.spec.ts.
    expect(() => resolveNatsOptions({ servers: 'tls://h', tls: { ca: 'ca.crt' } })).toThrow(
      "new NatsBackend(): tls.ca looks like a file path ('ca.crt')",
    );
  });

  it('pings every 3 s and gives up after 2 pings by default: a dead link noticed within 9 s', () => {
    expect(resolveNatsOptions()).toMatchObject({ pingIntervalMs: 3_000, maxPingsOutstanding: 2 });
    expect(resolveNatsOptions({ pingIntervalMs: 500, maxPingsOutstanding: 3 })).toMatchObject({
      pingIntervalMs: 500,
      maxPingsOutstanding: 3,
    });
  });

  it.each([
    [{}, true],
    [{ randomizeServers: false }, false],
  ])(
    'hands %j to the client as servers shuffled (%s), or in the order given',
    async (options, shuffled) => {
      const given: Array<{ servers?: unknown; noRandomize?: unknown }> = [];
      const modules = loadNatsModules();
      const transport = {
        ...modules.transport,
        connect: (opts: { servers?: unknown; noRandomize?: unknown }) => {
          given.push(opts);
          return Promise.reject(
            Object.assign(new Error('authorization violation'), { name: 'AuthorizationError' }),
          );
        },
      } as unknown as typeof modules.transport;
      const manager = new NatsConnectionManager(
        { ...modules, transport },
        resolveNatsOptions({ servers: ['nats://h1:4222', 'nats://h2:4222'], ...options }),
        new BackendEventHub(),
        new Logger('test'),
        () => undefined,
      );
      await expect(manager.connect()).rejects.toBeInstanceOf(NatsConnectError);
      expect(given).toEqual([
        expect.objectContaining({
          servers: ['nats://h1:4222', 'nats://h2:4222'],
          noRandomize: !shuffled,
        }),
      ]);
      expect(() => resolveNatsOptions({ randomizeServers: 'no' as never })).toThrow(
        /randomizeServers must be/,
      );
    },
  );

  it('masks user info up to the last @, and secrets by value in free text', () => {
    expect(maskUserInfo('nats://a:p@ss/w#rd@h:1')).toBe('nats://***@h:1');
    expect(maskUserInfo('a:p w@h')).toBe('***@h');
    expect(maskUserInfo('nats://h:1')).toBe('nats://h:1');
    expect(maskSecrets('auth "p w/d" or p%20w%2Fd failed', ['p w/d', undefined])).toBe(
      'auth "***" or *** failed',
    );
  });

  it('says a connection to nothing names the hosts, the cause and the fix, without credentials', async () => {
    const manager = new NatsConnectionManager(
      loadNatsModules(),
      resolveNatsOptions({ servers: 'nats://alice:s3 cr/3t@127.0.0.1:1', connectTimeoutMs: 300 }),
      new BackendEventHub(),
      new Logger('test'),
      () => undefined,
    );
    const error = (await manager.connect().catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(NatsConnectError);
    expect(error.message).toBe(
      'NatsBackend could not connect to nats://127.0.0.1:1 within 300 ms (connection refused). ' +
        'Is nats-server running there with JetStream (`nats-server -js`)? Check `servers`, or raise `connectTimeoutMs`.',
    );
    expect(inspect(error)).not.toMatch(/s3 cr\/3t|s3%20cr/);
  });
});

describe('NATS connect failures', () => {
  const tlsError = (code: string, message: string) =>
    Object.assign(new Error(message), {
      name: 'ConnectionError',
      cause: Object.assign(new Error(message), { code }),
    });

  it.each([
    [
      Object.assign(new Error('Authorization Violation'), { name: 'AuthorizationError' }),
      false,
      /refused the credentials/,
    ],
    [
      tlsError('SELF_SIGNED_CERT_IN_CHAIN', 'self-signed certificate in certificate chain'),
      false,
      /tls\.ca/,
    ],
    [
      tlsError('UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unable to verify the first certificate'),
      false,
      /tls\.ca/,
    ],
    [
      tlsError('ERR_TLS_CERT_ALTNAME_INVALID', "Hostname/IP does not match certificate's altnames"),
      false,
      /tls\.servername/,
    ],
    [tlsError('CERT_HAS_EXPIRED', 'certificate has expired'), false, /renew it/],
    [
      tlsError('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'tlsv13 alert certificate required'),
      false,
      /tls\.cert and tls\.key/,
    ],
    [
      new Error('8:error:0A000412:SSL routines:ssl3_read_bytes:sslv3 alert bad certificate:x.c:1'),
      false,
      /tls\.cert and tls\.key/,
    ],
    [new Error("server does not support 'tls'"), false, /has no TLS/],
    [
      Object.assign(new Error('connection refused'), { name: 'ConnectionError' }),
      true,
      /nats-server -js/,
    ],
    [Object.assign(new Error('timeout'), { name: 'TimeoutError' }), true, /connectTimeoutMs/],
    ['a string', true, /nats-server -js/],
  ])('reads %s as transient %s, fixed by %s', (error, transient, fix) => {
    const failure = explainConnectFailure(error);
    expect(failure.transient).toBe(transient);
    expect(failure.fix).toMatch(fix);
  });
});
