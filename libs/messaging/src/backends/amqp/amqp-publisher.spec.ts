/** The confirm bookkeeping of AmqpPublisher against a scripted confirm channel, without a broker. */
import { EventEmitter } from 'node:events';
import { Logger } from '@nestjs/common';
import type { ChannelModel, ConfirmChannel } from 'amqplib';
import { BackendEventHub } from '../../backend/backend-events';
import {
  BackendClosedError,
  PublishBackpressureError,
  PublishFailedError,
  PublishTimeoutError,
  UnroutableError,
} from '../../errors/messaging.errors';
import { waitFor } from '../../testing/wait-for';
import { resolveAmqpOptions } from './amqp-backend.options';
import type { AmqpConnectionManager } from './amqp-connection';
import { AmqpPublisher } from './amqp-publisher';
import type { PublishCommand } from './amqp-publish-command';

/** A confirm channel that records publishes and confirms (or not) when the test says. */
class ScriptedChannel extends EventEmitter {
  readonly written: Array<{
    routingKey: string;
    messageId?: string;
    confirm?: (err: unknown) => void;
    settled?: boolean;
  }> = [];
  publish(
    exchange: string,
    routingKey: string,
    _content: Buffer,
    properties: { messageId?: string },
    confirm?: (err: unknown) => void,
  ): boolean {
    this.written.push({ routingKey, messageId: properties.messageId, confirm });
    return true;
  }
  /** The channel dies before confirming what it holds (amqplib: `error` if any, then `close`). */
  drop(error?: Error): void {
    if (error) this.emit('error', error);
    for (let n = 0; n < this.written.length; n++) this.settle(n, new Error('channel closed'));
    this.emit('close');
  }
  async close(): Promise<void> {
    this.drop();
  }
  /** Confirms the n-th publish (0-based) with an ack, or a nack when `error` is given. */
  confirm(n: number, error?: Error): void {
    this.settle(n, error ?? null);
  }
  private settle(n: number, error: Error | null): void {
    const w = this.written[n];
    if (w.settled) return;
    w.settled = true;
    w.confirm?.(error);
  }
  /** RabbitMQ's basic.return of the n-th publish, which comes before its confirm. */
  returnIt(n: number): void {
    const { routingKey, messageId } = this.written[n];
    this.emit('return', {
      fields: { exchange: 'messaging', routingKey },
      properties: { messageId },
    });
  }
}

async function setUp(
  options: {
    publishTimeoutMs?: number;
    maxInFlightPublishes?: number;
    maxQueuedPublishes?: number;
  } = {},
) {
  const channels: ScriptedChannel[] = [];
  const conn = {
    createConfirmChannel: async () => {
      channels.push(new ScriptedChannel());
      return channels.at(-1) as unknown as ConfirmChannel;
    },
  } as unknown as ChannelModel;
  const connection = {
    current: conn,
    waitForConnection: async () => conn,
  } as unknown as AmqpConnectionManager;
  const publisher = new AmqpPublisher(
    connection,
    resolveAmqpOptions({
      url: 'amqp://127.0.0.1',
      reconnect: { initialDelayMs: 10, maxDelayMs: 10, multiplier: 1 },
      ...options,
    }),
    new BackendEventHub(),
    new Logger('test'),
    { opened: async () => undefined, closed: () => undefined },
  );
  await publisher.open(conn);
  const channel = channels[0];
  let n = 0;
  const command = (over: Partial<PublishCommand> = {}): PublishCommand => ({
    exchange: 'messaging',
    routingKey: 'order.created',
    content: Buffer.from('{}'),
    properties: { mandatory: true, messageId: `m-${++n}` },
    target: 'order.created',
    ...over,
  });
  return { channel, channels, publisher, command };
}

/** Records how a publish settled, so a test can look without awaiting it. */
function watch(promise: Promise<void>): { state: string; error?: unknown } {
  const seen: { state: string; error?: unknown } = { state: 'pending' };
  promise.then(
    () => (seen.state = 'resolved'),
    (error: unknown) => Object.assign(seen, { state: 'rejected', error }),
  );
  return seen;
}

