import { MessagingConfigError } from '../errors/messaging.errors';
import { loadBrokerClient } from './broker-client';

describe('loadBrokerClient: a missing client says what to install', () => {
  it('returns what it loaded, in order', () => {
    expect(loadBrokerClient('X', ['a', 'b'], (id) => `module ${id}`)).toEqual([
      'module a',
      'module b',
    ]);
  });

  it.each([
    [['ioredis'], "RedisStreamsBackend needs the 'ioredis' package: run `npm install ioredis`."],
    [
      ['@nats-io/transport-node', '@nats-io/jetstream'],
      "RedisStreamsBackend needs the '@nats-io/transport-node' and '@nats-io/jetstream' packages: " +
        'run `npm install @nats-io/transport-node @nats-io/jetstream`.',
    ],
  ])('names %j to install and why the load failed, keeping the cause', (packages, needs) => {
    const missing = new Error("Cannot find module 'x'\nRequire stack:\n- /app/main.js");
    let thrown: unknown;
    try {
      loadBrokerClient('RedisStreamsBackend', packages, () => {
        throw missing;
      });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(MessagingConfigError);
    expect((thrown as Error).message).toBe(`${needs} (Cannot find module 'x')`);
    expect((thrown as Error).cause).toBe(missing);
  });
});
