import { redactCredentials } from './redact-credentials';

describe('redactCredentials', () => {
  it.each([
    // A password: the user name stays.
    ['amqp://app:s3cret@rabbit:5672', 'amqp://app:***@rabbit:5672'],
    ['amqps://u:p@h/v', 'amqps://u:***@h/v'],
    ['redis://default:pw@127.0.0.1:6379/2', 'redis://default:***@127.0.0.1:6379/2'],
    ['rediss://:only-a-password@cache:6380', 'rediss://:***@cache:6380'],
    ['nats://alice:s3cr3t@h:4222', 'nats://alice:***@h:4222'],
    // A token (no ':'): all of it.
    ['nats://s3cr3t-token@nats:4222', 'nats://***@nats:4222'],
    ['tls://tok@h2', 'tls://***@h2'],
    ['amqp://guest@host', 'amqp://***@host'],
    // Unencoded passwords: to the URL's last '@', through '@', '/', ':', '#', spaces and quotes.
    ['amqp://app:s3cr@t@rabbit:5672', 'amqp://app:***@rabbit:5672'],
    [
      "'amqp://app:pa/ss:w@rd@rabbit/v' is not a valid URL",
      "'amqp://app:***@rabbit/v' is not a valid URL",
    ],
    ['amqp://u:pa ss@host:5672 failed', 'amqp://u:***@host:5672 failed'],
    ['nats://a:p@ss/w#rd@h:1', 'nats://a:***@h:1'],
    [`at 'amqps://user:pw'q"r\`s@localhost:5671' now`, "at 'amqps://user:***@localhost:5671' now"],
    // Every URL of a text, and nothing else.
    [
      'to nats://alice:s3cr3t@h:4222, tls://tok@h2 and nats://h3:4222',
      'to nats://alice:***@h:4222, tls://***@h2 and nats://h3:4222',
    ],
    ['amqp://a:1@x and redis://b:2@y', 'amqp://a:***@x and redis://b:***@y'],
    [
      'see http://host/docs or mail ops@example.com',
      'see http://host/docs or mail ops@example.com',
    ],
    ['no URL here: user:pass@host', 'no URL here: user:pass@host'],
    ['', ''],
  ])('%j → %j', (text, redacted) => {
    expect(redactCredentials(text)).toBe(redacted);
  });

  it('never lets a password through, whatever it holds', () => {
    for (const password of [
      'with space',
      'p@ss@word',
      'p:a:ss',
      'sl/ash/',
      'ha#sh?q=1',
      'üñí©ødé',
    ]) {
      for (const scheme of ['amqp', 'redis', 'nats', 'tls']) {
        const text = `connecting to ${scheme}://user:${password}@host:1 failed`;
        expect(redactCredentials(text)).toBe(`connecting to ${scheme}://user:***@host:1 failed`);
      }
    }
  });
});
