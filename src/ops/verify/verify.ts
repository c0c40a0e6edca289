import { randomUUID } from 'node:crypto';
import type { Kafka } from 'kafkajs';
import pg from 'pg';
import { readColumnTypes } from '../../../connectors/postgres-sink/index.js';
import { transformModules } from '../../../transforms/index.js';
import { V2_KEYS, V2Schemas } from '../../../transforms/v2-schema.js';
import { changeTopics, heartbeatPrefix } from '../../contracts/topics.js';
import type { JsonRow, TransformModule, V2Entity } from '../../contracts/transform-api.js';
import {
  classifyConnectionError,
  ErrorCodes,
  ReplicatorError,
  toReplicatorError,
} from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { textTypes } from '../../core/pg-text-types.js';
import { qualifiedName } from '../../core/sql.js';
import type { ReplicatorConfig } from '../../pipeline/config/load-config.js';
import {
  type ColumnKind,
  columnKind,
  compareKeys,
  displayRow,
  type EntityShape,
  keyValues,
} from './canonical-row.js';
import {
  compareEntity,
  hashTargetChunks,
  type RowDiff,
  type TargetChunk,
  type TargetFilter,
} from './compare-entity.js';
import { type ExpectedRow, ExpectedState, type LegacyTableCounts, parseRef } from './expected-state.js';
import { LegacyReader, type LegacyTable } from './legacy-reader.js';
import {
  LEGACY_OPTIONS,
  type RecheckItem,
  type RecheckRound,
  recheckDrift,
  TARGET_OPTIONS,
} from './recheck-drift.js';
import { type RepairOptions, type RepairResult, repairDrift } from './repair-drift.js';
import { settledLsn } from './settled-lsn.js';
import { type SinkAppliedWaiterOptions, sinkAppliedWaiter } from './sink-applied-waiter.js';
import { ensureVerifySchema, finishRun, type QueuedKey, startRun } from './verify-store.js';

export const V2_ENTITIES = Object.keys(V2_KEYS) as V2Entity[];
/** The entities `--shop` applies to (a bundle's components and discount belong to its shop). */
export const SHOP_ENTITIES: readonly V2Entity[] = ['bundles', 'bundle_components', 'bundle_discounts'];

/**
 * Which transform topics' modules produce each entity: a module's units go to one topic (its main entity) but may
 * hold rows of others (a booking's payment; users are derived from bookings and profiles).
 */
const PRODUCED_BY: Readonly<Record<V2Entity, readonly string[]>> = {
  users: ['bookings', 'customer_profiles'],
  customer_profiles: ['customer_profiles'],
  bookings: ['bookings'],
  payments: ['bookings'],
  bundles: ['bundles'],
  bundle_components: ['bundles'],
  bundle_discounts: ['bundles'],
};

/** The pipeline whose sink a re-check waits for: what sinkAppliedWaiter reads besides the two databases. */
export type PipelineSink = Pick<
  SinkAppliedWaiterOptions,
  'slot' | 'changeTopics' | 'kafka' | 'sinkGroupId' | 'heartbeatPrefix'
>;

/** The sink of the pipeline `config` describes, for `recheck.sink`. */
export function sinkOf(config: ReplicatorConfig, kafka: Kafka): PipelineSink {
  return {
    slot: config.source.slot,
    changeTopics: changeTopics({ rawPrefix: config.kafka.topicPrefix, tables: config.source.tables }),
    kafka,
    sinkGroupId: config.sink.groupId,
    heartbeatPrefix: heartbeatPrefix(config.kafka.topicPrefix),
  };
}

export interface RecheckConfig {
  /** Resolves true once the pipeline has applied every legacy change committed before `lsn` (false: gave up). */
  waitForApplied?: (lsn: string) => Promise<boolean>;
  /** Without waitForApplied: wait for this pipeline's sink (sinkAppliedWaiter; `sinkOf` builds it from a config). */
  sink?: PipelineSink;
  /** Re-check rounds (0: every difference of the first pass is reported as drift). Default 4. */
  rounds?: number;
  /** How long one wait for the sink may take. Default 60 s. */
  timeoutMs?: number;
}

