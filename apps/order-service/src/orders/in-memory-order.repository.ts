import type { Order } from './order';
import type { OrderRepository } from './order.repository';

/** Orders in a map: for the demo, tests and a single-instance service. Lost on restart. */
export class InMemoryOrderRepository implements OrderRepository {
  private readonly orders = new Map<string, Order>();

  async save(order: Order): Promise<void> {
    this.orders.set(order.id, order);
  }

  async findById(id: string): Promise<Order | undefined> {
    return this.orders.get(id);
  }

  async delete(id: string): Promise<void> {
    this.orders.delete(id);
  }

  async findAll(): Promise<Order[]> {
    return [...this.orders.values()];
  }
}
