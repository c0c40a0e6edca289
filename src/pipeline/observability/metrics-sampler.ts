import type { Admin, Kafka } from 'kafkajs';
import type pg from 'pg';
import type { SourceProgress } from '../../../connectors/pgoutput-source/index.js';
import { readSlot } from '../../../connectors/pgoutput-source/index.js';
import {
  type CutoverPhase,
  phaseNumber,
  SHOP_CUTOVER_STATES,
  type ShopCutoverState,
  shopCutoverState,
} from '../../contracts/cutover-phase.js';
import type { GroupTopics } from '../../contracts/topics.js';
import type { Logger } from '../../core/logger.js';
import { parseLsn } from '../../core/lsn.js';
import { connectClient } from '../../core/pg-connect.js';
import { sleep } from '../../core/retry.js';
import { qualifiedName } from '../../core/sql.js';
import type { TableRef } from '../config/load-config.js';
import { readConsumerLag } from './consumer-lag.js';
import type { Metrics } from './metrics.js';

export interface MetricsSamplerOptions {
  metrics: Metrics;
  logger: Logger;
  intervalMs: number;
  /** The source in this process: slot lag and retained WAL, snapshot progress. */
  source?: {
    url: string;
    slot: string;
    tables: readonly TableRef[];
    progress: () => SourceProgress;
  };
  /** The sink in this process: the group's newest applied commit time, from the target. */
  sink?: { url: string; groupId: string };
  /** Consumer groups run by this process, whose lag is sampled. */
  kafka?: { kafka: Kafka; groups: readonly GroupTopics[] };
}

/**
 * Samples what the stages cannot report themselves — the slot's position against the server's WAL, consumer-group
 * lag, the target's applied position — every `intervalMs`, into the gauges. It never fails the pipeline: a sample
 * that cannot be taken (a database or broker away) is logged and tried again next time, on a new connection.
 */
export class MetricsSampler {
  private sourceClient: pg.Client | undefined;
  private sinkClient: pg.Client | undefined;
  private admin: Admin | undefined;
  private readonly failing = new Set<string>();
  private readonly snapshotCounted = new Map<string, number>();
  private readonly estimates = new Map<string, number | null>();

  constructor(private readonly o: MetricsSamplerOptions) {}

  async run(signal: AbortSignal): Promise<void> {
    try {
      while (!signal.aborted) {
        await this.sampleOnce();
        await sleep(this.o.intervalMs, signal);
      }
    } finally {
      await this.close();
    }
  }

  /** One round of samples; each part fails on its own. */
  async sampleOnce(): Promise<void> {
    if (this.o.source) await this.attempt('source', () => this.sampleSource());
    if (this.o.sink) await this.attempt('sink', () => this.sampleSink());
    if (this.o.kafka && this.o.kafka.groups.length > 0) await this.attempt('kafka', () => this.sampleKafka());
  }

  async close(): Promise<void> {
    const clients = [this.sourceClient, this.sinkClient];
    this.sourceClient = undefined;
    this.sinkClient = undefined;
    for (const c of clients) await c?.end().catch(() => {});
    const admin = this.admin;
    this.admin = undefined;
    await admin?.disconnect().catch(() => {});
  }

