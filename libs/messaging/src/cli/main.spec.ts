import { InMemoryBackend } from '../backends/memory/in-memory.backend';
import { InMemoryBroker } from '../backends/memory/in-memory.broker';
import { captureIo } from './cli.fixture';
import type { BackendFactories } from './dlq-backend';
import { main } from './main';

/** The program itself: help, exit codes, usage errors, failures reported in one line. */
describe('nest-messaging', () => {
  let opened: InMemoryBackend[];
  let failList: boolean;
  const backends: BackendFactories = {
    memory: () => {
      const backend = new InMemoryBackend({ broker: new InMemoryBroker() });
      if (failList)
        backend.deadLetters.list = () => Promise.reject(new Error('amqp://u:pw@h is on fire'));
      opened.push(backend);
      return backend;
    },
  };
  const dlq = ['dlq', 'list', '--service', 'payments', '--url', 'memory://local'];

  beforeEach(() => {
    opened = [];
    failList = false;
  });

  async function run(argv: string[], env: NodeJS.ProcessEnv = {}) {
    const captured = captureIo();
    const code = await main(argv, captured.io, { backends, env });
    return { code, ...captured };
  }

  it.each<[string[], number, 'out' | 'err', RegExp]>([
    [[], 0, 'out', /^Usage: nest-messaging .*\n[\s\S]*migrate[\s\S]*dlq/],
    [['--help'], 0, 'out', /^Usage: nest-messaging/],
    [['--version'], 0, 'out', /^\d+\.\d+\.\d+/],
    [['dlq', '--help'], 0, 'out', /list[\s\S]*show[\s\S]*replay[\s\S]*purge[\s\S]*Exit codes/],
    [['dlq', 'replay', '--help'], 0, 'out', /--all[\s\S]*--older-than/],
    [['dlq'], 2, 'err', /^Usage: nest-messaging dlq/],
    [['dlq', 'lst'], 2, 'err', /unknown command 'lst'[\s\S]*Did you mean list/],
    [['dlq', 'list'], 2, 'err', /required option '-s, --service <name>' not specified/],
    [['dlq', 'list', '--service', 'p', '--nope'], 2, 'err', /unknown option '--nope'/],
    [['dlq', 'show', '--service', 'p'], 2, 'err', /missing required argument 'id'/],
    [['dlq', 'list', '--service', ' '], 2, 'err', /--service: the name is empty/],
  ])('%j: exit code %d, %s', async (argv, code, stream, text) => {
    const result = await run(argv);
    expect(result.code).toBe(code);
    expect(result[stream].join('\n')).toMatch(text);
    expect(opened).toEqual([]);
  });

  it('shows the filters purge takes', async () => {
    expect((await run(['dlq', 'purge', '--help'])).stdout()).toContain('--topic');
  });

  it.each([
    [['replay'], /Say what to replay: ids, --all, or filters/],
    [['replay', 'x', '--all'], /one way only/],
    [['replay', '--all', '--topic', 'a'], /one way only/],
    [['purge', '--yes', '--older-than', 'soon'], /--older-than: 'soon' is not a duration/],
    [['purge'], /Refusing to purge .* Pass --yes/],
    [['purge', '--error', 'timeout'], /Refusing to purge .* Pass --yes/],
    [['list', '--older-than', 'soon'], /--older-than: 'soon' is not a duration/],
    [['list', '--limit', '0'], /--limit: '0' is not a whole number of at least 1/],
    [['list', '--group-by', 'topic'], /Allowed choices are error/],
    [['list', '--connect-timeout', 'x'], /--connect-timeout/],
  ])('refuses dlq %j with exit code 2, connecting to nothing', async (args, message) => {
    const result = await run(['dlq', ...args, '--service', 'p', '--url', 'memory://local']);
    expect(result.code).toBe(2);
    expect(result.err.join('\n')).toMatch(message);
    expect(result.out).toEqual([]);
    expect(opened).toEqual([]);
  });

  it('refuses an unknown URL scheme, naming the supported ones, without the password', async () => {
    const result = await run(['dlq', 'list', '--service', 'p', '--url', 'redis://app:s3cret@host']);
    expect(result.code).toBe(2);
    expect(result.err).toEqual([
      "error: Broker URL 'redis://app:***@host' has an unsupported scheme 'redis://'. Supported: memory://.",
    ]);
    // No --url: BROKER_URL, then RabbitMQ's default (amqp://, not among these test backends).
    expect((await run(['dlq', 'list', '--service', 'p'])).err[0]).toMatch(
      /'amqp:\/\/guest:\*\*\*@/,
    );
    const fromEnv = await run(['dlq', 'list', '--service', 'p'], { BROKER_URL: 'memory://env' });
    expect(fromEnv).toMatchObject({ code: 0, err: [] });
  });

  it('takes the older --exchange for --namespace, with a line that says so', async () => {
    const old = await run([...dlq, '--exchange', 'shop']);
    expect(old).toMatchObject({
      code: 0,
      err: ['warning: --exchange is deprecated: use --namespace (same value, same meaning).'],
    });
    expect((await run([...dlq, '--namespace', 'shop'])).err).toEqual([]);
    const both = await run([...dlq, '--namespace', 'a', '--exchange', 'b']);
    expect(both.code).toBe(2);
    expect(both.err).toEqual([
      "error: --namespace 'a' and --exchange 'b' name two namespaces: give --namespace only (--exchange is its older name).",
    ]);
  });

  it("picks the backend by the library's URL map when no test backends are given", async () => {
    const captured = captureIo();
    const code = await main(
      ['dlq', 'list', '--service', 'p', '--url', 'kafka://u:pw@h:9092'],
      captured.io,
      { env: {} },
    );
    expect(code).toBe(2);
    expect(captured.err).toEqual([
      "error: Broker URL 'kafka://u:***@h:9092' has an unsupported scheme 'kafka://'. The scheme picks the broker: amqp://, amqps://, redis://, rediss://, nats://, tls://.",
    ]);
  });

  it('reports a failing backend in one line without credentials, exit code 1, and closes it', async () => {
    failList = true;
    const result = await run(dlq);
    expect(result).toMatchObject({ code: 1, out: [], err: ['error: amqp://u:***@h is on fire'] });
    expect(opened.map((b) => b.status)).toEqual(['closed']);
  });
});