describe('AmqpPublisher', () => {
  it('resolves on the ack, and rejects on a return before the ack', async () => {
    const { channel, publisher, command } = await setUp();
    const acked = watch(publisher.publish(command()));
    const returned = watch(publisher.publish(command()));
    channel.confirm(0);
    channel.returnIt(1);
    channel.confirm(1);
    await waitFor(() => returned.state !== 'pending');
    expect(acked.state).toBe('resolved');
    expect(returned.error).toBeInstanceOf(UnroutableError);
    await publisher.close();
  });

  it('sends a publish nacked once again on its own channel', async () => {
    const { channel, channels, publisher, command } = await setUp();
    const saved = watch(publisher.publish(command()));
    channel.confirm(0, new Error('message nacked'));
    await waitFor(() => channel.written.length === 2);
    expect(channel.written.map((w) => w.messageId)).toEqual(['m-1', 'm-1']);
    channel.confirm(1);
    await waitFor(() => saved.state !== 'pending');
    expect(saved.state).toBe('resolved');
    expect(channels).toHaveLength(1);
    await publisher.close();
  });

  it('replaces a channel that nacks twice in a row, and fails a publish after four nacks', async () => {
    const { channel, channels, publisher, command } = await setUp();
    const doomed = watch(publisher.publish(command()));
    const other = watch(publisher.publish(command()));
    /** Nacks the latest write of m-1 on `ch`, once it is there. */
    const nackDoomed = async (ch: (typeof channels)[number], writes: number): Promise<void> => {
      await waitFor(() => ch.written.filter((w) => w.messageId === 'm-1').length === writes);
      ch.confirm(
        ch.written.map((w) => w.messageId).lastIndexOf('m-1'),
        new Error('message nacked'),
      );
    };
    await nackDoomed(channel, 1);
    await nackDoomed(channel, 2);
    // Two nacks in a row: a new channel, on which both go again.
    await waitFor(() => channels.length === 2 && channels[1].written.length === 2);
    expect(channels[1].written.map((w) => w.messageId).sort()).toEqual(['m-1', 'm-2']);
    channels[1].confirm(channels[1].written.findIndex((w) => w.messageId === 'm-2'));
    await waitFor(() => other.state !== 'pending');
    expect(other.state).toBe('resolved');
    await nackDoomed(channels[1], 1);
    await nackDoomed(channels[1], 2);
    await waitFor(() => doomed.state !== 'pending');
    expect(doomed.error).toBeInstanceOf(PublishFailedError);
    expect((doomed.error as Error).message).toMatch(/did not accept the publish .*message nacked/);
    await publisher.close();
  });

  it('matches a return to its own publish only', async () => {
    const { channel, publisher, command } = await setUp();
    const first = watch(publisher.publish(command({ routingKey: 'a' })));
    const second = watch(publisher.publish(command({ routingKey: 'b' })));
    channel.returnIt(1);
    channel.confirm(0);
    channel.confirm(1);
    await waitFor(() => second.state !== 'pending');
    expect(first.state).toBe('resolved');
    expect(second.error).toBeInstanceOf(UnroutableError);
    await publisher.close();
  });

  it('forgets the return of a publish that was then nacked', async () => {
    const { channel, publisher, command } = await setUp();
    const again = { properties: { mandatory: true, messageId: 'same' } };
    const nacked = watch(publisher.publish(command(again)));
    channel.returnIt(0);
    channel.confirm(0, new Error('message nacked'));
    // Sent again and routed this time: no stale return makes it unroutable.
    await waitFor(() => channel.written.length === 2);
    channel.confirm(1);
    await waitFor(() => nacked.state !== 'pending');
    expect(nacked.state).toBe('resolved');
    await publisher.close();
  });

  it('says why a publish that was never written timed out', async () => {
    const { channel, publisher, command } = await setUp({
      publishTimeoutMs: 50,
      maxInFlightPublishes: 1,
    });
    const holding = watch(publisher.publish(command({ timeoutMs: 60_000 })));
    const waiting = watch(publisher.publish(command()));
    await waitFor(() => waiting.state !== 'pending', { timeoutMs: 2000 });
    expect(waiting.error).toBeInstanceOf(PublishTimeoutError);
    expect((waiting.error as Error).message).toBe(
      "Could not publish to 'order.created' within 50 ms: 1 publishes (maxInFlightPublishes) await their confirms",
    );
    expect(channel.written).toHaveLength(1);
    await publisher.close();
    await waitFor(() => holding.state !== 'pending');
  });

  it('writes a publish again, same id, on the next channel when its channel dies unconfirmed', async () => {
    const { channel, channels, publisher, command } = await setUp();
    const first = watch(publisher.publish(command()));
    const second = watch(publisher.publish(command()));
    channel.drop(); // the connection was cut: no channel error
    await waitFor(() => channels.length === 2 && channels[1].written.length === 2);
    expect(channels[1].written.map((w) => w.messageId)).toEqual(['m-1', 'm-2']);
    channels[1].confirm(0);
    channels[1].confirm(1);
    await waitFor(() => first.state !== 'pending' && second.state !== 'pending');
    expect([first.state, second.state]).toEqual(['resolved', 'resolved']);
    await publisher.close();
  });

  it('fails the publish a channel error names, and writes the others again', async () => {
    const { channel, channels, publisher, command } = await setUp();
    const doomed = watch(publisher.publish(command({ exchange: 'gone' })));
    const innocent = watch(publisher.publish(command()));
    channel.drop(
      new Error(
        "Channel closed by server: 404 (NOT-FOUND) with message \"NOT_FOUND - no exchange 'gone' in vhost '/'\"",
      ),
    );
    await waitFor(() => doomed.state !== 'pending');
    expect(doomed.error).toBeInstanceOf(PublishFailedError);
    expect((doomed.error as Error).message).toMatch(/no exchange 'gone'/);
    await waitFor(() => channels.length === 2 && channels[1].written.length === 1);
    channels[1].confirm(0);
    await waitFor(() => innocent.state !== 'pending');
    expect(innocent.state).toBe('resolved');
    await publisher.close();
  });

  it('refuses at once a publish beyond maxQueuedPublishes, and takes more once they drain', async () => {
    const { channel, publisher, command } = await setUp({
      maxInFlightPublishes: 1,
      maxQueuedPublishes: 2,
    });
    const done = [0, 1, 2].map(() => watch(publisher.publish(command())));
    const refused = watch(publisher.publish(command()));
    await waitFor(() => refused.state !== 'pending');
    expect(refused.error).toBeInstanceOf(PublishBackpressureError);
    expect((refused.error as Error).message).toMatch(
      /^2 publishes already wait for RabbitMQ \(1 publishes \(maxInFlightPublishes\) await their confirms\); maxQueuedPublishes is 2/,
    );
    for (let n = 0; n < 3; n++) {
      await waitFor(() => channel.written.length === n + 1);
      channel.confirm(n);
    }
    await waitFor(() => done.every((d) => d.state === 'resolved'));
    const later = watch(publisher.publish(command()));
    channel.confirm(3);
    await waitFor(() => later.state === 'resolved');
    await publisher.close();
  });

  it('times out a publish the broker never confirms, and only that one', async () => {
    const { channel, publisher, command } = await setUp({ publishTimeoutMs: 50 });
    const lost = watch(publisher.publish(command()));
    const later = watch(publisher.publish(command()));
    channel.confirm(1);
    await waitFor(() => lost.state !== 'pending', { timeoutMs: 2000 });
    expect(lost.error).toBeInstanceOf(PublishTimeoutError);
    expect((lost.error as Error).message).toMatch(
      /did not confirm the publish to 'order.created' within 50 ms/,
    );
    expect(later.state).toBe('resolved');
    // A command with its own timeout keeps it.
    const own = watch(publisher.publish(command({ timeoutMs: 20 })));
    await waitFor(() => own.state !== 'pending', { timeoutMs: 2000 });
    expect(own.error).toBeInstanceOf(PublishTimeoutError);
    await publisher.close();
  });

  it('holds a publish beyond maxInFlightPublishes until a confirm frees a slot', async () => {
    const { channel, publisher, command } = await setUp({ maxInFlightPublishes: 2 });
    const done = [0, 1, 2].map(() => watch(publisher.publish(command())));
    await waitFor(() => channel.written.length === 2);
    await new Promise((resolve) => setImmediate(resolve));
    expect(channel.written).toHaveLength(2);
    channel.confirm(0);
    await waitFor(() => channel.written.length === 3);
    channel.confirm(1);
    channel.confirm(2);
    await waitFor(() => done.every((d) => d.state === 'resolved'));
    await publisher.close();
  });

  it('fails what is pending on close, and sends without a confirm outside the window', async () => {
    const { channel, publisher, command } = await setUp({ maxInFlightPublishes: 1 });
    const pending = watch(publisher.publish(command()));
    const waiting = watch(publisher.publish(command()));
    expect(publisher.send(command({ routingKey: 'amq.rabbitmq.reply-to.x' }))).toBe(true);
    expect(channel.written.map((w) => w.routingKey)).toEqual([
      'order.created',
      'amq.rabbitmq.reply-to.x',
    ]);
    await publisher.close();
    await waitFor(() => pending.state !== 'pending' && waiting.state !== 'pending');
    expect(pending.error).toBeInstanceOf(BackendClosedError);
    expect(waiting.error).toBeInstanceOf(BackendClosedError);
    expect(publisher.send(command())).toBe(false);
  });
});
