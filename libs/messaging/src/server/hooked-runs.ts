import type { BaseRpcContext, MessageHandler } from '@nestjs/microservices';
import { isObservable, lastValueFrom } from 'rxjs';
import type { Delivery } from '../backend/broker-backend.interface';
import type { ServedRoute } from './served-routes';

/** The server's `runWithProcessingHooks` (Nest's `Server`), looked up at each call. */
export type ProcessingHooks = (
  context: BaseRpcContext,
  fn: (runEndHook: () => void) => Promise<void>,
) => unknown;

/**
 * Runs handlers between Nest's processing start and end hooks (SPEC §2: APM agents hook them, some by
 * replacing `Server.prototype.runWithProcessingHooks` before the library loads, so the server hands
 * its own method over, called each time), and gives up on those still running when shutdown says so.
 */
export class HookedRuns {
  /**
   * The `reject` of each run in progress. When `close()` gives up waiting, it rejects them with the
   * abort's reason: their deliveries are handed back to the broker at once (`requeue`), not
   * acknowledged whenever the handler ends.
   */
  private readonly running = new Set<(reason: unknown) => void>();

  constructor(
    private readonly hooks: ProcessingHooks,
    /** Aborted when `close()` gave up waiting for handlers. */
    private readonly stopping: AbortSignal,
  ) {}

  /** Rejects every run in progress with `reason`. */
  abandon(reason: unknown): void {
    for (const reject of this.running) reject(reason);
    this.running.clear();
  }

  /**
   * Runs `route`'s handler for `delivery` in the delivery's trace (a span, `currentMessage()`) when
   * there is one to keep, else as it is: a delivery nobody traces pays for neither.
   */
  traced(route: ServedRoute, delivery: Delivery, ctx: BaseRpcContext, payload: unknown) {
    const { tracer, options } = route.via;
    if (!tracer.handles(delivery)) return this.run(ctx, route.handler, payload);
    return tracer.handle(delivery, route.name, options.service, () =>
      this.run(ctx, route.handler, payload),
    );
  }

  /**
   * Runs `handler` between Nest's processing start and end hooks and resolves with its result: the
   * value of the promise Nest's handler proxy returns or, from an interceptor or a handler that returns
   * one, the last value of an Observable.
   */
  run(ctx: BaseRpcContext, handler: MessageHandler, payload: unknown): Promise<unknown> {
    // Reached only now (after an inbox claim, say) while close() already gave up: not run at all.
    if (this.stopping.aborted) return Promise.reject(this.stopping.reason as Error);
    return new Promise<unknown>((resolve, reject) => {
      this.running.add(reject);
      const started = this.hooks(ctx, (runEndHook) => {
        const done = (result: unknown): void => {
          this.running.delete(reject);
          runEndHook();
          resolve(result);
        };
        const failed = (error: unknown): void => {
          this.running.delete(reject);
          runEndHook();
          // Whatever was thrown (Nest's filters may turn it into a plain object) goes to the retry policy.
          // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
          reject(error);
        };
        const onValue = (value: unknown): Promise<void> | void =>
          isObservable(value)
            ? lastValueFrom(value, { defaultValue: undefined }).then(done, failed)
            : done(value);
        try {
          const returned = handler(payload, ctx) as unknown;
          return returned instanceof Promise
            ? returned.then(onValue, failed)
            : Promise.resolve(onValue(returned));
        } catch (error) {
          failed(error);
          return Promise.resolve();
        }
      });
      // A start hook may return the promise of `done`; it only rejects if the hook itself failed.
      if (started instanceof Promise)
        started.catch((error: unknown) => {
          this.running.delete(reject);
          // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
          reject(error);
        });
    });
  }
}
