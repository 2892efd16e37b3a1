/**
 * `MessagingDashboardModule` on a Nest app over the in-memory broker, on Express and on Fastify: the
 * page and its headers, the assets, the API (overview, grouped dead letters, one letter), the
 * actions (replay one, replay a group, purge a group) behind the CSRF token and `readOnly`, the
 * guard, and the start-up check. Requests go over HTTP to the app listening on a free port.
 */
import {
  type CanActivate,
  Controller,
  type INestApplication,
  Injectable,
  UnauthorizedException,
} from '@nestjs/common';
import { Payload } from '@nestjs/microservices';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import {
  Consume,
  DeadLetterService,
  InMemoryBackend,
  InMemoryBroker,
  MessagingConfigError,
  MessagingModule,
  MessagingPublisher,
  MessagingServer,
} from '@app/messaging';
import {
  CSRF_HEADER,
  type DashboardJob,
  type DashboardOverview,
  type DeadLetterDetail,
  type DeadLetterGroups,
  MessagingDashboardModule,
  type MessagingDashboardOptions,
} from '@app/messaging/dashboard';
import { waitFor } from '@app/messaging/testing';

type Platform = 'express' | 'fastify';

let seq = 0;

/** What the failing handler does: throws until `fixed`, records what it handled. */
interface Behaviour {
  fixed: boolean;
  readonly handled: number[];
}

interface Started {
  readonly app: INestApplication;
  readonly url: string;
  readonly topic: string;
  readonly behaviour: Behaviour;
}

async function start(
  platform: Platform,
  dashboard: MessagingDashboardOptions,
  globalPrefix?: string,
): Promise<Started> {
  const topic = `dash${++seq}.${Date.now()}`;
  const behaviour: Behaviour = { fixed: false, handled: [] };
  @Controller()
  class Orders {
    @Consume(topic, {
      retry: { maxAttempts: 2, backoff: { initialDelayMs: 5, multiplier: 1, jitter: 0 } },
    })
    place(@Payload() order: { n: number; kind?: string }) {
      if (!behaviour.fixed) {
        if (order.kind === 'type') throw new TypeError(`field 'total' of order ${order.n} is bad`);
        throw new Error(`order ${order.n} declined by the gateway`);
      }
      behaviour.handled.push(order.n);
    }
  }
  const moduleRef = await Test.createTestingModule({
    imports: [
      MessagingModule.forRoot({
        service: `dashboard-${seq}`,
        backend: new InMemoryBackend({ broker: new InMemoryBroker() }),
      }),
      MessagingDashboardModule.forRoot(dashboard),
    ],
    controllers: [Orders],
  }).compile();
  const app =
    platform === 'fastify'
      ? moduleRef.createNestApplication(new FastifyAdapter(), { logger: false })
      : moduleRef.createNestApplication({ logger: false });
  if (globalPrefix) app.setGlobalPrefix(globalPrefix);
  app.connectMicroservice({ strategy: app.get(MessagingServer) });
  await app.startAllMicroservices();
  await app.listen(0, '127.0.0.1');
  return { app, url: await app.getUrl(), topic, behaviour };
}

/**
 * Publishes three orders that fail alike (one shape) and one that fails with another class; resolves
 * with the dashboard's base URL, its CSRF token and the dead letters it lists then.
 */
async function failSome({
  app,
  topic,
  url,
}: Started): Promise<{ base: string; token: string; grouped: DeadLetterGroups }> {
  const publisher = app.get(MessagingPublisher);
  await publisher.publish({ topic }, { n: 1 });
  await publisher.publish({ topic }, { n: 22 });
  await publisher.publish({ topic }, { n: 333, note: '<script>alert(1)</script>' });
  await publisher.publish({ topic }, { n: 4, kind: 'type' });
  const deadLetters = app.get(DeadLetterService);
  await waitFor(async () => (await deadLetters.list()).length === 4, {
    message: 'four dead letters',
  });
  const base = `${url}/messaging`;
  const token = await tokenOf(base);
  return { base, token, grouped: await getJson<DeadLetterGroups>(`${base}/api/dead-letters`) };
}

async function getJson<T>(url: string, headers: Record<string, string> = {}): Promise<T> {
  const response = await fetch(url, { headers });
  expect(response.status).toBe(200);
  return (await response.json()) as T;
}

