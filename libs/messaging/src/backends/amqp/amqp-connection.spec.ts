/**
 * AmqpConnectionManager against a scripted amqplib, without a broker: the reconnection order, and
 * what a failed attempt reports.
 */
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
      { setup: async () => undefined, lost: () => undefined, errorsHeard: () => true },
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
        { setup: async () => undefined, lost: () => undefined, errorsHeard: () => true },
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

describe('AmqpConnectionManager: what a failed attempt tells', () => {
  /** A manager whose every attempt fails with `error` (after `delayMs`), logging into `warnings`. */
  function failing(error: Error, { heard = false, connectTimeoutMs = 60_000, delayMs = 0 } = {}) {
    const warnings: string[] = [];
    const emitted: Error[] = [];
    const hub = new BackendEventHub();
    hub.on('error', (e) => emitted.push(e));
    const logger = { warn: (line: string) => warnings.push(line), log: () => undefined };
    const manager = new AmqpConnectionManager(
      {
        connect: () =>
          new Promise<ChannelModel>((_resolve, reject) => setTimeout(() => reject(error), delayMs)),
      },
      resolveAmqpOptions({
        url: 'amqp://app:pa55word@rabbit.internal:5672/orders',
        connectTimeoutMs,
        reconnect: { initialDelayMs: 20, maxDelayMs: 20, multiplier: 1 },
      }),
      hub,
      logger as unknown as Logger,
      { setup: async () => undefined, lost: () => undefined, errorsHeard: () => heard },
    );
    return { manager, warnings, emitted };
  }
  const notFound = Object.assign(new Error('getaddrinfo ENOTFOUND rabbit.internal'), {
    code: 'ENOTFOUND',
  });

  it('logs every failed attempt at once, with the host, the cause and the fix, when nothing listens', async () => {
    const { manager, warnings, emitted } = failing(notFound, { connectTimeoutMs: 1_000 });
    let settled = false;
    const connecting = manager.connect().finally(() => (settled = true));
    await waitFor(() => warnings.length >= 2);
    expect(settled).toBe(false);
    expect(warnings[0]).toBe(
      'connecting to amqp://app:***@rabbit.internal:5672/orders: getaddrinfo ENOTFOUND rabbit.internal. ' +
        "The host name 'rabbit.internal' does not resolve: check the host in the URL.",
    );
    expect(emitted.map((e) => e.message)).toEqual(warnings.slice(0, emitted.length));
    await expect(connecting).rejects.toThrow(
      /^Could not connect to RabbitMQ at amqp:\/\/app:\*\*\*@rabbit\.internal:5672\/orders within 1000 ms\. Last error: .*ENOTFOUND.*check the host in the URL\.$/,
    );
    expect(warnings.join('\n')).not.toContain('pa55word');
    await manager.close();
  });

  it('leaves failed attempts to the error listeners when there are some', async () => {
    const { manager, warnings, emitted } = failing(notFound, {
      heard: true,
      connectTimeoutMs: 300,
    });
    await expect(manager.connect()).rejects.toThrow(/check the host in the URL/);
    expect(emitted.length).toBeGreaterThan(0);
    expect(warnings).toEqual([]);
    await manager.close();
  });

  it('fails at once on a virtual host RabbitMQ refuses, saying how to create it and grant it', async () => {
    const { manager } = failing(
      new Error('Expected ConnectionOpenOk; got <ConnectionClose channel:0>'),
    );
    const started = Date.now();
    await expect(manager.connect()).rejects.toThrow(
      /^Could not connect to RabbitMQ at amqp:\/\/app:\*\*\*@rabbit\.internal:5672\/orders: .*virtual host 'orders' for user 'app'.*`rabbitmqctl add_vhost orders`.*`rabbitmqctl set_permissions -p orders app '\.\*' '\.\*' '\.\*'`.* Retrying will not help\.$/,
    );
    // Not after connectTimeoutMs (60 s): the first answer tells it all.
    expect(Date.now() - started).toBeLessThan(5_000);
    await manager.close();
  });

  it('says that nothing answered when no attempt finished within connectTimeoutMs', async () => {
    const { manager } = failing(new Error('connect ETIMEDOUT'), {
      connectTimeoutMs: 200,
      delayMs: 1_000,
    });
    await expect(manager.connect()).rejects.toThrow(
      /within 200 ms\. No attempt got an answer: check the host and port, and that no firewall drops the connection\.$/,
    );
    await manager.close();
  });
});