export interface VerifyOptions {
  legacyUrl: string;
  targetUrl: string;
  /** Entities to verify (default: all; with `shop`, the bundle entities). */
  entities?: readonly V2Entity[];
  /** Restricts bundles, bundle_components and bundle_discounts (and their legacy tables) to one shop. */
  shop?: string;
  /** Rows per compared key-range chunk. Default 1000. */
  chunkRows?: number;
  /** Rows per fetch of the legacy cursor. Default 5000. */
  fetchRows?: number;
  /** Sample rows per kind (missing/extra/different) and entity in the report. Default 10. */
  samples?: number;
  recheck: RecheckConfig;
  /** Re-emit the drifted legacy rows through the pipeline, then re-check them. */
  repair?: RepairOptions;
  /** Record the run in replicator.verify_runs / reverify_queue. Default true. */
  persist?: boolean;
  modules?: readonly TransformModule[];
  logger: Logger;
  onProgress?: (p: VerifyProgress) => void;
  /**
   * A verify started ahead of its snapshots (the cutover's full final verify): connections and catalogs are read at
   * once, the legacy snapshot is taken when `legacy` settles (legacy fenced: its rows are read and transformed while
   * the drain runs) and the target's when `target` does (the drain exact). A rejection ends the run. `waiting` is
   * called once connected and the catalogs read, as the run begins to wait for `legacy`.
   */
  snapshotsAfter?: { legacy?: Promise<void>; target?: Promise<void>; waiting?: () => void };
}

export interface VerifyProgress {
  phase: 'legacy' | 'compare' | 'recheck' | 'repair';
  /** Legacy table or V2 entity. */
  item?: string;
  done: number;
  total?: number;
}

/** A V2 row that still differs after the re-checks. */
export interface DriftRow {
  entity: V2Entity;
  kind: 'missing' | 'extra' | 'different';
  key: JsonRow;
  columns: string[];
  expected: JsonRow | null;
  actual: JsonRow | null;
  /** The legacy rows it derives from (what --repair re-emits). */
  sources: { table: string; key: JsonRow }[];
}

export interface EntityReport {
  entity: V2Entity;
  /** Rows the legacy snapshot produces / rows in the target (first pass). */
  expected: number;
  actual: number;
  chunks: number;
  mismatchedChunks: number;
  /** Differences of the first pass (before the re-checks). */
  firstPass: number;
  missing: number;
  extra: number;
  different: number;
  /** Keys still being written at every re-check: queued, not drift. */
  inFlux: number;
  /** Differing columns of the `different` rows, with their counts. */
  columns: Record<string, number>;
  samples: DriftRow[];
}

export interface ShopReport {
  shop: string;
  bundles: { expected: number; actual: number };
  components: { expected: number; actual: number };
  discounts: { expected: number; actual: number };
  drift: number;
}

export interface VerifyReport {
  runId: string;
  clean: boolean;
  snapshotLsn: string;
  startedAt: string;
  finishedAt: string;
  seconds: number;
  shop: string | null;
  /** Legacy rows read and target rows compared, and legacy rows per second over the whole run. */
  legacyRows: number;
  targetRows: number;
  rowsPerSecond: number;
  entities: EntityReport[];
  shops: ShopReport[];
  /** Per legacy table: rows, migrated, skipped, and rejected by reason (the "unmigrated rows"). */
  legacy: LegacyTableCounts[];
  recheck: { rounds: RecheckRound[]; queued: number; resolved: number; inFlux: number; timedOut: boolean };
  /**
   * From the target's snapshot on (with snapshotsAfter: the drain exact): how long the legacy side still ran, the
   * target's chunk hashes done, the comparison after them.
   */
  targetMs: { legacy: number; hashes: number; compare: number };
  repair?: RepairResult & { keys: number; unrepairable: number; fixed: number; rounds: RecheckRound[] };
}

/**
 * `replicator verify`: is the target what the legacy database says it should be?
 *
 * 1. Expected side: the legacy tables read in ONE consistent snapshot (REPEATABLE READ, the source's session
 *    settings and value decoding) whose WAL position is the snapshot LSN, streamed through the transform modules.
 * 2. Actual side: per entity, the target compared in key-range chunks by hash, mismatched chunks row by row.
 * 3. Every difference goes to the re-verify queue, re-checked after the sink has applied past a fresh snapshot
 *    (recheckDrift): only what still differs is drift; keys written again at every re-check stay queued as in flux.
 * 4. With `repair`, the drifted legacy rows are re-emitted through the pipeline and re-checked.
 * 5. The run and its queue are recorded in the target (verify_runs, reverify_queue).
 */
