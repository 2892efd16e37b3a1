import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  CSRF_HEADER,
  type DashboardJob,
  type DashboardOverview,
  type DeadLetterDetail,
  type DeadLetterGroup,
} from '../dashboard-api';
import { DASHBOARD_SCRIPT, DASHBOARD_STYLE, renderPage } from './index';

/** The CSP the dashboard's server sends: the page must run under it untouched. */
export const DASHBOARD_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:";

/** The body of the letter that tries to run script if the page ever renders a body as HTML. */
export const HOSTILE_BODY = `<script>window.__pwned = 1</script><img src=x onerror="window.__pwned=2">`;

/** A POST the page made. */
export interface RecordedPost {
  readonly path: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: unknown;
}

/** A stand-in for the dashboard's server (dashboard-api.ts), over canned data the spec can change. */
export interface FakeDashboard {
  /** The page's address. */
  readonly url: string;
  readonly token: string;
  readonly posts: RecordedPost[];
  /** Paths of the GETs the page made, in order. */
  readonly gets: string[];
  readonly overview: { -readonly [K in keyof DashboardOverview]: DashboardOverview[K] };
  /** The letters, with the fingerprint of their group. */
  readonly letters: (DeadLetterDetail & { fingerprint: string })[];
  /** Makes the running group replays finish (until then they show progress, one short of done). */
  finishJobs(): void;
  /** POSTs with the old token are refused (403) from now on, like after a server restart. */
  rotateToken(): void;
  close(): Promise<void>;
}

const BASE = '/messaging';

type Job = { -readonly [K in keyof DashboardJob]: DashboardJob[K] };

/** A dead letter with plausible values; `over` replaces any. */
export function fakeLetter(
  id: string,
  fingerprint: string,
  over: Partial<DeadLetterDetail> = {},
): DeadLetterDetail & { fingerprint: string } {
  const t = Date.now() - 180_000;
  return {
    id,
    fingerprint,
    messageId: `msg-${id}`,
    connection: 'default',
    topic: 'orders.created',
    queue: 'billing.orders-created',
    reason: 'attempts-exhausted',
    error: `TypeError: Cannot read properties of undefined (reading "total") in ${id}`,
    errorClass: 'TypeError',
    attempts: 5,
    firstFailedAt: new Date(t - 60_000).toISOString(),
    lastFailedAt: new Date(t).toISOString(),
    deadLetteredAt: new Date(t).toISOString(),
    ageMs: 180_000,
    headers: { 'x-attempt': 5, 'content-type': 'application/json' },
    contentType: 'application/json',
    body: JSON.stringify({ orderId: id, total: null }),
    bodyEncoding: 'utf8',
    bodyBytes: 40,
    bodyTruncated: false,
    ...over,
  };
}

function groupsOf(letters: FakeDashboard['letters'], query: URLSearchParams): DeadLetterGroup[] {
  const topic = query.get('topic');
  const error = query.get('error')?.toLowerCase();
  const q = query.get('q')?.toLowerCase();
  const picked = letters.filter(
    (l) =>
      (!topic || l.topic === topic) &&
      (!error || l.error.toLowerCase().includes(error)) &&
      (!q || JSON.stringify(l).toLowerCase().includes(q)),
  );
  const groups = new Map<string, DeadLetterGroup & { letters: DeadLetterDetail[] }>();
  for (const { fingerprint, ...l } of picked) {
    const g = groups.get(fingerprint) ?? {
      fingerprint,
      errorClass: l.errorClass,
      errorShape: l.error.replace(/\b[\w-]*\d[\w-]*\b/g, '<id>'),
      count: 0,
      topics: [],
      firstFailedAt: l.firstFailedAt,
      lastFailedAt: l.lastFailedAt,
      letters: [],
    };
    groups.set(fingerprint, {
      ...g,
      count: g.count + 1,
      topics: g.topics.includes(l.topic) ? g.topics : [...g.topics, l.topic],
      letters: [...g.letters, l],
    });
  }
  return [...groups.values()]
    .map((g) => ({ ...g, letters: g.letters.map(summary) }))
    .sort((a, b) => b.count - a.count);
}

function summary(l: DeadLetterDetail): DeadLetterDetail {
  const { headers: _h, body: _b, bodyEncoding: _e, bodyBytes: _n, bodyTruncated: _t, ...rest } = l;
  return rest as DeadLetterDetail;
}

