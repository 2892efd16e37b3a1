/**
 * Connecting where nothing answers, or to a virtual host the shared RabbitMQ refuses: every error
 * names the broker, the cause and the fix, without the password, within `connectTimeoutMs`; a
 * backend nobody listens to warns of each failed attempt while it retries. The vhosts are this
 * spec's own: made and deleted here with `rabbitmqctl`, the broker itself is never touched.
 */
import { randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { BROKER_URL, runCommand } from '../../testing/amqp-test.fixture';
import { waitFor } from '../../testing/wait-for';
import { AmqpBackend } from './amqp.backend';

const RUN = randomUUID().slice(0, 8);
/** A vhost made by this spec, on which `guest` has no permissions until a test grants them. */
const UNGRANTED = `test-amqp-${RUN}-ungranted`;
const MISSING = `test-amqp-${RUN}-missing`;
const broker = new URL(BROKER_URL);
const user = decodeURIComponent(broker.username) || 'guest';

function onVhost(vhost: string): string {
  const url = new URL(BROKER_URL);
  url.pathname = `/${encodeURIComponent(vhost)}`;
  return url.toString();
}

/** `text` as a literal in a RegExp. */
const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('AmqpBackend (RabbitMQ): connect errors', () => {
  const warnings: string[] = [];
  const backends: AmqpBackend[] = [];
  const make = (url: string, connectTimeoutMs: number): AmqpBackend => {
    const backend = new AmqpBackend({
      url,
      connectTimeoutMs,
      reconnect: { initialDelayMs: 100, maxDelayMs: 200, multiplier: 2 },
    });
    backends.push(backend);
    return backend;
  };
  const failure = async (backend: AmqpBackend) => {
    const started = Date.now();
    const error = await backend.connect().then(
      () => new Error('connected'),
      (e: unknown) => e as Error,
    );
    return { error, ms: Date.now() - started };
  };

  beforeAll(() => {
    const ignore = (): void => undefined;
    Logger.overrideLogger({
      log: ignore,
      debug: ignore,
      verbose: ignore,
      error: ignore,
      fatal: ignore,
      warn: (message: unknown) => void warnings.push(String(message)),
    });
  });
  beforeEach(() => {
    warnings.length = 0;
  });
  afterEach(async () => {
    await Promise.all(backends.splice(0).map((b) => b.close()));
  });
  afterAll(async () => {
    await runCommand('rabbitmqctl', ['-q', 'delete_vhost', UNGRANTED]).catch(() => undefined);
  }, 30_000);

  it.each([
    [
      'a port nothing listens on',
      'amqp://app:pa55word@127.0.0.1:1',
      /ECONNREFUSED.*\. Nothing accepts connections on 127\.0\.0\.1:1: check the port/,
    ],
    [
      'a host name that does not resolve',
      'amqp://app:pa55word@no-such-host.invalid:5672',
      /ENOTFOUND.*\. The host name 'no-such-host\.invalid' does not resolve: check the host in the URL\./,
    ],
  ])(
    '%s: warns at once and while retrying, then fails at connectTimeoutMs naming it',
    async (_what, url, fix) => {
      const redacted = url.replace('pa55word', '***');
      const backend = make(url, 1_500);
      const started = Date.now();
      let settled = false;
      const connecting = failure(backend).finally(() => (settled = true));
      await waitFor(() => warnings.length > 0, { timeoutMs: 1_000, message: 'a first warning' });
      expect(settled).toBe(false);
      expect(Date.now() - started).toBeLessThan(1_000);
      expect(warnings[0]).toMatch(new RegExp(`^connecting to ${literal(redacted)}: .*`));
      expect(warnings[0]).toMatch(fix);
      const { error, ms } = await connecting;
      expect(error.message).toMatch(
        new RegExp(
          `^Could not connect to RabbitMQ at ${literal(redacted)} within 1500 ms\\. Last error: `,
        ),
      );
      expect(error.message).toMatch(fix);
      expect(ms).toBeLessThan(1_500 + 1_000);
      expect(warnings.length).toBeGreaterThan(1);
      expect([...warnings, error.message].join('\n')).not.toContain('pa55word');
    },
  );

  it('leaves failed attempts to its error listeners while it has some, and warns again without', async () => {
    const backend = make('amqp://app:pa55word@127.0.0.1:1', 600);
    const heard: Error[] = [];
    const stop = backend.on('error', (e) => heard.push(e));
    expect((await failure(backend)).error.message).toMatch(/check the port/);
    expect(heard.length).toBeGreaterThan(0);
    expect(warnings).toEqual([]);
    stop();
    await failure(backend);
    expect(warnings.length).toBeGreaterThan(0);
  });

  it('fails at once on a vhost that does not exist, saying how to create it', async () => {
    const { error, ms } = await failure(make(onVhost(MISSING), 20_000));
    expect(ms).toBeLessThan(5_000);
    expect(error.message).toContain(
      `RabbitMQ refused to open virtual host '${MISSING}' for user '${user}'`,
    );
    expect(error.message).toContain(`\`rabbitmqctl add_vhost ${MISSING}\``);
    expect(error.message).toMatch(/Retrying will not help\.$/);
    expect(error.message).not.toContain(`:${decodeURIComponent(broker.password)}@`);
  });

  it('fails at once on a vhost the user has no permissions on, and connects once they are granted', async () => {
    await runCommand('rabbitmqctl', ['-q', 'add_vhost', UNGRANTED]);
    const { error, ms } = await failure(make(onVhost(UNGRANTED), 20_000));
    expect(ms).toBeLessThan(5_000);
    const grant = `rabbitmqctl set_permissions -p ${UNGRANTED} ${user} '.*' '.*' '.*'`;
    expect(error.message).toContain(`grant the user access with \`${grant}\``);
    // Doing what it says is enough.
    await runCommand('rabbitmqctl', [
      '-q',
      'set_permissions',
      '-p',
      UNGRANTED,
      user,
      '.*',
      '.*',
      '.*',
    ]);
    const granted = make(onVhost(UNGRANTED), 20_000);
    await granted.connect();
    expect(granted.status).toBe('connected');
  }, 30_000);
});