export async function runVerify(o: VerifyOptions): Promise<VerifyReport> {
  const started = Date.now();
  const startedAt = new Date(started).toISOString();
  const runId = randomUUID();
  const log = o.logger.child({ verify: runId });
  const modules = o.modules ?? transformModules;
  const entities = resolveEntities(o.entities, o.shop);
  const chunkRows = o.chunkRows ?? 1_000;
  const fetchRows = o.fetchRows ?? 5_000;
  const samples = o.samples ?? 10;
  const persist = o.persist ?? true;
  const waitForApplied = resolveWaiter(o);

  const target = await connect(o.targetUrl, { types: textTypes, options: TARGET_OPTIONS }, 'target');
  const reading = await connect(o.targetUrl, { types: textTypes, options: TARGET_OPTIONS }, 'target');
  try {
    if (persist) await ensureVerifySchema(target);
    const shapes = await readEntityShapes(target);
    const filterOf = (entity: V2Entity) => (o.shop !== undefined ? shopFilter(entity, o.shop) : undefined);

    // 2 (started first). The target hashes its chunks in its own snapshot while the legacy side is read and
    // transformed below: the target's work runs on the database server, the transforms here, at the same time.
    let targetAt = 0;
    const targetSnapshot = (o.snapshotsAfter?.target ?? Promise.resolve()).then(() => {
      targetAt = Date.now();
      return reading.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    });
    // Rejected: the run is abandoned (the cutover aborted), and the legacy read below stops at its next batch.
    let abandoned: unknown;
    targetSnapshot.catch((e: unknown) => {
      abandoned = e ?? new Error('verify abandoned');
    });
    const targetChunks = new Map<V2Entity, Promise<TargetChunk[]>>();
    let previous: Promise<unknown> = targetSnapshot;
    for (const entity of entities) {
      // One statement at a time on the connection, each started when the one before it is done.
      const p = previous.then(() =>
        hashTargetChunks(reading, entity, shapes[entity], chunkRows, filterOf(entity)),
      );
      p.catch(() => {});
      targetChunks.set(entity, p);
      previous = p;
    }

    // 1. Expected side, in one legacy snapshot.
    const tableNames = legacyTablesFor(modules, entities);
    const legacy = await connect(o.legacyUrl, { options: LEGACY_OPTIONS }, 'legacy');
    const expected = new ExpectedState(modules, shapes);
    let snapshotLsn: string;
    let settled: string | undefined;
    let tables: LegacyTable[];
    try {
      // A full run records where a later delta verify (the cutover's) may start: every commit before this position
      // is in the snapshot below (none when open transactions kept it from settling).
      if (persist && o.shop === undefined && entities.length === V2_ENTITIES.length) {
        const s = await settledLsn(legacy, { logger: log });
        if (s.settled) settled = s.lsn;
      }
      o.snapshotsAfter?.waiting?.();
      await o.snapshotsAfter?.legacy;
      await legacy.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      // The first statement takes the snapshot; the LSN read after it is past every commit the snapshot sees.
      snapshotLsn = (await legacy.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l'))
        .rows[0]!.l;
      const reader = new LegacyReader(legacy);
      tables = await reader.describe(tableNames);
      for (const t of tables) {
        if (o.shop !== undefined && !t.columns.some((c) => c.name === 'shop')) {
          throw new ReplicatorError(
            ErrorCodes.CONFIG_INVALID,
            `--shop: legacy table ${t.name} has no shop column`,
          );
        }
        const total = Number(
          (
            await legacy.query<{ n: string }>(
              'SELECT greatest(reltuples, 0)::int8::text AS n FROM pg_class WHERE oid = $1::regclass',
              [qualifiedName(t.schema, t.table)],
            )
          ).rows[0]?.n ?? 0,
        );
        let done = 0;
        for await (const batch of reader.stream(t, {
          batchRows: fetchRows,
          ...(o.shop !== undefined ? { where: { column: 'shop', value: o.shop } } : {}),
        })) {
          if (abandoned !== undefined) throw abandoned;
          for (const r of batch) expected.add(t.name, r.key, r.row);
          done += batch.length;
          o.onProgress?.({ phase: 'legacy', item: t.name, done, total: Math.max(total, done) });
        }
      }
      await legacy.query('COMMIT');
    } finally {
      await legacy.end().catch(() => {});
    }
    if (entities.includes('users')) expected.deriveUsers();
    log.info({ snapshotLsn, tables: [...expected.counts.values()] }, 'verify: legacy snapshot transformed');
    if (persist)
      await startRun(target, {
        id: runId,
        snapshotLsn,
        ...(settled ? { settledLsn: settled } : {}),
        summary: { entities, shop: o.shop ?? null },
      });

    // Sorted before the target's snapshot is awaited: with `snapshotsAfter`, while the drain still runs.
    const sorted = new Map(entities.map((e) => [e, sortByKey(shapes[e], expected.rows.get(e))]));
    const legacyAt = Date.now();
    // 2. Compare: chunk hashes, mismatched chunks row by row, in the target's snapshot (the connection is free
    // once every hash statement is done).
    await targetSnapshot;
    await Promise.allSettled(targetChunks.values());
    const hashedAt = Date.now();
    const comparisons = [];
    const shopCounts = new Map<string, ShopReport>();
    try {
      for (const entity of entities) {
        const shape = shapes[entity];
        const rows = sorted.get(entity)!;
        const filter = filterOf(entity);
        const comparison = await compareEntity({
          client: reading,
          entity,
          shape,
          expected: rows,
          targetChunks: await targetChunks.get(entity)!,
          ...(filter ? { filter } : {}),
          onChunk: (done) => o.onProgress?.({ phase: 'compare', item: entity, done, total: rows.length }),
        });
        log.info(
          {
            entity,
            expected: comparison.expected,
            actual: comparison.actual,
            differences: comparison.diffs.length,
          },
          'verify: entity compared',
        );
        comparisons.push(comparison);
      }
      if (entities.some((e) => SHOP_ENTITIES.includes(e)))
        await countShops(reading, expected, o.shop, shopCounts);
      await reading.query('COMMIT');
    } catch (e) {
      await reading.query('ROLLBACK').catch(() => {});
      throw e;
    }
    const targetMs = {
      legacy: Math.max(0, legacyAt - targetAt),
      hashes: hashedAt - targetAt,
      compare: Date.now() - hashedAt,
    };

    // 3. The re-verify queue.
    // Which legacy rows make each user: only when a user differs (a map over every booking otherwise).
    const origins = comparisons.some((c) => c.entity === 'users' && c.diffs.length > 0)
      ? expected.userOrigins()
      : new Map<string, Set<string>>();
    const items: RecheckItem[] = comparisons.flatMap((c) =>
      c.diffs.map((diff) => queueItem(diff, expected, origins)),
    );
    const recheckOptions = {
      legacyUrl: o.legacyUrl,
      targetUrl: o.targetUrl,
      tables: new Map(tables.map((t) => [t.name, t])),
      modules,
      shapes,
      waitForApplied,
      rounds: o.recheck.rounds ?? 4,
      logger: log,
      onRound: (r: RecheckRound) =>
        o.onProgress?.({ phase: 'recheck', done: r.round, total: o.recheck.rounds ?? 4 }),
    };
    const checked =
      items.length === 0 || recheckOptions.rounds === 0
        ? { drift: items, inFlux: [], rounds: [], timedOut: false }
        : await recheckDrift(items, recheckOptions);
    let drift = checked.drift;
    const recheckSummary = {
      rounds: checked.rounds,
      queued: items.length,
      resolved: items.length - checked.drift.length - checked.inFlux.length,
      inFlux: checked.inFlux.length,
      timedOut: checked.timedOut,
    };

    // 4. Repair.
    let repair: VerifyReport['repair'];
    if (o.repair && drift.length > 0) {
      const repairable = drift.filter((d) => d.refs.size > 0);
      const refs = new Set(repairable.flatMap((d) => [...d.refs]));
      o.onProgress?.({ phase: 'repair', done: 0, total: refs.size });
      const result = await repairDrift({ legacyUrl: o.legacyUrl, refs, repair: o.repair, logger: log });
      o.onProgress?.({ phase: 'repair', done: refs.size, total: refs.size });
      for (const item of repairable) {
        item.confirmations = 0;
        item.inFlux = false;
      }
      const after = await recheckDrift(repairable, {
        ...recheckOptions,
        rounds: Math.max(recheckOptions.rounds, 2),
      });
      const remaining = [...drift.filter((d) => d.refs.size === 0), ...after.drift];
      checked.inFlux.push(...after.inFlux);
      repair = {
        ...result,
        keys: drift.length,
        unrepairable: drift.length - repairable.length,
        fixed: drift.length - remaining.length - after.inFlux.length,
        rounds: after.rounds,
      };
      drift = remaining;
    }

    // 5. Report and record.
    const report = buildReport({
      runId,
      startedAt,
      started,
      snapshotLsn,
      shop: o.shop ?? null,
      comparisons,
      drift,
      inFlux: checked.inFlux,
      samples,
      expected,
      shopCounts,
      recheck: recheckSummary,
      targetMs,
      ...(repair ? { repair } : {}),
    });
    if (persist) {
      const queue: QueuedKey[] = [
        ...drift.map((d) => ({ entity: d.entity, key: d.diff.key, status: 'drift' as const })),
        ...checked.inFlux.map((d) => ({ entity: d.entity, key: d.diff.key, status: 'in-flux' as const })),
      ];
      await finishRun(target, { id: runId, clean: report.clean, summary: summaryOf(report), queue });
    }
    log.info(
      { clean: report.clean, seconds: report.seconds, rowsPerSecond: report.rowsPerSecond },
      'verify: finished',
    );
    return report;
  } finally {
    await reading.end().catch(() => {});
    await target.end().catch(() => {});
  }
}

/**
 * Expected rows in key order (compareKeys). A one-column uuid key sorts as its text, with the engine's own string
 * sort (no comparator: UTF-16 order, which is uuid order for lower-case hex).
 */
function sortByKey(shape: EntityShape, rows: ReadonlyMap<string, ExpectedRow> | undefined): ExpectedRow[] {
  if (!rows) return [];
  const k = shape.key[0]!;
  if (shape.key.length === 1 && k.kind !== 'text' && k.kind !== 'integer' && k.kind !== 'bigint') {
    return [...rows.keys()].sort().map((key) => rows.get(key)!);
  }
  return [...rows.values()]
    .map((e) => ({ e, values: keyValues(shape, e.row) }))
    .sort((a, b) => compareKeys(shape, a.values, b.values))
    .map((x) => x.e);
}

function resolveEntities(entities: readonly V2Entity[] | undefined, shop: string | undefined): V2Entity[] {
  for (const e of entities ?? []) {
    if (!V2_ENTITIES.includes(e)) {
      throw new ReplicatorError(
        ErrorCodes.CONFIG_INVALID,
        `unknown entity ${JSON.stringify(e)} (one of ${V2_ENTITIES.join(', ')})`,
      );
    }
  }
  if (shop !== undefined) {
    const other = (entities ?? []).filter((e) => !SHOP_ENTITIES.includes(e));
    if (other.length > 0) {
      throw new ReplicatorError(
        ErrorCodes.CONFIG_INVALID,
        `--shop applies to ${SHOP_ENTITIES.join(', ')} only, not ${other.join(', ')}`,
      );
    }
    return entities && entities.length > 0
      ? V2_ENTITIES.filter((e) => entities.includes(e))
      : [...SHOP_ENTITIES];
  }
  return entities && entities.length > 0 ? V2_ENTITIES.filter((e) => entities.includes(e)) : [...V2_ENTITIES];
}

function resolveWaiter(o: VerifyOptions): (lsn: string) => Promise<boolean> {
  if (o.recheck.waitForApplied) return o.recheck.waitForApplied;
  if (o.recheck.sink !== undefined) {
    return sinkAppliedWaiter({
      legacyUrl: o.legacyUrl,
      targetUrl: o.targetUrl,
      ...o.recheck.sink,
      ...(o.recheck.timeoutMs !== undefined ? { timeoutMs: o.recheck.timeoutMs } : {}),
      logger: o.logger,
    });
  }
  if ((o.recheck.rounds ?? 4) === 0) return async () => true;
  throw new ReplicatorError(
    ErrorCodes.CONFIG_INVALID,
    'verify: recheck needs waitForApplied or a sink (or rounds: 0)',
  );
}

/** A verify connection; a failure to connect is PG_CONNECTION_FAILED naming the database. */
export async function connect(url: string, config: pg.ClientConfig, which: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, ...config });
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (e) {
    const classified = classifyConnectionError(e, { kind: 'postgres', url, role: which });
    throw toReplicatorError(
      classified,
      ErrorCodes.PG_CONNECTION_FAILED,
      `verify: ${which} database unreachable`,
    );
  }
  return client;
}

