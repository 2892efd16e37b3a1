/** The reconnection order of AmqpConnectionManager, against a scripted amqplib without a broker. */
import { EventEmitter } from 'node:events';
import { Logger } from '@nestjs/common';
import type { ChannelModel } from 'amqplib';
import { BackendEventHub } from '../../backend/backend-events';
import { waitFor } from '../../testing/wait-for';
import { resolveAmqpOptions } from './amqp-backend.options';
import { AmqpConnectionManager } from './amqp-connection';

/** amqplib whose connections open at once to the URLs listed as up, and can be dropped. */
function scriptedAmqplib(up: Set<string>) {
  const tried: string[] = [];
  const open = new Map<string, EventEmitter>();
  return {
    tried,
    drop: (host: string) => open.get(host)?.emit('close'),
    amqplib: {
      connect: async (url: string): Promise<ChannelModel> => {
        const host = new URL(url).host;
        tried.push(host);
        if (!up.has(host)) throw new Error(`connect ECONNREFUSED ${host}`);
        const conn = Object.assign(new EventEmitter(), { close: async () => undefined });
        open.set(host, conn);
        return conn as unknown as ChannelModel;
      },
    },
  };
}

describe('AmqpConnectionManager', () => {
  it('fails over to the next URL first when the connection is lost', async () => {
    const up = new Set(['a:5672', 'b:5672', 'c:5672']);
    const broker = scriptedAmqplib(up);
    const manager = new AmqpConnectionManager(
      broker.amqplib,
      resolveAmqpOptions({
        urls: ['amqp://a:5672', 'amqp://b:5672', 'amqp://c:5672'],
        reconnect: { initialDelayMs: 10, maxDelayMs: 10, multiplier: 1 },
      }),
      new BackendEventHub(),
      new Logger('test'),
      { setup: async () => undefined, lost: () => undefined },
    );
    await manager.connect();
    expect(broker.tried).toEqual(['a:5672']);
    // Node a goes away: b is tried first, not a again.
    up.delete('a:5672');
    broker.drop('a:5672');
    await waitFor(() => manager.current !== undefined && broker.tried.length === 2);
    expect(broker.tried).toEqual(['a:5672', 'b:5672']);
    // Then b: c is next, and a (still down) only after it.
    up.delete('b:5672');
    broker.drop('b:5672');
    await waitFor(() => manager.current !== undefined && broker.tried.length === 3);
    expect(broker.tried).toEqual(['a:5672', 'b:5672', 'c:5672']);
    await manager.close();
  });

  it('gives up at once on a login every URL refuses, and keeps trying when a broker is down', async () => {
    const make = (message: string, connectTimeoutMs: number) =>
      new AmqpConnectionManager(
        {
          connect: async () => {
            throw new Error(message);
          },
        },
        resolveAmqpOptions({
          urls: ['amqp://app:secret@a:5672', 'amqp://app:secret@b:5672'],
          connectTimeoutMs,
          reconnect: { initialDelayMs: 10, maxDelayMs: 10, multiplier: 1 },
        }),
        new BackendEventHub(),
        new Logger('test'),
        { setup: async () => undefined, lost: () => undefined },
      );
    const refused = make(
      'Handshake terminated by server: 403 (ACCESS-REFUSED) with message "ACCESS_REFUSED - Login was refused"',
      60_000,
    );
    // Well before connectTimeoutMs (60 s): the first round tells it all.
    await expect(refused.connect()).rejects.toThrow(
      /^Could not connect to RabbitMQ at amqp:\/\/app:\*\*\*@a:5672, amqp:\/\/app:\*\*\*@b:5672: .*ACCESS_REFUSED.*Retrying will not help/,
    );
    await refused.close();
    const down = make('connect ECONNREFUSED 127.0.0.1:5672', 300);
    await expect(down.connect()).rejects.toThrow(/within 300 ms\. Last error: .*ECONNREFUSED/);
    await down.close();
  });
});