/** Starts the fake server on a free port of 127.0.0.1. */
export async function startFakeDashboard(
  options: { readOnly?: boolean; pollMs?: number; letters?: FakeDashboard['letters'] } = {},
): Promise<FakeDashboard> {
  let token = 'token-" onmouseover="alert(1)';
  const readOnly = options.readOnly ?? false;
  const jobs = new Map<string, { job: Job; release: () => void }>();
  let finished = false;
  const fake: Omit<FakeDashboard, 'url' | 'close' | 'token'> = {
    posts: [],
    gets: [],
    overview: {
      service: 'billing <svc>',
      generatedAt: new Date().toISOString(),
      readOnly,
      connections: [
        { name: 'default', backend: 'amqp', status: 'connected', health: 'up' },
        { name: 'events', backend: 'redis', status: 'reconnecting', health: 'down', blocked: true },
      ],
      handlers: [
        {
          name: 'OrdersHandler.onCreated',
          topic: 'orders.created',
          queue: 'billing.orders-created',
          connection: 'default',
          concurrency: 4,
          state: 'attached',
          inFlight: 1,
          handled: 12040,
          retried: 31,
          deadLettered: 3,
          ratePerSecond: 4.25,
        },
        {
          name: 'PaymentsHandler.charge',
          queue: 'billing.charge',
          connection: 'events',
          concurrency: 1,
          state: 'circuit-open',
          inFlight: 0,
          handled: 80,
          retried: 12,
          deadLettered: 2,
          ratePerSecond: 0,
        },
      ],
      outbox: { backlog: 7, lastError: 'Channel closed by <broker>' },
      deadLetters: { total: 0, groups: 0 },
    },
    letters: options.letters ?? [],
    finishJobs: () => {
      finished = true;
      for (const { release } of jobs.values()) release();
    },
    rotateToken: () => (token = 'rotated'),
  };

  const send = (
    res: import('node:http').ServerResponse,
    status: number,
    type: string,
    body: string,
  ) => {
    res.writeHead(status, {
      'content-type': type,
      'content-security-policy': DASHBOARD_CSP,
      'x-content-type-options': 'nosniff',
      'cache-control': 'no-store',
    });
    res.end(body);
  };
  const json = (res: import('node:http').ServerResponse, status: number, body: unknown) =>
    send(res, status, 'application/json; charset=utf-8', JSON.stringify(body));

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname.startsWith(BASE) ? url.pathname.slice(BASE.length) : '!';
    let raw = '';
    req.on('data', (chunk: Buffer) => (raw += chunk.toString()));
    req.on('end', () => {
      if (req.method === 'GET') {
        fake.gets.push(path + url.search);
        if (path === '' || path === '/')
          return send(
            res,
            200,
            'text/html; charset=utf-8',
            renderPage({
              basePath: BASE,
              service: fake.overview.service,
              csrfToken: token,
              readOnly,
              pollMs: options.pollMs ?? 200,
            }),
          );
        if (path === '/assets/app.js')
          return send(res, 200, 'text/javascript; charset=utf-8', DASHBOARD_SCRIPT);
        if (path === '/assets/app.css')
          return send(res, 200, 'text/css; charset=utf-8', DASHBOARD_STYLE);
        if (path === '/api/overview') {
          const groups = groupsOf(fake.letters, new URLSearchParams());
          fake.overview.deadLetters = { total: fake.letters.length, groups: groups.length };
          return json(res, 200, { ...fake.overview, generatedAt: new Date().toISOString() });
        }
        if (path === '/api/dead-letters')
          return json(res, 200, {
            total: fake.letters.length,
            groups: groupsOf(fake.letters, url.searchParams),
            truncated: false,
          });
        const letter = /^\/api\/dead-letters\/([^/]+)$/.exec(path);
        if (letter) {
          const found = fake.letters.find((l) => l.id === decodeURIComponent(letter[1]));
          if (!found) return json(res, 404, { statusCode: 404, message: 'No such dead letter' });
          const { fingerprint: _f, ...detail } = found;
          return json(res, 200, detail);
        }
        const job = /^\/api\/jobs\/([^/]+)$/.exec(path);
        if (job && jobs.has(job[1])) {
          return json(res, 200, jobs.get(job[1])!.job);
        }
        return json(res, 404, { statusCode: 404, message: 'Not found' });
      }
      const body: unknown = raw ? JSON.parse(raw) : undefined;
      fake.posts.push({ path, headers: req.headers, body });
      if (readOnly || req.headers[CSRF_HEADER] !== token)
        return json(res, 403, { statusCode: 403, message: 'Forbidden' });
      const replay = /^\/api\/dead-letters\/([^/]+)\/replay$/.exec(path);
      if (replay) {
        const at = fake.letters.findIndex((l) => l.id === decodeURIComponent(replay[1]));
        if (at < 0) return json(res, 404, { statusCode: 404, message: 'No such dead letter' });
        fake.letters.splice(at, 1);
        return json(res, 200, { replayed: true });
      }
      const action = /^\/api\/groups\/([^/]+)\/(replay|purge)$/.exec(path);
      if (action) {
        const fingerprint = decodeURIComponent(action[1]);
        const kind = action[2] as 'replay' | 'purge';
        if (kind === 'purge' && (body as { confirm?: string })?.confirm !== fingerprint)
          return json(res, 400, { statusCode: 400, message: 'confirm must be the fingerprint' });
        const members = fake.letters.filter((l) => l.fingerprint === fingerprint);
        const total = members.length;
        const id = `job-${jobs.size + 1}`;
        const job: Job = { id, kind, fingerprint, total, done: 0, failed: [], finished: false };
        const release = () => {
          const failed = kind === 'replay' ? members.slice(0, 1) : [];
          for (const l of members)
            if (!failed.includes(l)) fake.letters.splice(fake.letters.indexOf(l), 1);
          const error = 'Broker refused <publish>';
          Object.assign(job, {
            done: total,
            finished: true,
            failed: failed.map(({ id }) => ({ id, error })),
          });
        };
        jobs.set(id, { job, release });
        if (kind === 'purge' || finished) release();
        json(res, 202, { ...job });
        if (!job.finished) job.done = Math.max(0, total - 1);
        return;
      }
      return json(res, 404, { statusCode: 404, message: 'Not found' });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  Object.defineProperty(fake, 'token', { get: () => token });
  return Object.assign(fake as FakeDashboard, {
    url: `http://127.0.0.1:${port}${BASE}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((e) => (e ? reject(e) : resolve()));
      }),
  });
}