/** Columns of each entity in the V2 schema's order, typed by the target's columns. */
export async function readEntityShapes(client: pg.ClientBase): Promise<Record<V2Entity, EntityShape>> {
  const types = await readColumnTypes(client);
  const missing = V2_ENTITIES.filter((e) => !types.has(e));
  if (missing.length > 0) {
    throw new ReplicatorError(
      ErrorCodes.TARGET_NOT_INITIALIZED,
      `the target has no V2 table ${missing.join(', ')}: run \`replicator init-target\` first`,
    );
  }
  const shapes = {} as Record<V2Entity, EntityShape>;
  for (const entity of V2_ENTITIES) {
    const kindOf = (c: string): ColumnKind => columnKind(types.get(entity)?.get(c));
    const columns = Object.keys(V2Schemas[entity].shape).map((name) => ({ name, kind: kindOf(name) }));
    shapes[entity] = { columns, key: V2_KEYS[entity].map((name) => ({ name, kind: kindOf(name) })) };
  }
  return shapes;
}

function legacyTablesFor(modules: readonly TransformModule[], entities: readonly V2Entity[]): string[] {
  const topics = new Set(entities.flatMap((e) => PRODUCED_BY[e]));
  const out: string[] = [];
  for (const m of modules)
    for (const t of m.tables) if (topics.has(m.topicFor(t)) && !out.includes(t)) out.push(t);
  return out;
}

