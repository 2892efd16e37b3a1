import type { BrokerBackend } from '../backend/broker-backend.interface';
import type { MessageStore } from './message-store';
import { inStoreTransaction } from './transactions';
import type { MessagingInstruments } from '../observability/messaging-metrics';

/** What {@link Inbox.once} did: ran the work, or skipped a message handled before. */
export type InboxOutcome<T> =
  { readonly duplicate: false; readonly result: T } | { readonly duplicate: true };

/**
 * Consumer-side deduplication: runs a handler at most once per service, route and message id while
 * the store remembers the id (`ttlMs`). The claim, the handler's writes through the transaction and
 * its outbox messages commit together; a handler that throws rolls them back, releasing the id for
 * the retry. A concurrent duplicate waits for the first and is then skipped.
 */
export class Inbox {
  constructor(
    private readonly store: MessageStore,
    private readonly backend: BrokerBackend,
    private readonly service: string,
    private readonly ttlMs: number,
    private readonly instruments?: MessagingInstruments,
  ) {}

  once<T>(route: string, messageId: string, work: () => Promise<T>): Promise<InboxOutcome<T>> {
    return inStoreTransaction(
      this.store,
      this.backend,
      async (tx): Promise<InboxOutcome<T>> => {
        const claimed = await tx.claim({ service: this.service, route, messageId }, this.ttlMs);
        if (!claimed) return { duplicate: true };
        return { duplicate: false, result: await work() };
      },
      this.instruments,
    );
  }
}
