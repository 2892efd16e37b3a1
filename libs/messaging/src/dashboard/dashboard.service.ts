import { randomBytes } from 'node:crypto';
import {
  BadRequestException,
  Inject,
  Injectable,
  NotFoundException,
  type OnApplicationShutdown,
  type OnModuleInit,
  Optional,
  ServiceUnavailableException,
} from '@nestjs/common';
import { DiscoveryService, ModuleRef } from '@nestjs/core';
import type { DeadLetter } from '../backend/broker-backend.interface';
import { DeadLetterService } from '../dead-letters/dead-letter.service';
import { MessagingConfigError } from '../errors/messaging.errors';
import { MESSAGING_OPTIONS } from '../messaging.constants';
import { MessagingInstruments } from '../observability/messaging-metrics';
import { DEFAULT_CONNECTION, type ResolvedMessagingOptions } from '../options/messaging-options';
import { connectionsOf, type MessagingConnection } from '../server/messaging-connection';
import { MessagingHealthService } from '../health/messaging-health.service';
import { MessagingServer } from '../server/messaging.server';
import { OutboxRelay } from '../store/outbox-relay';
import type {
  DashboardJob,
  DashboardOverview,
  DeadLetterDetail,
  DeadLetterGroups,
} from './dashboard-api';
import { buildOverview } from './dashboard-overview';
import { DashboardCounters } from './dashboard-counters';
import {
  DashboardJobs,
  type DeadLetterSource,
  messageOf,
  pickIds,
  purgePicked,
  replayPicked,
} from './dashboard-jobs';
import type { ResolvedDashboardOptions } from './dashboard-options';
import {
  type DeadLetterFilter,
  DeadLetterGrouping,
  detailOf,
  matchesFilter,
} from './dead-letter-groups';
import { errorFingerprint } from './error-fingerprint';

/** The resolved options of `MessagingDashboardModule.forRoot()`. */
export const DASHBOARD_OPTIONS = Symbol('MESSAGING_DASHBOARD_OPTIONS');

/** How long one reading of the dead letters answers the overview and the unfiltered list. */
const READING_TTL_MS = 1000;

/**
 * What the dashboard's controller answers with: the dead letters of the app's connections, read,
 * grouped and acted on; the CSRF token of this process; the handlers' counters (a sink it adds to
 * the app's `MessagingInstruments` while the app runs).
 */
@Injectable()
export class DashboardService implements OnModuleInit, OnApplicationShutdown {
  /** The token every POST carries (`x-csrf-token`): random per process, rendered into the page. */
  readonly csrfToken = randomBytes(32).toString('base64url');
  readonly counters = new DashboardCounters();
  private readonly jobs = new DashboardJobs();
  private sources?: readonly DeadLetterSource[];
  private connections: readonly MessagingConnection[] = [];
  private removeSink?: () => void;
  private reading?: { readonly at: number; readonly groups: Promise<DeadLetterGroups> };

  constructor(
    @Inject(DASHBOARD_OPTIONS) readonly options: ResolvedDashboardOptions,
    private readonly discovery: DiscoveryService,
    private readonly modules: ModuleRef,
    @Optional() @Inject(MESSAGING_OPTIONS) readonly messaging?: ResolvedMessagingOptions,
    @Optional() private readonly deadLetters?: DeadLetterService,
    @Optional() private readonly server?: MessagingServer,
    @Optional() private readonly health?: MessagingHealthService,
    @Optional() private readonly relay?: OutboxRelay,
  ) {}

  onModuleInit(): void {
    let instruments: MessagingInstruments;
    try {
      instruments = this.modules.get(MessagingInstruments, { strict: false });
    } catch {
      instruments = undefined as never;
    }
    if (!this.messaging || !this.deadLetters || !instruments) {
      throw new MessagingConfigError(
        'MessagingDashboardModule shows the messaging of the app: import MessagingModule.forRoot({ service, backend }) in the root module too',
      );
    }
    this.removeSink = instruments.addSink(this.counters);
  }

  onApplicationShutdown(): void {
    this.removeSink?.();
  }

  /** The app's connections the dashboard shows, default first (found once the app has started). */
  shown(): readonly MessagingConnection[] {
    if (this.sources) return this.connections;
    const all = connectionsOf(this.discovery).sort(
      (a, b) => Number(b.name === DEFAULT_CONNECTION) - Number(a.name === DEFAULT_CONNECTION),
    );
    const wanted = this.options.connections;
    for (const name of wanted ?? []) {
      if (!all.some((c) => c.name === name)) {
        throw new MessagingConfigError(
          `MessagingDashboardModule.forRoot(): connections names '${name}', which the app does not have; it has ${all.map((c) => `'${c.name}'`).join(', ')}`,
        );
      }
    }
    this.connections = wanted ? all.filter((c) => wanted.includes(c.name)) : all;
    this.sources = this.connections.map((c) => this.sourceOf(c));
    return this.connections;
  }