function shopFilter(entity: V2Entity, shop: string): TargetFilter {
  if (entity === 'bundles') return { sql: 't.shop = $1', values: [shop] };
  return { sql: 't.bundle_id IN (SELECT id FROM bundles WHERE shop = $1)', values: [shop] };
}

/** Expected and actual bundles, components and discounts per shop (the seeds' counts per shop). */
async function countShops(
  client: pg.ClientBase,
  expected: ExpectedState,
  shop: string | undefined,
  out: Map<string, ShopReport>,
): Promise<void> {
  const entry = (s: string) => {
    let r = out.get(s);
    if (!r) {
      r = {
        shop: s,
        bundles: { expected: 0, actual: 0 },
        components: { expected: 0, actual: 0 },
        discounts: { expected: 0, actual: 0 },
        drift: 0,
      };
      out.set(s, r);
    }
    return r;
  };
  const shopOf = new Map<string, string>();
  for (const b of expected.rows.get('bundles')?.values() ?? []) {
    const s = String(b.row.shop);
    shopOf.set(String(b.row.id), s);
    entry(s).bundles.expected++;
  }
  for (const c of expected.rows.get('bundle_components')?.values() ?? []) {
    const s = shopOf.get(String(c.row.bundle_id));
    if (s !== undefined) entry(s).components.expected++;
  }
  for (const d of expected.rows.get('bundle_discounts')?.values() ?? []) {
    const s = shopOf.get(String(d.row.bundle_id));
    if (s !== undefined) entry(s).discounts.expected++;
  }
  const where = shop === undefined ? '' : 'WHERE b.shop = $1';
  const values = shop === undefined ? [] : [shop];
  const count = async (sql: string, set: (r: ShopReport, n: number) => void) => {
    for (const row of (await client.query<{ shop: string; n: number }>(sql, values)).rows)
      set(entry(row.shop), row.n);
  };
  await count(`SELECT b.shop, count(*)::int AS n FROM bundles b ${where} GROUP BY b.shop`, (r, n) => {
    r.bundles.actual = n;
  });
  await count(
    `SELECT b.shop, count(*)::int AS n FROM bundle_components c JOIN bundles b ON b.id = c.bundle_id ${where} GROUP BY b.shop`,
    (r, n) => {
      r.components.actual = n;
    },
  );
  await count(
    `SELECT b.shop, count(*)::int AS n FROM bundle_discounts d JOIN bundles b ON b.id = d.bundle_id ${where} GROUP BY b.shop`,
    (r, n) => {
      r.discounts.actual = n;
    },
  );
}