function post(url: string, token?: string, body?: unknown): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: {
      ...(token !== undefined && { [CSRF_HEADER]: token }),
      ...(body !== undefined && { 'content-type': 'application/json' }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
}

/** The CSRF token the page carries. */
async function tokenOf(base: string): Promise<string> {
  const html = await (await fetch(base)).text();
  const token = /<meta name="csrf-token" content="([^"]+)">/.exec(html)?.[1];
  expect(token).toBeDefined();
  return token as string;
}

async function finished(base: string, job: DashboardJob): Promise<DashboardJob> {
  let last = job;
  await waitFor(
    async () => {
      last = await getJson<DashboardJob>(`${base}/api/jobs/${job.id}`);
      return last.finished;
    },
    { message: `job ${job.id} finished` },
  );
  return last;
}

describe.each<Platform>(['express', 'fastify'])('the dashboard on %s', (platform) => {
  let started: Started | undefined;
  afterEach(async () => {
    await started?.app.close();
    started = undefined;
  });

  it('serves the page with its security headers and a CSRF token, and its two assets', async () => {
    started = await start(platform, { public: true });
    const page = await fetch(`${started.url}/messaging`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toBe(
      "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    );
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.headers.get('referrer-policy')).toBe('no-referrer');
    expect(await page.text()).toMatch(/<meta name="csrf-token" content="[\w-]{40,}">/);

    const script = await fetch(`${started.url}/messaging/assets/app.js`);
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toMatch(/^text\/javascript/);
    const style = await fetch(`${started.url}/messaging/assets/app.css`);
    expect(style.status).toBe(200);
    expect(style.headers.get('content-type')).toMatch(/^text\/css/);

    const api = await fetch(`${started.url}/messaging/api/overview`);
    expect(api.headers.get('cache-control')).toBe('no-store');
    expect(api.headers.get('content-type')).toMatch(/^application\/json/);
  });

  it('lists the handlers with their state and counters, and the dead letters grouped by error', async () => {
    started = await start(platform, { public: true });
    await failSome(started);
    const base = `${started.url}/messaging`;
    const service = `dashboard-${seq}`;
    let overview: DashboardOverview | undefined;
    await waitFor(
      async () => {
        overview = await getJson<DashboardOverview>(`${base}/api/overview`);
        return overview.deadLetters.total === 4 && overview.handlers[0]?.deadLettered === 4;
      },
      { message: 'the overview counts the four dead letters' },
    );
    expect(overview).toMatchObject({
      service,
      readOnly: false,
      connections: [{ name: 'default', backend: 'memory', status: 'connected', health: 'up' }],
      deadLetters: { total: 4, groups: 2 },
    });
    expect(overview?.handlers).toEqual([
      {
        name: 'Orders.place',
        topic: started.topic,
        queue: `${service}.${started.topic}`,
        connection: 'default',
        concurrency: expect.any(Number),
        state: 'attached',
        inFlight: 0,
        handled: 8,
        retried: 4,
        deadLettered: 4,
        ratePerSecond: 8 / 60,
      },
    ]);

    const grouped = await getJson<DeadLetterGroups>(`${base}/api/dead-letters`);
    expect(grouped.total).toBe(4);
    expect(grouped.truncated).toBe(false);
    expect(grouped.groups.map((g) => [g.errorClass, g.errorShape, g.count])).toEqual([
      ['Error', 'order # declined by the gateway', 3],
      ['TypeError', 'field "…" of order # is bad', 1],
    ]);
    expect(grouped.groups[0].topics).toEqual([started.topic]);
    expect(grouped.groups[0].letters).toHaveLength(3);
    expect(grouped.groups[0].letters[0]).toMatchObject({
      topic: started.topic,
      attempts: 2,
      connection: 'default',
      ageMs: expect.any(Number),
    });

    const filtered = await getJson<DeadLetterGroups>(
      `${base}/api/dead-letters?error=${encodeURIComponent('DECLINED')}`,
    );
    expect(filtered.total).toBe(3);
    const none = await getJson<DeadLetterGroups>(`${base}/api/dead-letters?topic=other.topic`);
    expect(none).toEqual({ total: 0, groups: [], truncated: false });
    const one = grouped.groups[1].letters[0];
    const byId = await getJson<DeadLetterGroups>(`${base}/api/dead-letters?q=${one.id}`);
    expect(byId.total).toBe(1);
  });

  it('shows one letter with its headers and its body as JSON text', async () => {
    started = await start(platform, { public: true });
    await failSome(started);
    const base = `${started.url}/messaging`;
    const grouped = await getJson<DeadLetterGroups>(`${base}/api/dead-letters`);
    const letters = grouped.groups[0].letters;
    const scripted = await Promise.all(
      letters.map((l) => getJson<DeadLetterDetail>(`${base}/api/dead-letters/${l.id}`)),
    );
    const detail = scripted.find((d) => d.body.includes('<script>'));
    expect(detail).toMatchObject({
      bodyEncoding: 'utf8',
      bodyTruncated: false,
      headers: expect.any(Object),
    });
    expect(JSON.parse(detail?.body ?? '')).toEqual({ n: 333, note: '<script>alert(1)</script>' });
    expect(detail?.bodyBytes).toBe(Buffer.byteLength(detail?.body ?? ''));
    expect((await fetch(`${base}/api/dead-letters/no-such-letter`)).status).toBe(404);
  });

  it('replays one letter only with the CSRF token, and it is handled again', async () => {
    started = await start(platform, { public: true });
    await failSome(started);
    const base = `${started.url}/messaging`;
    const grouped = await getJson<DeadLetterGroups>(`${base}/api/dead-letters`);
    const letter = grouped.groups[1].letters[0];

    expect((await post(`${base}/api/dead-letters/${letter.id}/replay`)).status).toBe(403);
    expect((await post(`${base}/api/dead-letters/${letter.id}/replay`, 'wrong')).status).toBe(403);
    started.behaviour.fixed = true;
    const token = await tokenOf(base);
    const replayed = await post(`${base}/api/dead-letters/${letter.id}/replay`, token);
    expect(replayed.status).toBe(200);
    expect(await replayed.json()).toEqual({ replayed: true });
    const { behaviour } = started;
    await waitFor(() => behaviour.handled.includes(4), { message: 'order 4 handled' });
    const after = await getJson<DeadLetterGroups>(`${base}/api/dead-letters`);
    expect(after.total).toBe(3);
    expect(after.groups.map((g) => g.errorClass)).toEqual(['Error']);
  });

  it('replays a group as a job that reaches finished', async () => {
    started = await start(platform, { public: true });
    const { base, token, grouped } = await failSome(started);
    started.behaviour.fixed = true;
    const response = await post(
      `${base}/api/groups/${grouped.groups[0].fingerprint}/replay`,
      token,
    );
    expect(response.status).toBe(200);
    const job = (await response.json()) as DashboardJob;
    expect(job).toMatchObject({ kind: 'replay', fingerprint: grouped.groups[0].fingerprint });
    expect(await finished(base, job)).toMatchObject({ total: 3, done: 3, failed: [] });
    const { behaviour } = started;
    await waitFor(() => behaviour.handled.length === 3, { message: 'the group handled' });
    expect(behaviour.handled.sort((a, b) => a - b)).toEqual([1, 22, 333]);
    const after = await getJson<DeadLetterGroups>(`${base}/api/dead-letters`);
    expect(after.groups.map((g) => [g.errorClass, g.count])).toEqual([['TypeError', 1]]);
  });

  it('purges a group only when the body confirms its fingerprint', async () => {
    started = await start(platform, { public: true });
    const { base, token, grouped } = await failSome(started);
    const { fingerprint } = grouped.groups[1];
    expect(
      (await post(`${base}/api/groups/${fingerprint}/purge`, undefined, { confirm: fingerprint }))
        .status,
    ).toBe(403);
    expect((await post(`${base}/api/groups/${fingerprint}/purge`, token)).status).toBe(400);
    expect(
      (await post(`${base}/api/groups/${fingerprint}/purge`, token, { confirm: 'x' })).status,
    ).toBe(400);
    expect((await fetch(`${base}/api/jobs/no-such-job`)).status).toBe(404);
  });

  it('purges a confirmed group: its letters are gone, the others stay', async () => {
    started = await start(platform, { public: true });
    const { base, token, grouped } = await failSome(started);
    const { fingerprint } = grouped.groups[0];
    const response = await post(`${base}/api/groups/${fingerprint}/purge`, token, {
      confirm: fingerprint,
    });
    expect(response.status).toBe(200);
    const job = (await response.json()) as DashboardJob;
    expect(await finished(base, job)).toMatchObject({
      kind: 'purge',
      total: 3,
      done: 3,
      failed: [],
    });
    const after = await getJson<DeadLetterGroups>(`${base}/api/dead-letters`);
    expect(after.groups.map((g) => [g.errorClass, g.count])).toEqual([['TypeError', 1]]);
  });

  it('in readOnly mode says so and refuses every action', async () => {
    started = await start(platform, { public: true, readOnly: true });
    await failSome(started);
    const base = `${started.url}/messaging`;
    const token = await tokenOf(base);
    expect((await getJson<DashboardOverview>(`${base}/api/overview`)).readOnly).toBe(true);
    const grouped = await getJson<DeadLetterGroups>(`${base}/api/dead-letters`);
    const letter = grouped.groups[0].letters[0];
    expect((await post(`${base}/api/dead-letters/${letter.id}/replay`, token)).status).toBe(403);
    expect(
      (await post(`${base}/api/groups/${grouped.groups[0].fingerprint}/replay`, token)).status,
    ).toBe(403);
    expect((await getJson<DeadLetterGroups>(`${base}/api/dead-letters`)).total).toBe(4);
  });

  it('asks its canActivate function on every route', async () => {
    started = await start(platform, {
      canActivate: (request) => request.headers['x-admin'] === 'yes',
    });
    const base = `${started.url}/messaging`;
    for (const path of ['', '/assets/app.js', '/api/overview', '/api/dead-letters']) {
      expect((await fetch(`${base}${path}`)).status).toBe(403);
      expect((await fetch(`${base}${path}`, { headers: { 'x-admin': 'yes' } })).status).toBe(200);
    }
    expect((await post(`${base}/api/groups/abc/replay`)).status).toBe(403);
  });

  it("answers with a guard class's own refusal (401), at a custom path", async () => {
    @Injectable()
    class AdminGuard implements CanActivate {
      canActivate(context: import('@nestjs/common').ExecutionContext): boolean {
        const request = context.switchToHttp().getRequest<{ headers: Record<string, unknown> }>();
        if (request.headers.authorization !== 'Bearer admin') throw new UnauthorizedException();
        return true;
      }
    }
    started = await start(platform, { guard: AdminGuard, path: '/ops/queues/' });
    const base = `${started.url}/ops/queues`;
    expect((await fetch(base)).status).toBe(401);
    const page = await fetch(base, { headers: { authorization: 'Bearer admin' } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<meta name="dashboard-base" content="/ops/queues">');
    expect((await fetch(`${started.url}/messaging`)).status).toBe(404);
  });

  it('serves its script and API under the global prefix the app sets', async () => {
    started = await start(platform, { public: true }, 'api/v1');
    const base = `${started.url}/api/v1/messaging`;
    for (const asked of [base, `${base}?x=1`]) {
      const html = await (await fetch(asked)).text();
      expect(html).toContain('<meta name="dashboard-base" content="/api/v1/messaging">');
      expect(html).toContain('src="/api/v1/messaging/assets/app.js"');
    }
    expect((await fetch(`${base}/assets/app.js`)).status).toBe(200);
    expect((await fetch(`${base}/api/overview`)).status).toBe(200);
  });
});

describe('MessagingDashboardModule.forRoot()', () => {
  it('refuses to start without a guard unless public: true says so', () => {
    expect(() => MessagingDashboardModule.forRoot({})).toThrow(MessagingConfigError);
    expect(() => MessagingDashboardModule.forRoot({})).toThrow(
      'MessagingDashboardModule.forRoot() needs a guard ({ guard: AdminGuard } or { canActivate: (req) => ... }) or { public: true } to serve it without one',
    );
    expect(() =>
      MessagingDashboardModule.forRoot({ public: true, canActivate: () => true }),
    ).toThrow(/drop one of them/);
    expect(() => MessagingDashboardModule.forRoot({ public: true, path: 'messaging' })).toThrow(
      /path must start with '\/'/,
    );
    expect(() => MessagingDashboardModule.forRoot({ public: true, pollMs: 10 })).toThrow(/pollMs/);
  });

  it('says to import MessagingModule when the app has none', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [MessagingDashboardModule.forRoot({ public: true })],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await expect(app.init()).rejects.toThrow(/import MessagingModule\.forRoot/);
    await app.close();
  });
});
