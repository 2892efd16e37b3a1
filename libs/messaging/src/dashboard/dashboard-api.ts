/**
 * The JSON the dashboard's page reads from its server, under the dashboard's `path` (default
 * `/messaging`). The page (`page/`) and the controller agree on these shapes only.
 *
 * | method and path                         | answers                                      | notes |
 * | --------------------------------------- | -------------------------------------------- | ----- |
 * | GET  `{path}`                           | the page (text/html)                         | carries the CSRF token in `<meta name="csrf-token">` |
 * | GET  `{path}/assets/app.js`, `app.css`  | the page's script and style                  | same origin: nothing loaded from elsewhere |
 * | GET  `{path}/api/overview`              | {@link DashboardOverview}                    | polled by the page |
 * | GET  `{path}/api/dead-letters`          | {@link DeadLetterGroups}                     | `?topic=&error=&q=` filters |
 * | GET  `{path}/api/dead-letters/:id`      | {@link DeadLetterDetail}                     | 404 when gone |
 * | POST `{path}/api/dead-letters/:id/replay` | `{ replayed: boolean }`                    | 404 when gone |
 * | POST `{path}/api/groups/:fingerprint/replay` | {@link DashboardJob}                    | a job: the page polls it |
 * | POST `{path}/api/groups/:fingerprint/purge`  | {@link DashboardJob}                    | body `{ "confirm": "<fingerprint>" }` |
 * | GET  `{path}/api/jobs/:id`              | {@link DashboardJob}                         | progress of a long replay or purge |
 *
 * Every POST needs the header `x-csrf-token` equal to the page's token (403 otherwise), and is
 * refused (403) in `readOnly` mode. Every answer passes the module's guard first.
 */

/** The header every POST carries: the page's CSRF token. */
export const CSRF_HEADER = 'x-csrf-token';

/** `GET {path}/api/overview`. */
export interface DashboardOverview {
  readonly service: string;
  /** ISO time the answer was made. */
  readonly generatedAt: string;
  readonly readOnly: boolean;
  /** Each connection (`forRoot({ name })`; `default` first) and its broker. */
  readonly connections: readonly DashboardConnection[];
  readonly handlers: readonly DashboardHandler[];
  /** The outbox, when the app has one in use: messages waiting, and the last publish error. */
  readonly outbox?: { readonly backlog: number; readonly lastError?: string };
  /**
   * Dead letters of the service across its connections; `error` when the broker could not list them
   * (the counts are 0 then).
   */
  readonly deadLetters: {
    readonly total: number;
    readonly groups: number;
    readonly error?: string;
  };
}

export interface DashboardConnection {
  readonly name: string;
  /** The backend's name: `memory`, `amqp`, `redis`, `nats`. */
  readonly backend: string;
  /** The backend's status: `connected`, `connecting`, `reconnecting`, `closed`, ... */
  readonly status: string;
  /** Health of the connection: `up` or `down`. */
  readonly health: 'up' | 'down';
  readonly blocked?: boolean;
}

export interface DashboardHandler {
  /** `Class.method` */
  readonly name: string;
  /** The topic (pattern) it consumes, or undefined for a named queue. */
  readonly topic?: string;
  readonly queue: string;
  readonly connection: string;
  readonly concurrency: number;
  /** `attached` (consuming), `paused`, `circuit-open`, `circuit-half-open`, `detached`. */
  readonly state: 'attached' | 'paused' | 'circuit-open' | 'circuit-half-open' | 'detached';
  readonly inFlight: number;
  /**
   * Deliveries settled since the app started, whatever the outcome (`retried` and `deadLettered`
   * count among them).
   */
  readonly handled: number;
  readonly retried: number;
  readonly deadLettered: number;
  /** Handled per second over the last minute. */
  readonly ratePerSecond: number;
}

/** `GET {path}/api/dead-letters`: the letters grouped by error fingerprint, largest group first. */
export interface DeadLetterGroups {
  readonly total: number;
  readonly groups: readonly DeadLetterGroup[];
  /** True when more letters exist than were read (the newest are listed). */
  readonly truncated: boolean;
}

export interface DeadLetterGroup {
  /** Error class + message shape (numbers, ids and quoted values replaced): stable across letters. */
  readonly fingerprint: string;
  readonly errorClass: string;
  /** The message with its variable parts shown as `#`, `<id>`, `"…"`. */
  readonly errorShape: string;
  readonly count: number;
  readonly topics: readonly string[];
  readonly firstFailedAt: string;
  readonly lastFailedAt: string;
  readonly letters: readonly DeadLetterSummary[];
}

export interface DeadLetterSummary {
  readonly id: string;
  readonly messageId: string;
  readonly connection: string;
  readonly topic: string;
  readonly queue: string;
  readonly reason: string;
  readonly error: string;
  readonly errorClass: string;
  readonly attempts: number;
  readonly firstFailedAt: string;
  readonly lastFailedAt: string;
  readonly deadLetteredAt: string;
  readonly ageMs: number;
}

/** `GET {path}/api/dead-letters/:id`: one letter with its headers and body. */
export interface DeadLetterDetail extends DeadLetterSummary {
  readonly headers: Readonly<Record<string, unknown>>;
  readonly contentType?: string;
  readonly contentEncoding?: string;
  /** The body as text (UTF-8), or base64 for bytes that are not text. */
  readonly body: string;
  readonly bodyEncoding: 'utf8' | 'base64';
  readonly bodyBytes: number;
  /** True when `body` shows only the first bytes of a larger body. */
  readonly bodyTruncated: boolean;
}

/** A replay or purge of a group, running or done. */
export interface DashboardJob {
  readonly id: string;
  readonly kind: 'replay' | 'purge';
  readonly fingerprint: string;
  readonly total: number;
  readonly done: number;
  readonly failed: readonly { readonly id: string; readonly error: string }[];
  readonly finished: boolean;
}