function queueItem(
  diff: RowDiff,
  expected: ExpectedState,
  userOrigins: Map<string, Set<string>>,
): RecheckItem {
  const refs = new Set<string>();
  let email: string | undefined;
  if (diff.entity === 'users') {
    const id = String(diff.key.id);
    for (const r of userOrigins.get(id) ?? []) refs.add(r);
    const row = diff.expected ?? diff.actual;
    if (row && typeof row.email === 'string') email = row.email;
  } else {
    const origin = expected.rows.get(diff.entity)?.get(diff.keyText)?.origin;
    if (origin) refs.add(origin);
  }
  return {
    entity: diff.entity,
    values: diff.values,
    keyText: diff.keyText,
    refs,
    ...(email !== undefined ? { email } : {}),
    confirmations: 0,
    inFlux: false,
    diff,
  };
}

function buildReport(o: {
  runId: string;
  startedAt: string;
  started: number;
  snapshotLsn: string;
  shop: string | null;
  comparisons: Awaited<ReturnType<typeof compareEntity>>[];
  drift: RecheckItem[];
  inFlux: RecheckItem[];
  samples: number;
  expected: ExpectedState;
  shopCounts: Map<string, ShopReport>;
  recheck: VerifyReport['recheck'];
  targetMs: VerifyReport['targetMs'];
  repair?: VerifyReport['repair'];
}): VerifyReport {
  const finished = Date.now();
  const seconds = (finished - o.started) / 1000;
  const entities: EntityReport[] = o.comparisons.map((c) => {
    const drift = o.drift.filter((d) => d.entity === c.entity);
    const columns: Record<string, number> = {};
    for (const d of drift) for (const col of d.diff.columns) columns[col] = (columns[col] ?? 0) + 1;
    const samples: DriftRow[] = [];
    for (const kind of ['missing', 'extra', 'different'] as const) {
      for (const d of drift.filter((x) => x.diff.kind === kind).slice(0, o.samples)) {
        samples.push({
          entity: d.entity,
          kind,
          key: d.diff.key,
          columns: d.diff.columns,
          // JSON exactly: a number a double cannot hold is shown as its text.
          expected: displayRow(d.diff.expected),
          actual: displayRow(d.diff.actual),
          sources: [...d.refs].map(parseRef),
        });
      }
    }
    return {
      entity: c.entity,
      expected: c.expected,
      actual: c.actual,
      chunks: c.chunks,
      mismatchedChunks: c.mismatchedChunks,
      firstPass: c.diffs.length,
      missing: drift.filter((d) => d.diff.kind === 'missing').length,
      extra: drift.filter((d) => d.diff.kind === 'extra').length,
      different: drift.filter((d) => d.diff.kind === 'different').length,
      inFlux: o.inFlux.filter((d) => d.entity === c.entity).length,
      columns,
      samples,
    };
  });
  // Drift per shop: a bundle row's shop, or its bundle's.
  const shopOf = new Map<string, string>();
  for (const b of o.expected.rows.get('bundles')?.values() ?? [])
    shopOf.set(String(b.row.id), String(b.row.shop));
  for (const d of o.drift) {
    if (!SHOP_ENTITIES.includes(d.entity)) continue;
    const row = d.diff.expected ?? d.diff.actual;
    const shop = d.entity === 'bundles' ? row?.shop : shopOf.get(String(row?.bundle_id));
    const entry = typeof shop === 'string' ? o.shopCounts.get(shop) : undefined;
    if (entry) entry.drift++;
  }
  const legacyRows = [...o.expected.counts.values()].reduce((n, t) => n + t.rows, 0);
  const targetRows = o.comparisons.reduce((n, c) => n + c.actual, 0);
  return {
    runId: o.runId,
    clean: o.drift.length === 0,
    snapshotLsn: o.snapshotLsn,
    startedAt: o.startedAt,
    finishedAt: new Date(finished).toISOString(),
    seconds,
    shop: o.shop,
    legacyRows,
    targetRows,
    rowsPerSecond: seconds > 0 ? Math.round(legacyRows / seconds) : legacyRows,
    entities,
    shops: [...o.shopCounts.values()].sort((a, b) => (a.shop < b.shop ? -1 : a.shop > b.shop ? 1 : 0)),
    legacy: [...o.expected.counts.values()],
    recheck: o.recheck,
    targetMs: o.targetMs,
    ...(o.repair ? { repair: o.repair } : {}),
  };
}

/** What verify_runs.summary keeps: the counts, not the sample rows (which may hold personal data). */
function summaryOf(r: VerifyReport) {
  return {
    clean: r.clean,
    shop: r.shop,
    seconds: r.seconds,
    legacyRows: r.legacyRows,
    targetRows: r.targetRows,
    entities: r.entities.map(({ samples: _samples, ...rest }) => rest),
    shops: r.shops,
    legacy: r.legacy,
    recheck: r.recheck,
    ...(r.repair ? { repair: r.repair } : {}),
  };
}
