import { Controller, NotFoundException } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';
import { DeadLetterService } from '../dead-letters/dead-letter.service';
import { Consume } from '../decorators/consume.decorator';
import {
  RemoteHandlerError,
  RequestTimeoutError,
  UnroutableError,
} from '../errors/messaging.errors';
import { type ContractHarness, FAST_RETRY } from './contract-harness';
import { gate, waitFor } from './wait-for';

/**
 * The request half of the backend contract: a request is answered with the handler's return value,
 * its error (typed, never its stack) or a timeout; a volatile request reaches only instances
 * consuming now (refused at once when there are none), a durable one waits in the queue for the
 * next; a request whose caller stopped waiting is never run.
 */
export function describeRequestContract(h: ContractHarness): void {
  const { unique, start, publisherOf } = h;

  it('answers requests with the return value, the handler error, or a timeout', async () => {
    const { service, topic } = unique();
    const slow = gate();
    @Controller()
    class Handler {
      @Consume(`${topic}.sum`)
      sum(@Payload() numbers: number[]): number {
        return numbers.reduce((a, b) => a + b, 0);
      }

      @Consume(`${topic}.fail`, { retry: FAST_RETRY })
      fail(): never {
        throw new Error('cannot compute');
      }

      @Consume(`${topic}.slow`)
      async slow(): Promise<string> {
        await slow.promise;
        return 'late';
      }

      @Consume(`${topic}.typed`)
      typed(@Payload() kind: string): never {
        if (kind === 'http') throw new NotFoundException({ message: 'no cart c1', cartId: 'c1' });
        throw Object.assign(new Error('no stock'), {
          code: 'OUT_OF_STOCK',
          status: 409,
          details: { sku: 'A-1' },
        });
      }
    }
    const app = await start(service, [Handler]);
    const publisher = publisherOf(app);
    await expect(publisher.request({ topic: `${topic}.sum` }, [1, 2, 3])).resolves.toBe(6);
    await expect(publisher.request({ topic: `${topic}.fail` }, {})).rejects.toMatchObject({
      constructor: RemoteHandlerError,
      message: 'cannot compute',
      remoteErrorClass: 'Error',
    });
    // Typed errors (SPEC §5): what the handler's error says of itself, never its stack.
    const typed = (kind: string) =>
      publisher.request({ topic: `${topic}.typed` }, kind).then(
        () => undefined,
        (error: unknown) => error as RemoteHandlerError,
      );
    const own = await typed('own');
    expect(own).toBeInstanceOf(RemoteHandlerError);
    expect({ ...own, message: own?.message }).toEqual({
      code: 'REMOTE_HANDLER_ERROR',
      name: 'RemoteHandlerError',
      message: 'no stock',
      remoteErrorClass: 'Error',
      remoteCode: 'OUT_OF_STOCK',
      status: 409,
      details: { sku: 'A-1' },
    });
    expect(await typed('http')).toMatchObject({
      message: 'no cart c1',
      remoteErrorClass: 'NotFoundException',
      status: 404,
      details: { message: 'no cart c1', cartId: 'c1' },
    });
    await expect(
      publisher.request({ topic: `${topic}.slow` }, {}, { timeoutMs: 200 }),
    ).rejects.toBeInstanceOf(RequestTimeoutError);
    slow.open();
    await expect(publisher.request({ topic: `${topic}.nobody` }, {})).rejects.toBeInstanceOf(
      UnroutableError,
    );
    expect(await app.get(DeadLetterService).list()).toEqual([]);
  });

  it('sends a volatile request only to instances consuming now, a durable one to the queue', async () => {
    const { service, topic } = unique();
    @Controller()
    class Handler {
      @Consume(topic)
      echo(@Payload() text: string): string {
        return `echo ${text}`;
      }
    }
    const first = await start(service, [Handler]);
    const caller = publisherOf(await start(`${service}-caller`, []));
    await expect(caller.request({ topic }, 'a')).resolves.toBe('echo a');
    await first.close();
    h.forget(first);
    // Nobody consumes now: refused at once (not a timeout), whatever the timeout.
    await expect(caller.request({ topic }, 'b', { timeoutMs: 30_000 })).rejects.toBeInstanceOf(
      UnroutableError,
    );
    // A durable request waits in the handler's queue for the next instance.
    const waiting = caller.request({ topic }, 'c', { durable: true, timeoutMs: 15_000 });
    await start(service, [Handler]);
    await expect(waiting).resolves.toBe('echo c');
    await expect(caller.request({ topic }, 'd')).resolves.toBe('echo d');
  });

  it('never runs a request whose caller stopped waiting', async () => {
    const { service, topic } = unique();
    const busy = gate();
    const ran: string[] = [];
    @Controller()
    class Handler {
      @Consume(topic, { concurrency: 1 })
      async handle(@Payload() name: string): Promise<string> {
        ran.push(name);
        if (name === 'first') await busy.promise;
        return name;
      }
    }
    const app = await start(service, [Handler]);
    const publisher = publisherOf(app);
    const first = publisher.request<string>({ topic }, 'first', { timeoutMs: 10_000 });
    await waitFor(() => ran.length === 1);
    // Queued behind the first, whose handler is busy: their callers give up before they are
    // reached. The second one's wait makes sure the first one's deadline is past, whatever the
    // timers' precision; it may itself be reached just in time, so only the first is checked.
    for (const name of ['abandoned', 'probe']) {
      await expect(publisher.request({ topic }, name, { timeoutMs: 100 })).rejects.toBeInstanceOf(
        RequestTimeoutError,
      );
    }
    busy.open();
    await expect(first).resolves.toBe('first');
    await expect(publisher.request({ topic }, 'last', { timeoutMs: 10_000 })).resolves.toBe('last');
    expect(ran.filter((name) => name !== 'probe')).toEqual(['first', 'last']);
  });
}