  private async attempt(part: 'source' | 'sink' | 'kafka', fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
      if (this.failing.delete(part)) this.o.logger.info({ part }, 'metrics sampling recovered');
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      if (!this.failing.has(part))
        this.o.logger.warn({ part, err: why }, 'metrics sampling failed; retrying');
      else this.o.logger.debug({ part, err: why }, 'metrics sampling still failing');
      this.failing.add(part);
      await this.reset(part);
    }
  }

  private async reset(part: 'source' | 'sink' | 'kafka'): Promise<void> {
    if (part === 'source') {
      await this.sourceClient?.end().catch(() => {});
      this.sourceClient = undefined;
    } else if (part === 'sink') {
      await this.sinkClient?.end().catch(() => {});
      this.sinkClient = undefined;
    } else {
      await this.admin?.disconnect().catch(() => {});
      this.admin = undefined;
    }
  }

  private connect(url: string): Promise<pg.Client> {
    // A connection that drops between samples fails the next sample, which then reconnects.
    return connectClient({ connectionString: url, application_name: 'replicator-metrics' });
  }

  private async sampleSource(): Promise<void> {
    const source = this.o.source!;
    const { metrics } = this.o;
    this.sourceClient ??= await this.connect(source.url);
    const client = this.sourceClient;
    const current = (await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!
      .lsn;
    const slot = await readSlot(client, source.slot);
    if (slot.exists && slot.confirmedFlushLsn) {
      const lag = parseLsn(current) - parseLsn(slot.confirmedFlushLsn);
      metrics.sourceLagBytes.set({ slot: source.slot }, Number(lag > 0n ? lag : 0n));
    }
    if (slot.exists && slot.retainedBytes !== undefined) {
      metrics.sourceRetainedWalBytes.set({ slot: source.slot }, Math.max(0, Number(slot.retainedBytes)));
    }
    if (slot.exists) {
      // A lost slot cannot be read from again (re-snapshot); without a limit the server never invalidates it.
      const safe =
        slot.walStatus === 'lost'
          ? 0
          : slot.safeWalBytes == null
            ? Number.POSITIVE_INFINITY
            : Number(slot.safeWalBytes);
      metrics.sourceSafeWalBytes.set({ slot: source.slot }, safe);
    }

    const progress = source.progress();
    for (const [table, rows] of Object.entries(progress.snapshotRows)) {
      const delta = rows - (this.snapshotCounted.get(table) ?? 0);
      if (delta > 0) metrics.snapshotRows.inc({ table }, delta);
      this.snapshotCounted.set(table, rows);
    }
    // A standby copies nothing: only the source that leads (or has led) reports progress.
    const streaming = progress.durableLsn !== '0/0';
    if (progress.role !== 'leader' && !streaming) return;
    for (const t of source.tables) {
      const table = `${t.schema}.${t.table}`;
      // A zero series from the start, so that increase() sees the first rows too.
      if (!this.snapshotCounted.has(table)) {
        metrics.snapshotRows.inc({ table }, 0);
        this.snapshotCounted.set(table, 0);
      }
      if (streaming) {
        // The stream starts only once the snapshot is complete (or when there is none to take).
        metrics.snapshotProgress.set({ table }, 1);
        continue;
      }
      if (!this.estimates.has(table)) {
        const r = await client.query<{ n: number }>(
          'SELECT reltuples::float8 AS n FROM pg_class WHERE oid = to_regclass($1)',
          [qualifiedName(t.schema, t.table)],
        );
        const n = r.rows[0]?.n;
        this.estimates.set(table, n !== undefined && n > 0 ? n : null);
      }
      const estimate = this.estimates.get(table) ?? null;
      const rows = progress.snapshotRows[table] ?? 0;
      metrics.snapshotProgress.set({ table }, estimate ? Math.min(0.99, rows / estimate) : 0);
    }
  }

  private async sampleSink(): Promise<void> {
    const sink = this.o.sink!;
    this.sinkClient ??= await this.connect(sink.url);
    try {
      const r = await this.sinkClient.query<{ ts: string | null }>(
        `SELECT to_char(commit_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS ts
           FROM replicator.applied WHERE group_id = $1`,
        [sink.groupId],
      );
      const ts = r.rows[0]?.ts;
      if (ts) this.o.metrics.seedApplied(sink.groupId, ts);
      // `replicator cutover` runs as its own process: its phase reaches the daemon's /metrics through the target.
      const c = await this.sinkClient.query<{ phase: CutoverPhase; ms: number | null }>(
        `SELECT phase, write_blocked_ms AS ms FROM replicator.cutovers WHERE shop IS NULL ORDER BY started_at DESC LIMIT 1`,
      );
      this.o.metrics.cutoverPhase.set(c.rows[0] ? phaseNumber(c.rows[0].phase) : 0);
      this.o.metrics.cutoverWriteBlockedSeconds.set((c.rows[0]?.ms ?? 0) / 1000);
      const shops = await this.sinkClient.query<{ phase: CutoverPhase | null; n: number }>(
        `WITH latest AS (SELECT DISTINCT ON (shop) shop, phase FROM replicator.cutovers
                          WHERE shop IS NOT NULL AND NOT dry_run ORDER BY shop, started_at DESC),
              shops AS (SELECT DISTINCT shop FROM bundles UNION SELECT shop FROM latest)
         SELECT l.phase, count(*)::int AS n FROM shops s LEFT JOIN latest l USING (shop) GROUP BY l.phase`,
      );
      const byState = new Map<ShopCutoverState, number>(SHOP_CUTOVER_STATES.map((s) => [s, 0]));
      for (const r of shops.rows) {
        const state = shopCutoverState(r.phase ?? undefined);
        byState.set(state, (byState.get(state) ?? 0) + r.n);
      }
      for (const [state, n] of byState) this.o.metrics.cutoverShops.set({ state }, n);
    } catch (e) {
      // The sink creates its schema when it starts; until then there is nothing applied to read.
      if ((e as { code?: unknown }).code !== '42P01' && (e as { code?: unknown }).code !== '3F000') throw e;
    }
  }

  private async sampleKafka(): Promise<void> {
    const { kafka, groups } = this.o.kafka!;
    if (!this.admin) {
      const admin = kafka.admin();
      await admin.connect();
      this.admin = admin;
    }
    for (const g of groups) {
      for (const p of await readConsumerLag(this.admin, g.groupId, g.topics)) {
        this.o.metrics.kafkaConsumerLagMessages.set(
          { group: g.groupId, topic: p.topic, partition: String(p.partition) },
          p.lag,
        );
      }
    }
  }
}
