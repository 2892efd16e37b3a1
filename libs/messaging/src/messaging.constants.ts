/** Transport id of `MessagingServer`: `@Consume` handlers are claimed by it alone. */
export const MESSAGING_TRANSPORT = Symbol('messaging-transport');

/** Injection token of the resolved module options. */
export const MESSAGING_OPTIONS = Symbol('MESSAGING_OPTIONS');

/** Injection token of the `BrokerBackend` in use. */
export const MESSAGING_BACKEND = Symbol('MESSAGING_BACKEND');

/** Metadata key of `@Consume` on a handler method. */
export const CONSUME_METADATA = 'messaging:consume';

/** Injection token of the `MessageStore` (inbox and outbox) in use. */
export const MESSAGING_STORE = Symbol('MESSAGING_STORE');

/** The injection token of the connection called `name` (one per `MessagingModule.forRoot()`). */
export function connectionToken(name: string): string {
  return `MessagingConnection(${name})`;
}