  /** `GET api/overview`: connections, handlers, outbox, and how many dead letters in how many groups. */
  async overview(): Promise<DashboardOverview> {
    const messaging = this.messaging as ResolvedMessagingOptions;
    let deadLetters: DashboardOverview['deadLetters'];
    try {
      const { total, groups } = await this.groups();
      deadLetters = { total, groups: groups.length };
    } catch (error) {
      deadLetters = { total: 0, groups: 0, error: messageOf(error) };
    }
    const outbox = this.relay?.status;
    return buildOverview({
      service: messaging.service,
      readOnly: this.options.readOnly,
      now: new Date(),
      connections: this.shown(),
      handlers: this.server?.handlers ?? [],
      health: this.health?.check(),
      counts: (handler) => this.counters.of(handler),
      ...(outbox &&
        (messaging.store !== undefined || outbox.pending > 0 || outbox.lastError) && { outbox }),
      deadLetters,
    });
  }

  /** The dead letters grouped (see `DeadLetterGrouping`); unfiltered readings are shared for a second. */
  async groups(filter: DeadLetterFilter = {}): Promise<DeadLetterGroups> {
    const unfiltered = !filter.topic && !filter.error && !filter.q;
    if (!unfiltered) return this.read(filter);
    const now = Date.now();
    if (!this.reading || now - this.reading.at > READING_TTL_MS) {
      const groups = this.read({});
      this.reading = { at: now, groups };
      groups.catch(() => (this.reading = undefined));
    }
    return this.reading.groups;
  }

  async detail(id: string, connection?: string): Promise<DeadLetterDetail> {
    const found = await this.find(id, connection);
    const codec = this.connections.find((c) => c.options.name === found.source.connection)?.codec;
    return detailOf(
      found.letter,
      found.source.connection,
      this.options.maxBodyBytes,
      Date.now(),
      codec && ((letter) => codec.inflate(letter)),
    );
  }

  async replay(id: string, connection?: string): Promise<{ replayed: boolean }> {
    const { source } = await this.find(id, connection);
    const replayed = await this.act(() => source.service.replay(id));
    return { replayed };
  }

  replayGroup(fingerprint: string): DashboardJob {
    return this.jobs.start('replay', fingerprint, async (progress) => {
      const picked = await pickIds(this.sourcesShown(), this.ofGroup(fingerprint));
      await this.act(() => replayPicked(picked, progress));
    });
  }

  purgeGroup(fingerprint: string, body: unknown): DashboardJob {
    const confirm = (body as { confirm?: unknown } | undefined)?.confirm;
    if (confirm !== fingerprint) {
      throw new BadRequestException(
        `Purging deletes the group's dead letters for good: send { "confirm": "${fingerprint}" }`,
      );
    }
    return this.jobs.start('purge', fingerprint, async (progress) => {
      const picked = await pickIds(this.sourcesShown(), this.ofGroup(fingerprint));
      await this.act(() => purgePicked(picked, progress));
    });
  }

  job(id: string): DashboardJob {
    const job = this.jobs.get(id);
    if (!job) throw new NotFoundException(`No job ${id} (a job is kept 5 minutes after it ends)`);
    return job;
  }

  private sourcesShown(): readonly DeadLetterSource[] {
    this.shown();
    return this.sources as readonly DeadLetterSource[];
  }

  private ofGroup(fingerprint: string): (letter: DeadLetter) => boolean {
    const known = new Map<string, boolean>();
    return (letter) => {
      const key = `${letter.errorClass}\0${letter.error}`;
      let same = known.get(key);
      if (same === undefined) {
        same = errorFingerprint(letter.errorClass, letter.error).fingerprint === fingerprint;
        known.set(key, same);
      }
      return same;
    };
  }

  private async read(filter: DeadLetterFilter): Promise<DeadLetterGroups> {
    const grouping = new DeadLetterGrouping(this.options.maxLetters);
    for (const source of this.sourcesShown()) {
      await this.readable(() =>
        source.scan((letter) => {
          if (matchesFilter(letter, filter)) grouping.add(letter, source.connection);
        }),
      );
    }
    return grouping.result();
  }

  private async find(
    id: string,
    connection?: string,
  ): Promise<{ letter: DeadLetter; source: DeadLetterSource }> {
    const sources = this.sourcesShown().filter((s) => !connection || s.connection === connection);
    for (const source of sources) {
      let letter: DeadLetter | undefined;
      await this.readable(() =>
        source.scan((seen) => {
          if (seen.id !== id) return true;
          letter = seen;
          return false;
        }),
      );
      if (letter) return { letter, source };
    }
    throw new NotFoundException(`No dead letter ${id} (replayed or purged meanwhile?)`);
  }

  /** An action on the dead letters: the next reading is a fresh one. */
  private async act<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } finally {
      this.reading = undefined;
    }
  }

  /** A reading of the dead letters; a broker that cannot answer is a 503 that says why. */
  private async readable(run: () => Promise<void>): Promise<void> {
    try {
      await run();
    } catch (error) {
      throw new ServiceUnavailableException(`Cannot read the dead letters: ${messageOf(error)}`);
    }
  }

  private sourceOf(connection: MessagingConnection): DeadLetterSource {
    const { backend, options } = connection;
    const deadLetters = this.deadLetters as DeadLetterService;
    return {
      connection: connection.name,
      scan: (visit) => backend.deadLetters.scan(options.service, visit),
      service:
        connection.name === DEFAULT_CONNECTION
          ? deadLetters
          : deadLetters.forConnection(connection.name),
    };
  }
}
