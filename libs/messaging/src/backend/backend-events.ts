import type { BackendEvents, BackendStatus } from './broker-backend.interface';

/**
 * Typed listeners and status tracking that every backend needs; a backend owns one and
 * delegates `on()` and `status` to it.
 */
export class BackendEventHub {
  private readonly listeners: { [E in keyof BackendEvents]: Set<BackendEvents[E]> } = {
    status: new Set(),
    error: new Set(),
  };
  private current: BackendStatus = 'disconnected';

  get status(): BackendStatus {
    return this.current;
  }

  on<E extends keyof BackendEvents>(event: E, listener: BackendEvents[E]): () => void {
    const set = this.listeners[event] as Set<BackendEvents[E]>;
    set.add(listener);
    return () => set.delete(listener);
  }

  setStatus(status: BackendStatus): void {
    if (status === this.current) return;
    this.current = status;
    for (const listener of this.listeners.status) listener(status);
  }

  /** Reports an error to listeners; with none registered it is dropped (never thrown). */
  emitError(error: Error): void {
    for (const listener of this.listeners.error) listener(error);
  }
}
