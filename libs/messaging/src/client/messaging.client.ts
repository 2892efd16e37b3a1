import { Inject, Injectable } from '@nestjs/common';
import { ClientProxy, type ReadPacket, type WritePacket } from '@nestjs/microservices';
import type {
  BackendEvents,
  BackendStatus,
  BrokerBackend,
} from '../backend/broker-backend.interface';
import { MESSAGING_BACKEND } from '../messaging.constants';
import { MessagingPublisher } from '../producer/messaging.publisher';

/**
 * A Nest `ClientProxy` over the configured broker: `emit(topic, data)` publishes an event (and
 * completes once the broker confirmed it), `send(topic, data)` makes a request and emits the
 * handler's return value. The connection belongs to `MessagingModule`, so `close()` leaves it open.
 *
 * @example
 * constructor(private readonly client: MessagingClient) {}
 * await lastValueFrom(this.client.emit('order.created', order));
 * const total = await lastValueFrom(this.client.send<number>('cart.total', { cartId }));
 */
@Injectable()
export class MessagingClient extends ClientProxy<BackendEvents, BackendStatus> {
  constructor(
    private readonly publisher: MessagingPublisher,
    @Inject(MESSAGING_BACKEND) private readonly backend: BrokerBackend,
  ) {
    super();
    this._status$.next(backend.status);
    backend.on('status', (status) => this._status$.next(status));
  }

  connect(): Promise<void> {
    return this.backend.connect();
  }

  /** Leaves the shared connection open: the module closes it on application shutdown. */
  close(): void {}

  override on<K extends keyof BackendEvents, C extends BackendEvents[K]>(
    event: K,
    callback: C,
  ): void {
    this.backend.on(event, callback);
  }

  unwrap<T>(): T {
    return this.backend as T;
  }

  protected publish(packet: ReadPacket, callback: (packet: WritePacket) => void): () => void {
    let cancelled = false;
    this.publisher.request(this.toTarget(packet.pattern), packet.data).then(
      (response) => !cancelled && callback({ response, isDisposed: true }),
      (err: unknown) => !cancelled && callback({ err, isDisposed: true }),
    );
    return () => {
      cancelled = true;
    };
  }

  protected async dispatchEvent<T = unknown>(packet: ReadPacket): Promise<T> {
    await this.publisher.publish(this.toTarget(packet.pattern), packet.data);
    return undefined as T;
  }

  private toTarget(pattern: unknown): { topic: string } {
    return {
      topic: typeof pattern === 'string' ? pattern : this.normalizePattern(pattern as never),
    };
  }
}
