import type { Order } from './order';

/** Injection token of the {@link OrderRepository}. */
export const ORDER_REPOSITORY = Symbol('ORDER_REPOSITORY');

/**
 * Where orders are kept. The service depends on this interface only, so a database-backed
 * implementation replaces the in-memory one without touching the service.
 */
export interface OrderRepository {
  save(order: Order): Promise<void>;
  findById(id: string): Promise<Order | undefined>;
  delete(id: string): Promise<void>;
  findAll(): Promise<Order[]>;
}
