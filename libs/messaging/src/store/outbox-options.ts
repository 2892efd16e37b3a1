/** Options of the outbox relay (`MessagingModule.forRoot({ outbox })`). */
export interface OutboxOptions {
  /** Run the relay in this instance. Turn it off in instances that only write. @default true */
  relay?: boolean;
  /** How often to look for messages written by other instances or left by a crash. @default 1000 */
  pollIntervalMs?: number;
  /** Messages per relay transaction. @default 100 */
  batchSize?: number;
  /** Longest wait before a message whose publish failed is tried again. @default 30000 */
  maxBackoffMs?: number;
}

export interface ResolvedOutboxOptions {
  readonly relay: boolean;
  readonly pollIntervalMs: number;
  readonly batchSize: number;
  readonly maxBackoffMs: number;
}
