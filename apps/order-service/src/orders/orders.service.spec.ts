import { Logger, ServiceUnavailableException } from '@nestjs/common';
import {
  InMemoryBackend,
  InMemoryMessageStore,
  type MessageProducer,
  MessagingTransactions,
  UnrecoverableError,
  UnroutableError,
} from '@app/messaging';
import { InMemoryOrderRepository } from './in-memory-order.repository';
import type { OrderCreatedEvent } from './order';
import { OrdersService } from './orders.service';

/** A producer double: records what was published, or fails with `error`. */
function producer(
  error?: Error,
): MessageProducer<OrderCreatedEvent> & { published: OrderCreatedEvent[] } {
  const published: OrderCreatedEvent[] = [];
  return {
    published,
    publish: async (event: OrderCreatedEvent) => {
      if (error) throw error;
      published.push(event);
      return 'message-id';
    },
  } as unknown as MessageProducer<OrderCreatedEvent> & { published: OrderCreatedEvent[] };
}

/** OrdersService without a database: `order.created` is published at once. */
function inMemory(
  repository: InMemoryOrderRepository,
  orderCreated: MessageProducer<OrderCreatedEvent>,
): OrdersService {
  return new OrdersService(
    repository,
    orderCreated,
    new MessagingTransactions(new InMemoryMessageStore(), new InMemoryBackend()),
    false,
  );
}

const DTO = { customerId: 'c1', amount: 12.5, cardToken: 'tok_ok' };

describe('OrdersService', () => {
  beforeAll(() => Logger.overrideLogger(false));

  it('keeps a PENDING order and publishes order.created with it', async () => {
    const repository = new InMemoryOrderRepository();
    const orderCreated = producer();
    const order = await inMemory(repository, orderCreated).place(DTO);
    expect(order).toMatchObject({ status: 'PENDING', ...DTO });
    expect(orderCreated.published).toEqual([{ orderId: order.id, ...DTO }]);
    expect(await repository.findById(order.id)).toEqual(order);
  });

  it('with a database, saves the order and writes order.created in one transaction (the outbox)', async () => {
    const repository = new InMemoryOrderRepository();
    const transactions = new MessagingTransactions(
      new InMemoryMessageStore(),
      new InMemoryBackend(),
    );
    const inTransaction: boolean[] = [];
    const orderCreated = {
      publish: async () => {
        inTransaction.push(transactions.active);
        return 'message-id';
      },
    } as unknown as MessageProducer<OrderCreatedEvent>;
    const order = await new OrdersService(repository, orderCreated, transactions, true).place(DTO);
    expect(inTransaction).toEqual([true]);
    expect(await repository.findById(order.id)).toEqual(order);
  });

  it.each([
    [
      'nobody consumes order.created',
      new UnroutableError('order.created'),
      /no service consumes 'order.created'/,
    ],
    [
      'the broker does not confirm',
      new Error('publish timed out'),
      /did not confirm 'order.created' \(publish timed out\)/,
    ],
  ])('refuses the order with a 503 and keeps nothing when %s', async (_case, error, message) => {
    const repository = new InMemoryOrderRepository();
    const placing = inMemory(repository, producer(error)).place(DTO);
    await expect(placing).rejects.toBeInstanceOf(ServiceUnavailableException);
    await expect(placing).rejects.toThrow(message);
    expect(await repository.findAll()).toEqual([]);
  });

  it('moves a PENDING order to its final status once; a duplicate or a late conflicting event changes nothing', async () => {
    const repository = new InMemoryOrderRepository();
    const service = inMemory(repository, producer());
    const { id } = await service.place(DTO);

    expect(await service.markPaid(id, 'pay_1', 1)).toBe('applied');
    const paid = await service.get(id);
    expect(paid).toMatchObject({ status: 'PAID', paymentId: 'pay_1' });

    expect(await service.markPaid(id, 'pay_1', 1)).toBe('duplicate');
    expect(await service.markPaymentFailed(id, 'late', 1)).toBe('ignored');
    expect(await service.markPaid(id, 'pay_2', 1)).toBe('duplicate');
    expect(await service.get(id)).toEqual(paid);
  });

  it('records the decline reason on PAYMENT_FAILED', async () => {
    const service = inMemory(new InMemoryOrderRepository(), producer());
    const { id } = await service.place(DTO);
    expect(await service.markPaymentFailed(id, 'card declined', 1)).toBe('applied');
    expect(await service.get(id)).toMatchObject({
      status: 'PAYMENT_FAILED',
      failureReason: 'card declined',
    });
  });

  it('throws UnrecoverableError for an unknown order, so its event is dead-lettered without retries', async () => {
    const service = inMemory(new InMemoryOrderRepository(), producer());
    await expect(service.markPaid('nope', 'pay_1', 1)).rejects.toBeInstanceOf(UnrecoverableError);
  });
});
