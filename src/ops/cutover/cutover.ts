import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import type { Kafka } from 'kafkajs';
import pg from 'pg';
import { dropToastImages, ensureReplicatorSchema } from '../../../connectors/postgres-sink/index.js';
import { changeTopics, dlqTopic, EMIT_HEARTBEAT_SQL, heartbeatPrefix } from '../../contracts/topics.js';
import { ErrorCodes, ReplicatorError, withEndpoint } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { textTypes } from '../../core/pg-text-types.js';
import { sleep } from '../../core/retry.js';
import { qualifiedName, quoteIdent } from '../../core/sql.js';
import type { ReplicatorConfig } from '../../pipeline/config/load-config.js';
import type { cutoverSchema } from '../../pipeline/config/schema.js';
import { listDeadLetters } from '../dlq/dead-letters.js';
import { appliedThrough, sinkBacklog, slotPassed } from '../verify/sink-applied-waiter.js';
import {
  closeReleasedFence,
  type FenceOptions,
  fenceLegacy,
  holdWriters,
  installFence,
  releaseHeldFence,
  releaseWriters,
  removeFence,
} from './fence.js';

const run = promisify(execFile);
type FlipAction = ReturnType<typeof cutoverSchema.parse>['flip'][number];

export { CUTOVER_PHASES, type CutoverPhase, phaseNumber } from '../../contracts/cutover-phase.js';

import type { CutoverPhase } from '../../contracts/cutover-phase.js';

export interface VerifyOutcome {
  clean: boolean;
  summary: string;
}

/** A final verify begun with writes fenced: its outcome once the drain is exact, or abandoned with the attempt. */
export interface FinalVerifyRun {
  /** Settles once what can be read before the fence is read (the cutover fences after it). */
  prepared?: Promise<void>;
  /**
   * Called right before the fence, after the cutover waited for a lull: the choice between delta and full made at
   * the start is checked against what changed since; settles once the run is ready to be fenced.
   */
  fencing?(): Promise<void>;
  drained(): Promise<VerifyOutcome>;
  abandon(): Promise<void>;
}

export interface CutoverOptions {
  config: ReplicatorConfig;
  kafka: Kafka;
  logger: Logger;
  print: (line: string) => void;
  dryRun?: boolean;
  shop?: string;
  maxLagSeconds?: number;
  budgetSeconds?: number;
  /** How long the catch-up gate waits (overrides cutover.waitSeconds). */
  waitSeconds?: number;
  /** Attempts after one aborted for its budget (overrides cutover.retries). */
  retries?: number;
  /** 'reject' (triggers refuse writes from the fence on) or 'wait' (writers wait on locks until the flip). */
  fence?: 'reject' | 'wait';
  allowDlq?: boolean;
  /**
   * The final verify (keys changed since the last verify, or everything), prepared before the fence (its choice,
   * connections, catalogs, a first read of the rows changed so far: `prepared`) and finished once `fenced` settles
   * — legacy no longer changes, so it reads again what changed meanwhile while the drain runs; `deadLetters`: the
   * letters the go/no-go counted (changes the lineage does not record).
   */
  verify: (o: { shop?: string; deadLetters: number; fenced: Promise<void> }) => FinalVerifyRun;
  onPhase?: (phase: CutoverPhase) => void;
  /** The V2 tables (post-flip writes to them are recorded for a rollback). */
  v2Tables: readonly string[];
  /** Fault injection for tests: stop (forever) right after persisting this phase. */
  pauseAfter?: string;
}

export interface GoNoGo {
  check: string;
  ok: boolean;
  detail: string;
  /** The number the check measured, where later steps need it (the dead letters). */
  measured?: number;
}

export interface CutoverResult {
  id: string;
  phase: CutoverPhase;
  writeBlockedMs?: number;
  checks: GoNoGo[];
  resumed?: string;
}

function targetClient(config: ReplicatorConfig): pg.Client {
  if (!config.target) throw new ReplicatorError(ErrorCodes.CONFIG_INVALID, 'cutover needs target.url');
  return new pg.Client({ connectionString: config.target.url, types: textTypes, options: '-c TimeZone=UTC' });
}

const legacyAdminUrl = (config: ReplicatorConfig) => config.cutover.adminUrl ?? config.source.url;

/** Connects the target and legacy clients; a failure names the endpoint (PG_UNREACHABLE, PG_AUTH_FAILED, …). */
async function connectBoth(config: ReplicatorConfig, target: pg.Client, legacy: pg.Client): Promise<void> {
  await withEndpoint({ kind: 'postgres', url: config.target?.url ?? '', role: 'target' }, () =>
    target.connect(),
  );
  try {
    await withEndpoint({ kind: 'postgres', url: legacyAdminUrl(config), role: 'legacy' }, () =>
      legacy.connect(),
    );
  } catch (e) {
    await target.end().catch(() => {});
    throw e;
  }
}

async function topicSize(kafka: Kafka, topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic).catch(() => []);
    return offsets.reduce((n, p) => n + (Number(p.high) - Number(p.low)), 0);
  } finally {
    await admin.disconnect();
  }
}

/** A cutover aborted because it could not flip within its budget after the fence (retryable by `retries`). */
function overBudget(budgetSeconds: number, where: string): ReplicatorError {
  return new ReplicatorError(
    ErrorCodes.CUTOVER_FAILED,
    `the cutover did not fit its ${budgetSeconds} s budget (${where}): aborted and unfenced, so writes were not blocked longer; raise --budget, or pass --retries N to try again later`,
    { details: { overBudget: true } },
  );
}

const isOverBudget = (e: unknown) =>
  e instanceof ReplicatorError && (e.details as { overBudget?: boolean } | undefined)?.overBudget === true;

/** `work`, or an over-budget error once `deadline` (epoch ms) passes first (the work's result is then ignored). */
async function withinBudget<T>(work: Promise<T>, deadline: number, err: () => ReplicatorError): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(err()), Math.max(0, deadline - Date.now()));
  });
  work.catch(() => {});
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Go/no-go checks that waiting can satisfy (the sink catching up), as opposed to a DLQ or a drifted verify. */
const CATCH_UP_CHECKS = new Set(['replication lag', 'source caught up', 'predicted drain']);

/** The raw change topics, which the sink applies directly. */
const changeTopicsOf = (config: ReplicatorConfig) =>
  changeTopics({ rawPrefix: config.kafka.topicPrefix, tables: config.source.tables });

/** The go/no-go conditions, each with what it measured. */
export async function goNoGo(
  o: Pick<CutoverOptions, 'config' | 'kafka' | 'maxLagSeconds' | 'budgetSeconds' | 'allowDlq'>,
  target: pg.Client,
  legacy: pg.Client,
): Promise<GoNoGo[]> {
  const { config } = o;
  // The source's side of the backlog: WAL written now must reach Kafka (the slot's confirmed position, which the
  // source reports once Kafka acknowledged everything before it) soon, or the drain would wait for the source inside
  // the fence. Taken now, checked after the rate measurement below.
  const walNow = (await legacy.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l;
  const sourceStarted = Date.now();
  const checks: GoNoGo[] = [];
  const maxLag = o.maxLagSeconds ?? config.cutover.maxLagSeconds;
  const lagMs = await appliedLagMs(config, target, legacy);
  checks.push(
    lagMs === undefined
      ? { check: 'replication lag', ok: false, detail: 'the sink has applied nothing yet' }
      : {
          check: 'replication lag',
          ok: lagMs / 1000 <= maxLag,
          detail: `${(lagMs / 1000).toFixed(2)} s (max ${maxLag} s; heartbeats keep it fresh)`,
        },
  );
  // Offsets include transaction control records: read the topic for an exact count when it is not empty.
  const dlqOffsets = await topicSize(o.kafka, dlqTopic(config.kafka.topicPrefix));
  const dlq =
    dlqOffsets === 0 ? 0 : (await listDeadLetters(o.kafka, dlqTopic(config.kafka.topicPrefix))).length;
  checks.push({
    check: 'dead-letter queue',
    measured: dlq,
    ok: dlq === 0 || Boolean(o.allowDlq),
    detail: `${dlq} message(s)${dlq > 0 ? (o.allowDlq ? ' (allowed by --allow-dlq)' : ': inspect with `replicator dlq list` or pass --allow-dlq') : ''}`,
  });
  const verifyTable = (await target.query("SELECT to_regclass('replicator.verify_runs') AS r")).rows[0]?.r;
  const lastVerify = verifyTable
    ? (
        await target.query<{ clean: boolean; finished_at: string }>(
          'SELECT clean, finished_at::text FROM replicator.verify_runs WHERE finished_at IS NOT NULL ORDER BY started_at DESC LIMIT 1',
        )
      ).rows[0]
    : undefined;
  checks.push(
    lastVerify
      ? {
          check: 'last verify',
          ok: lastVerify.clean,
          detail: `${lastVerify.clean ? 'clean' : 'DRIFT'} at ${lastVerify.finished_at}`,
        }
      : { check: 'last verify', ok: false, detail: 'no verify run yet: run `replicator verify` first' },
  );
  const lags = await sinkBacklog(o.kafka, target, config.sink.groupId, changeTopicsOf(config));
  const backlog = lags.reduce((n, [, l]) => n + l, 0);
  const applied = async () =>
    Number(
      (
        await target.query<{ n: string }>(
          'SELECT coalesce(sum(next_offset), 0)::text AS n FROM replicator.sink_offsets WHERE group_id = $1',
          [config.sink.groupId],
        )
      ).rows[0]!.n,
    );
  const a0 = await applied();
  const t0 = Date.now();
  await sleep(1_000);
  const rate = ((await applied()) - a0) / ((Date.now() - t0) / 1000);
  const budget = o.budgetSeconds ?? config.cutover.budgetSeconds;
  const predicted = backlog === 0 ? 0 : rate > 0 ? backlog / rate : Number.POSITIVE_INFINITY;
  checks.push(await sourceCaughtUp(o, legacy, walNow, sourceStarted));
  checks.push({
    check: 'predicted drain',
    ok: predicted <= budget,
    detail: `${backlog} message(s) behind at ${rate.toFixed(0)}/s ≈ ${Number.isFinite(predicted) ? predicted.toFixed(2) : '∞'} s (budget ${budget} s)${
      backlog > 0
        ? `; ${lags
            .filter(([, l]) => l > 0)
            .map(([t, l]) => `${t}: ${l}`)
            .join(', ')}`
        : ''
    }`,
  });
  return checks;
}

/**
 * Whether the source acknowledged to Kafka the WAL position `walNow` (taken at `since`) within the budget, or within
 * two of its status intervals if longer (the slot's position is reported that often).
 */
async function sourceCaughtUp(
  o: Pick<CutoverOptions, 'config' | 'budgetSeconds'>,
  legacy: pg.Client,
  walNow: string,
  since: number,
): Promise<GoNoGo> {
  const { config } = o;
  const budget = o.budgetSeconds ?? config.cutover.budgetSeconds;
  const until = since + Math.max(budget * 1000, 2 * config.source.statusIntervalMs);
  for (;;) {
    const row = await slotPassed(legacy, config.source.slot, walNow);
    const seconds = ((Date.now() - since) / 1000).toFixed(2);
    if (row?.passed)
      return {
        check: 'source caught up',
        ok: true,
        detail: `WAL written at the check in Kafka after ${seconds} s`,
      };
    if (Date.now() >= until) {
      return {
        check: 'source caught up',
        ok: false,
        detail: !row
          ? `slot ${config.source.slot} does not exist`
          : row.copying
            ? `the source is still copying its initial snapshot (slot ${config.source.slot})`
            : `${row.behind} byte(s) of WAL not yet in Kafka after ${seconds} s (slot ${config.source.slot}; is the source running?)`,
      };
    }
    await sleep(50);
  }
}

/**
 * The pipeline's commit → applied lag, ms: legacy's clock against the newest legacy commit the sink applied
 * (replicator.applied, kept fresh by heartbeats when idle); undefined before it applied anything. The gate's check
 * and the lull before the fence read it alike.
 */
async function appliedLagMs(
  config: ReplicatorConfig,
  target: pg.Client,
  legacy: pg.Client,
): Promise<number | undefined> {
  const [now, applied] = await Promise.all([
    legacy.query<{ ms: number }>('SELECT extract(epoch FROM clock_timestamp())::float8 * 1000 AS ms'),
    target.query<{ ms: number | null }>(
      'SELECT extract(epoch FROM commit_ts)::float8 * 1000 AS ms FROM replicator.applied WHERE group_id = $1',
      [config.sink.groupId],
    ),
  ]);
  const ts = applied.rows[0]?.ms;
  return ts == null ? undefined : Math.max(0, Math.round(now.rows[0]!.ms - ts));
}

/**
 * Waits for a moment to fence: the drain inside the window lasts about as long as the pipeline's commit → applied
 * lag when the fence is taken, and under load that lag swings from batch to batch (on the bench box 0.1–1.5 s at 1k
 * writes/s, and the final verify's preparation just before the fence adds a burst). gh-ost, for the same reason,
 * starts its cut-over only once its heartbeat lag is low. The lag is legacy's clock against the newest legacy commit
 * the sink applied (replicator.applied); an idle source is nudged with a heartbeat so the figure is fresh. Polls
 * until it is under `cutover.fenceLagMs` or `until`: the gate has passed by then, and the budget still bounds the
 * window if it fences without a lull.
 */
async function awaitLull(
  o: Pick<CutoverOptions, 'config' | 'logger'>,
  target: pg.Client,
  legacy: pg.Client,
  until: number,
): Promise<{ lull: boolean; lagMs: number | undefined; waitedMs: number }> {
  const { config } = o;
  const started = Date.now();
  let nudged = 0;
  let warned = false;
  for (;;) {
    const lagMs = await appliedLagMs(config, target, legacy);
    const waitedMs = Date.now() - started;
    if (lagMs !== undefined && lagMs <= config.cutover.fenceLagMs) return { lull: true, lagMs, waitedMs };
    if (Date.now() >= until) return { lull: false, lagMs, waitedMs };
    // Idle, the newest applied commit is as old as the last heartbeat: send one.
    if (Date.now() - nudged >= 250) {
      nudged = Date.now();
      await legacy
        .query(EMIT_HEARTBEAT_SQL, [heartbeatPrefix(config.kafka.topicPrefix)])
        .catch((e: unknown) => {
          if (!warned) o.logger.warn({ err: String(e) }, 'cutover: could not emit a heartbeat');
          warned = true;
        });
    }
    await sleep(20);
  }
}

async function runActions(
  actions: readonly FlipAction[],
  ctx: { id: string; shop?: string; legacy: pg.Client; target: pg.Client },
) {
  for (const a of actions) {
    if ('shell' in a) {
      await run('sh', ['-c', a.shell], {
        env: { ...process.env, CUTOVER_ID: ctx.id, CUTOVER_SHOP: ctx.shop ?? '' },
      });
    } else {
      const client = a.on === 'legacy' ? ctx.legacy : ctx.target;
      await client.query(a.sql, ctx.shop !== undefined && a.sql.includes('$1') ? [ctx.shop] : []);
    }
  }
}

/** Target sequences to at least the legacy value + gap (PostgreSQL's logical replication does not carry them). */
async function syncSequences(
  config: ReplicatorConfig,
  legacy: pg.Client,
  target: pg.Client,
  /** Again after the waiting fence's admitted writes: V2's sequence was already synced, so legacy should be below it. */
  again = false,
): Promise<string[]> {
  const lines: string[] = [];
  for (const s of config.cutover.sequences) {
    const [ls, lt] = s.legacy.split('.') as [string, string];
    const [ts, tt] = s.target.split('.') as [string, string];
    const legacyValue = BigInt(
      (await legacy.query<{ v: string }>(`SELECT last_value::text AS v FROM ${qualifiedName(ls, lt)}`))
        .rows[0]!.v,
    );
    const current = BigInt(
      (await target.query<{ v: string }>(`SELECT last_value::text AS v FROM ${qualifiedName(ts, tt)}`))
        .rows[0]!.v,
    );
    const next = legacyValue + BigInt(s.gap) > current ? legacyValue + BigInt(s.gap) : current;
    await target.query('SELECT setval($1::regclass, $2::bigint)', [qualifiedName(ts, tt), next.toString()]);
    // Legacy past the value the flip gave V2: the admitted inserts used more than the gap, so V2 ids the
    // application drew since may equal legacy ones (their streamed rows then fail into the DLQ).
    const overrun = again && legacyValue >= current ? '; WARNING: legacy passed it: raise the gap' : '';
    lines.push(`${s.target} → ${next} (legacy ${legacyValue} + gap ${s.gap}${overrun})`);
  }
  return lines;
}

/** After the flip, record every write to the V2 tables, so a rollback can list what the application wrote. */
async function installPostFlipCapture(target: pg.Client, id: string, entities: readonly string[]) {
  await target.query(`CREATE TABLE IF NOT EXISTS replicator.post_flip_changes (
    cutover_id text NOT NULL, table_name text NOT NULL, op text NOT NULL, row_data jsonb NOT NULL, at timestamptz NOT NULL DEFAULT now())`);
  // The sink's own writes are not the application's: the waiting fence's admitted writes, streamed after the flip,
  // are in legacy already (and, per shop, other shops' rows still replicating).
  await target.query(`CREATE OR REPLACE FUNCTION replicator.capture_post_flip() RETURNS trigger LANGUAGE plpgsql AS $c$
    BEGIN
      IF current_setting('application_name', true) = 'replicator-sink' THEN RETURN NULL; END IF;
      INSERT INTO replicator.post_flip_changes (cutover_id, table_name, op, row_data)
      VALUES (TG_ARGV[0], TG_TABLE_NAME, TG_OP, to_jsonb(COALESCE(NEW, OLD)));
      RETURN NULL;
    END $c$`);
  for (const e of entities) {
    await target.query(`DROP TRIGGER IF EXISTS replicator_post_flip ON ${quoteIdent(e)}`);
    await target.query(
      `CREATE TRIGGER replicator_post_flip AFTER INSERT OR UPDATE OR DELETE ON ${quoteIdent(e)} FOR EACH ROW EXECUTE FUNCTION replicator.capture_post_flip(${`'${id.replace(/'/g, "''")}'`})`,
    );
  }
}

async function dropPostFlipCapture(target: pg.Client, entities: readonly string[]) {
  for (const e of entities)
    await target.query(`DROP TRIGGER IF EXISTS replicator_post_flip ON ${quoteIdent(e)}`);
}

interface CutoverRow {
  id: string;
  shop: string | null;
  phase: CutoverPhase;
  fence_committed_at: string | null;
  fence_mode: 'reject' | 'wait';
}

const fenceOptionsOf = (config: ReplicatorConfig, id: string, shop: string | undefined): FenceOptions => ({
  cutoverId: id,
  tables: config.source.tables,
  ...(shop ? { shop } : {}),
  topicPrefix: config.kafka.topicPrefix,
  lockTimeoutMs: config.cutover.lockTimeoutMs,
  lockRetries: config.cutover.lockRetries,
});

/**
 * `replicator cutover`: go/no-go, fence, exact drain, final verify, flip — a state machine persisted in the target.
 * A cutover interrupted before its flip is rolled back (fence removed) the next time, then attempted afresh; one
 * interrupted during its flip is resumed (flip actions must be idempotent). Any failure before the flip removes
 * the fence: legacy is never left fenced with nothing flipped.
 */
export async function runCutover(o: CutoverOptions): Promise<CutoverResult> {
  const { config, print } = o;
  const target = targetClient(config);
  const legacy = new pg.Client({ connectionString: legacyAdminUrl(config) });
  await connectBoth(config, target, legacy);
  let fenceClock: number | undefined;
  const setPhase = async (id: string, phase: CutoverPhase, extra: Record<string, unknown> = {}) => {
    if (phase === 'fenced') fenceClock = Date.now();
    const cols = Object.keys(extra);
    await target.query(
      `UPDATE replicator.cutovers SET phase = $2${cols.map((c, i) => `, ${quoteIdent(c)} = $${i + 3}`).join('')} WHERE id = $1`,
      [id, phase, ...cols.map((c) => extra[c])],
    );
    o.onPhase?.(phase);
    print(
      `[cutover ${id.slice(0, 8)}] ${phase}${fenceClock !== undefined ? ` (+${Date.now() - fenceClock} ms since the fence)` : ''}`,
    );
    if (o.pauseAfter === phase) await new Promise(() => {});
  };
  try {
    await ensureReplicatorSchema(target);
    let resumed: string | undefined;
    const open = (
      await target.query<CutoverRow>(
        `SELECT id, shop, phase, fence_committed_at::text, fence_mode FROM replicator.cutovers
          WHERE (phase NOT IN ('aborted', 'rolled-back', 'dry-run', 'finalized', 'flipped') OR (phase = 'flipped' AND tail_pending))
            AND shop IS NOT DISTINCT FROM $1 ORDER BY started_at DESC`,
        [o.shop ?? null],
      )
    ).rows;
    for (const c of open) {
      const fence = fenceOptionsOf(config, c.id, c.shop ?? undefined);
      if (c.phase === 'flipped') {
        // Flipped, but the waiting fence's admitted writes were not all streamed (its connection died with the
        // cutover, and legacy may have taken writes since): fence for good, then stream what legacy has.
        print(`[cutover ${c.id.slice(0, 8)}] flipped, but legacy's last writes were not streamed: finishing`);
        await fenceLegacy(legacy, fence);
        await streamAdmitted(o, target, legacy, c.id, fence);
        return { id: c.id, phase: 'flipped', checks: [], resumed: c.id };
      }
      if (c.phase === 'flipping') {
        print(`[cutover ${c.id.slice(0, 8)}] was interrupted while flipping: resuming the flip`);
        // A waiting fence was never committed: its locks went with the cutover's connection.
        if (c.fence_mode === 'wait') await fenceLegacy(legacy, fence);
        const result = await flip(o, target, legacy, c.id, c.fence_committed_at, setPhase, {
          mode: c.fence_mode,
          fence,
        });
        return { ...result, checks: [], resumed: c.id };
      }
      print(`[cutover ${c.id.slice(0, 8)}] was interrupted at ${c.phase}: removing its fence (rolled back)`);
      await removeFence(legacy, c.id, config.source.tables);
      await target.query(
        "UPDATE replicator.cutovers SET phase = 'aborted', error = $2, finished_at = now() WHERE id = $1",
        [c.id, `interrupted at ${c.phase}; fence removed by a later run`],
      );
      resumed = c.id;
    }
    const done = (
      await target.query<{ id: string }>(
        "SELECT id FROM replicator.cutovers WHERE phase = 'flipped' AND shop IS NOT DISTINCT FROM $1 LIMIT 1",
        [o.shop ?? null],
      )
    ).rows[0];
    if (done) {
      throw new ReplicatorError(
        ErrorCodes.CUTOVER_REFUSED,
        `already cut over (${done.id}); use \`replicator rollback\` first`,
      );
    }

    const retries = o.retries ?? config.cutover.retries;
    for (let attempt = 0; ; attempt++) {
      try {
        return await attemptCutover();
      } catch (e) {
        if (!isOverBudget(e) || attempt >= retries) throw e;
        print(
          `  attempt ${attempt + 1} of ${retries + 1} did not fit the budget; trying again in ${config.cutover.retryDelaySeconds} s`,
        );
        await sleep(config.cutover.retryDelaySeconds * 1000);
      }
    }

    /** One attempt: the catch-up gate, the fence, the drain, the final verify and the flip, all within the budget. */
    async function attemptCutover(): Promise<CutoverResult> {
      let checks = await goNoGo(o, target, legacy);
      // The catch-up gate: while only the pipeline's backlog stands in the way (lag, WAL the source has not brought to
      // Kafka, the sink's predicted drain), wait for it to catch up rather than fence now and block writes for the
      // whole drain — bounded by `--wait`, saying what it waits for.
      const waitUntil = Date.now() + (o.waitSeconds ?? config.cutover.waitSeconds) * 1000;
      const catchingUp = (cs: GoNoGo[]) =>
        cs.some((c) => !c.ok) && cs.every((c) => c.ok || CATCH_UP_CHECKS.has(c.check));
      while (!o.dryRun && catchingUp(checks) && Date.now() < waitUntil) {
        for (const c of checks.filter((x) => !x.ok)) print(`  waiting to catch up: ${c.check}: ${c.detail}`);
        await sleep(500);
        checks = await goNoGo(o, target, legacy);
      }
      for (const c of checks) print(`  ${c.ok ? 'GO   ' : 'NO-GO'} ${c.check}: ${c.detail}`);
      const id = randomUUID();
      if (o.dryRun) {
        await target.query(
          "INSERT INTO replicator.cutovers (id, shop, phase, dry_run, details) VALUES ($1, $2, 'dry-run', true, $3)",
          [id, o.shop ?? null, JSON.stringify({ checks })],
        );
        print(
          `dry run: would fence ${config.source.tables.map((t) => `${t.schema}.${t.table}`).join(', ')}${o.shop ? ` (shop ${o.shop})` : ''}, drain to the marker, verify, sync ${config.cutover.sequences.length} sequence(s), run ${config.cutover.flip.length} flip action(s)`,
        );
        return { id, phase: 'dry-run', checks, ...(resumed ? { resumed } : {}) };
      }
      const failed = checks.filter((c) => !c.ok);
      if (failed.length > 0) {
        throw new ReplicatorError(
          ErrorCodes.CUTOVER_REFUSED,
          `cutover refused: ${failed.map((c) => `${c.check} (${c.detail})`).join('; ')}`,
          { details: { checks } },
        );
      }
      if (config.cutover.postponeFile && existsSync(config.cutover.postponeFile)) {
        print(`postponed while ${config.cutover.postponeFile} exists`);
        while (existsSync(config.cutover.postponeFile)) await sleep(500);
      }

      const mode = o.fence ?? config.cutover.fence;
      await target.query(
        "INSERT INTO replicator.cutovers (id, shop, phase, details, fence_mode) VALUES ($1, $2, 'planned', $3, $4)",
        [id, o.shop ?? null, JSON.stringify({ checks }), mode],
      );
      const fenceOptions = fenceOptionsOf(config, id, o.shop);
      // The waiting fence holds its locks in a transaction on a connection of its own until the flip (fence.ts).
      const holder =
        mode === 'wait'
          ? new pg.Client({ connectionString: legacyAdminUrl(config), application_name: 'replicator-fence' })
          : undefined;
      let verifying: FinalVerifyRun | undefined;
      let fenceTaken = () => {};
      const fenced = new Promise<void>((resolve) => {
        fenceTaken = resolve;
      });
      try {
        const deadLetters = checks.find((c) => c.check === 'dead-letter queue')?.measured ?? 0;
        // Prepared now, outside the window: what it needs before it can read rows (see `verify`).
        verifying = o.verify({ ...(o.shop ? { shop: o.shop } : {}), deadLetters, fenced });
        // A failure shows when it is asked for its outcome.
        await verifying.prepared?.catch(() => {});
        if (config.cutover.fenceLagMs > 0) {
          const lull = await awaitLull(o, target, legacy, waitUntil);
          const lag = lull.lagMs === undefined ? 'unknown' : `${lull.lagMs} ms`;
          // The lag is the newest commit applied on any partition: what the drain will apply is the changes Kafka
          // holds past the sink's offsets (measured on the bench: 500–3,600 at a 200 ms lag), so it is shown too.
          const backlog = await sinkBacklog(
            o.kafka,
            target,
            config.sink.groupId,
            changeTopicsOf(config),
          ).then(
            (lags) => `, ${lags.reduce((n, [, l]) => n + l, 0)} change(s) in Kafka not yet applied`,
            () => '',
          );
          print(
            lull.lull
              ? `  fencing at a lull: commit → applied lag ${lag}${backlog} (waited ${lull.waitedMs} ms)`
              : `  no lull under ${config.cutover.fenceLagMs} ms within the wait: fencing at commit → applied lag ${lag}${backlog}`,
          );
        }
        await verifying.fencing?.();
        await setPhase(id, 'fencing');
        if (holder) await holder.connect();
        const fence = holder
          ? await holdWriters(holder, fenceOptions)
          : await installFence(legacy, fenceOptions);
        // The waiting fence's marker is a non-transactional message, not yet flushed: a heartbeat's commit flushes it,
        // or the drain would first wait for the WAL writer.
        if (holder)
          await legacy
            .query(EMIT_HEARTBEAT_SQL, [heartbeatPrefix(config.kafka.topicPrefix)])
            .catch((e: unknown) =>
              o.logger.warn({ err: String(e) }, 'cutover: could not flush the fence marker'),
            );
        const fencedAt = new Date().toISOString();
        // Legacy no longer changes: the final verify may read its rows.
        fenceTaken();
        // Writes are blocked from here: the flip must begin within the budget, or the attempt aborts and unfences.
        const budgetSeconds = o.budgetSeconds ?? config.cutover.budgetSeconds;
        const budgetEnd = Date.now() + budgetSeconds * 1000;
        const checkBudget = (where: string) => {
          if (Date.now() > budgetEnd) throw overBudget(budgetSeconds, where);
        };
        await setPhase(id, 'fenced', { fence_committed_at: fencedAt, fence_lsn: fence.markerLsn });
        print(
          `  fenced ${fence.tables.map((t) => `${t.schema}.${t.table}`).join(', ')} at ${fence.markerLsn} (${fence.attempts} attempt(s))`,
        );

        await setPhase(id, 'draining');
        // Exact drain by offsets, no marker in the change topics: (1) the source's Kafka-acknowledged position (the
        // slot's confirmed_flush_lsn) passes the fence, so Kafka holds every change committed before it; (2) the end
        // offsets of every change partition at that moment are the target; (3) drained once the sink's stored
        // offsets reach them and the users those batches touched are recomputed.
        const deadline = Date.now() + config.cutover.drainTimeoutSeconds * 1000;
        const timedOut = (what: string) =>
          new ReplicatorError(ErrorCodes.CUTOVER_FAILED, `drain timed out: ${what}`);
        const drain = drainTo(o, target, legacy, fence.markerLsn);
        // When each step of the drain was first seen done (ms since the fence), for the report.
        const draining = Date.now();
        let sourceAt: number | undefined;
        let offsetsAt: number | undefined;
        /** Changes the sink had left to apply when the source passed the fence. */
        let toApply = 0;
        await appliedThrough(drain, (state) => {
          if (state.phase === 'sink') {
            if (sourceAt === undefined) toApply = state.changes;
            sourceAt ??= Date.now();
            if (state.behind === 0) offsetsAt ??= Date.now();
          }
          if (state.phase === 'source') {
            checkBudget('waiting for the source to pass the fence');
            if (Date.now() > deadline)
              throw timedOut(`the source has not acknowledged the fence (${fence.markerLsn}) to Kafka`);
            return true;
          }
          const what = `${state.behind}/${state.partitions} partition(s) not applied up to the fence${state.usersPending ? ', users not recomputed' : ''}`;
          checkBudget(`draining: ${what}`);
          if (Date.now() > deadline) throw timedOut(what);
          return true;
        });
        const drainedAt = Date.now();
        sourceAt ??= drainedAt;
        offsetsAt ??= drainedAt;
        print(
          `  drained in ${drainedAt - draining} ms: the source acknowledged the fence after ${sourceAt - draining} ms, the sink's offsets reached the end offsets after ${offsetsAt - draining} ms (${toApply} change(s) to apply then), its users were recomputed after ${drainedAt - draining} ms`,
        );
        await setPhase(id, 'drained', { drained_at: new Date(drainedAt).toISOString() });

        await setPhase(id, 'verifying');
        const outcome = await withinBudget(verifying.drained(), budgetEnd, () =>
          overBudget(budgetSeconds, 'in the final verify'),
        );
        print(`  final verify: ${outcome.clean ? 'clean' : 'DRIFT'} ${outcome.summary}`);
        if (!outcome.clean)
          throw new ReplicatorError(
            ErrorCodes.CUTOVER_FAILED,
            `final verify found drift: ${outcome.summary}`,
          );
        await setPhase(id, 'verified', { verified_at: new Date().toISOString() });
        // The last point to abort: once flipping starts it completes (or is resumed), whatever the clock says.
        checkBudget('before the flip');
        // A waiting fence is released after the flip commits: the writes that waited then commit in legacy.
        const result = await flip(o, target, legacy, id, fencedAt, setPhase, {
          mode,
          fence: fenceOptions,
          ...(holder ? { holder } : {}),
        });
        return { ...result, checks, ...(resumed ? { resumed } : {}) };
      } catch (e) {
        // Before the flip, any failure unfences legacy (the verify is abandoned after: its reads must not delay it).
        const phase = (
          await target.query<{ phase: string }>('SELECT phase FROM replicator.cutovers WHERE id = $1', [id])
        ).rows[0]?.phase;
        if (phase !== 'flipping' && phase !== 'flipped') {
          // A waiting fence not yet committed: its writers go on in legacy the moment it rolls back.
          if (holder) await releaseWriters(holder).catch(() => {});
          await removeFence(legacy, id, config.source.tables).catch((err: unknown) =>
            o.logger.error({ err: String(err) }, 'could not remove the fence: remove it by hand'),
          );
          // The window writers saw: from the fence to its removal (none if the fence was never taken).
          await target.query(
            `UPDATE replicator.cutovers SET phase = 'aborted', error = $2, finished_at = clock_timestamp(),
                    write_blocked_ms = extract(epoch FROM clock_timestamp() - fence_committed_at) * 1000
              WHERE id = $1`,
            [id, e instanceof Error ? e.message : String(e)],
          );
          o.onPhase?.('aborted');
          print(
            `[cutover ${id.slice(0, 8)}] aborted: fence removed (${e instanceof Error ? e.message : String(e)})`,
          );
        }
        throw e;
      } finally {
        await verifying?.abandon().catch(() => {});
        await holder?.end().catch(() => {});
      }
    }
  } finally {
    await target.end().catch(() => {});
    await legacy.end().catch(() => {});
  }
}

/** What the sink must have applied for everything legacy committed before `lsn` to be in V2 (appliedThrough). */
const drainTo = (o: CutoverOptions, target: pg.Client, legacy: pg.Client, lsn: string) => ({
  legacy,
  target,
  kafka: o.kafka,
  slot: o.config.source.slot,
  changeTopics: changeTopicsOf(o.config),
  groupId: o.config.sink.groupId,
  lsn,
  pollMs: 20,
});

/**
 * The flip: sequences, actions, the post-flip capture and the phase, committed together in the target. With the
 * waiting fence (`held.mode` 'wait') the writers waiting on its locks are released only once the flip has
 * committed — the application may then write to V2 — and the writes legacy admits (begun before the grace's end)
 * are streamed before the cutover returns; the sink keeps applying until then (`tail_pending`).
 */
async function flip(
  o: CutoverOptions,
  target: pg.Client,
  legacy: pg.Client,
  id: string,
  fencedAt: string | null,
  setPhase: (id: string, phase: CutoverPhase, extra?: Record<string, unknown>) => Promise<void>,
  held: { mode: 'reject' | 'wait'; fence: FenceOptions; holder?: pg.Client },
): Promise<{ id: string; phase: CutoverPhase; writeBlockedMs?: number }> {
  const { config, print } = o;
  const streams = held.mode === 'wait';
  await setPhase(id, 'flipping');
  for (const line of await syncSequences(config, legacy, target)) print(`  sequence ${line}`);
  await runActions(config.cutover.flip, { id, ...(o.shop ? { shop: o.shop } : {}), legacy, target });
  let flipped: { at: string; ms: number | null };
  for (let attempt = 1; ; attempt++) {
    try {
      await target.query('BEGIN');
      await installPostFlipCapture(target, id, o.v2Tables);
      flipped = (
        await target.query<{ at: string; ms: number | null }>(
          `UPDATE replicator.cutovers SET phase = 'flipped', flip_committed_at = clock_timestamp(), finished_at = clock_timestamp(),
                  write_blocked_ms = extract(epoch FROM clock_timestamp() - fence_committed_at) * 1000, tail_pending = $2
            WHERE id = $1 RETURNING flip_committed_at::text AS at, write_blocked_ms AS ms`,
          [id, streams],
        )
      ).rows[0]!;
      await target.query('COMMIT');
      break;
    } catch (e) {
      await target.query('ROLLBACK').catch(() => {});
      // The capture triggers lock each V2 table; during a per-shop cutover the sink is still applying other shops'
      // changes to them, in its own table order, so a deadlock (40P01) is possible: only this transaction is undone.
      const code = (e as { code?: unknown }).code;
      if (!(code === '40P01' || code === '40001' || code === '55P03') || attempt >= 10) throw e;
      await sleep(20 * attempt);
    }
  }
  o.onPhase?.('flipped');
  const ms = flipped.ms ?? (fencedAt ? Date.parse(flipped.at) - Date.parse(fencedAt) : undefined);
  print(
    `[cutover ${id.slice(0, 8)}] flipped; write-blocked window ${ms === undefined ? '?' : `${ms.toFixed(0)} ms`}`,
  );
  // Fault injection: committed, a waiting fence's writers not yet released.
  if (o.pauseAfter === 'flipped') await new Promise(() => {});
  if (streams) {
    let admitBefore: string | undefined;
    if (held.holder) {
      admitBefore = await releaseHeldFence(held.holder, held.fence, config.cutover.graceSeconds * 1000).catch(
        async (e: unknown) => {
          // The held transaction is gone (and its locks with it): fence at once, admitting nobody.
          o.logger.warn({ err: String(e) }, 'could not release the waiting fence; fencing again');
          await fenceLegacy(legacy, held.fence);
          return undefined;
        },
      );
      if (admitBefore)
        print(`  released the writes that waited: legacy admits transactions begun before ${admitBefore}`);
    }
    await streamAdmitted(o, target, legacy, id, held.fence, admitBefore);
  }
  return { id, phase: 'flipped', ...(ms !== undefined ? { writeBlockedMs: ms } : {}) };
}

/**
 * After a waiting fence's release: once its admission ends (`admitBefore`, server time) the fence admits nobody and
 * waits for the admitted transactions to end; the sink then applies up to a heartbeat emitted after them, the
 * sequences are synced again (the admitted inserts took legacy values), and the sink may stop (`tail_pending`).
 */
async function streamAdmitted(
  o: CutoverOptions,
  target: pg.Client,
  legacy: pg.Client,
  id: string,
  fence: FenceOptions,
  admitBefore?: string,
): Promise<void> {
  const { config, print } = o;
  if (admitBefore) {
    const { rows } = await legacy.query<{ ms: number }>(
      'SELECT greatest(0, extract(epoch FROM $1::timestamptz - clock_timestamp()) * 1000)::float8 AS ms',
      [admitBefore],
    );
    await sleep(rows[0]!.ms);
  }
  const started = Date.now();
  const lsn = await closeReleasedFence(legacy, fence, heartbeatPrefix(config.kafka.topicPrefix));
  const deadline = Date.now() + config.cutover.drainTimeoutSeconds * 1000;
  await appliedThrough(drainTo(o, target, legacy, lsn), (state) => {
    if (Date.now() > deadline)
      throw new ReplicatorError(
        ErrorCodes.CUTOVER_FAILED,
        `the writes legacy admitted after the flip were not applied to V2 within ${config.cutover.drainTimeoutSeconds} s (${state.phase === 'source' ? 'the source has not passed them' : `${state.behind} partition(s) behind`}); the sink keeps applying: run \`replicator cutover\` again to finish`,
      );
    return true;
  });
  for (const line of await syncSequences(config, legacy, target, true)) print(`  sequence ${line}`);
  await target.query(
    'UPDATE replicator.cutovers SET tail_pending = false, tail_drained_at = clock_timestamp() WHERE id = $1',
    [id],
  );
  print(
    `  legacy's last writes are in V2 (fence closed at ${lsn}, applied ${Date.now() - started} ms later)`,
  );
}

/** `replicator rollback`: flip-back actions, fence removed; lists what was written to V2 after the flip. */
export async function rollbackCutover(
  o: Pick<CutoverOptions, 'config' | 'print' | 'shop' | 'onPhase' | 'v2Tables'>,
): Promise<{ id: string; postFlipWrites: { table: string; op: string; row: unknown }[] }> {
  const { config, print } = o;
  const target = targetClient(config);
  const legacy = new pg.Client({ connectionString: legacyAdminUrl(config) });
  await connectBoth(config, target, legacy);
  try {
    await ensureReplicatorSchema(target);
    const c = (
      await target.query<{ id: string }>(
        `SELECT id FROM replicator.cutovers WHERE phase NOT IN ('aborted', 'rolled-back', 'dry-run', 'finalized')
           AND shop IS NOT DISTINCT FROM $1 ORDER BY started_at DESC LIMIT 1`,
        [o.shop ?? null],
      )
    ).rows[0];
    if (!c)
      throw new ReplicatorError(
        ErrorCodes.CUTOVER_REFUSED,
        'no cutover to roll back (finalized ones cannot be)',
      );
    await runActions(config.cutover.flipBack, {
      id: c.id,
      ...(o.shop ? { shop: o.shop } : {}),
      legacy,
      target,
    });
    await removeFence(legacy, c.id, config.source.tables);
    const hasCapture = (await target.query("SELECT to_regclass('replicator.post_flip_changes') AS r")).rows[0]
      ?.r;
    const writes = hasCapture
      ? (
          await target.query<{ table_name: string; op: string; row_data: unknown }>(
            'SELECT table_name, op, row_data FROM replicator.post_flip_changes WHERE cutover_id = $1 ORDER BY at',
            [c.id],
          )
        ).rows.map((r) => ({ table: r.table_name, op: r.op, row: r.row_data }))
      : [];
    await dropPostFlipCapture(target, o.v2Tables);
    await target.query(
      "UPDATE replicator.cutovers SET phase = 'rolled-back', rolled_back_at = now() WHERE id = $1",
      [c.id],
    );
    o.onPhase?.('rolled-back');
    print(
      `[cutover ${c.id.slice(0, 8)}] rolled back: fence removed, ${config.cutover.flipBack.length} flip-back action(s) run`,
    );
    print(
      `  ${writes.length} row(s) written to V2 after the flip${writes.length ? ' (reverse replication is a later step):' : ''}`,
    );
    for (const w of writes.slice(0, 50)) print(`    ${w.op} ${w.table} ${JSON.stringify(w.row)}`);
    return { id: c.id, postFlipWrites: writes };
  } finally {
    await target.end().catch(() => {});
    await legacy.end().catch(() => {});
  }
}

/** `replicator finalize`: after a flip, drop the slot and the publication (the daemon must be stopped). */
export async function finalizeCutover(
  o: Pick<CutoverOptions, 'config' | 'print' | 'v2Tables'>,
): Promise<void> {
  const { config, print } = o;
  const target = targetClient(config);
  const legacy = new pg.Client({ connectionString: legacyAdminUrl(config) });
  await connectBoth(config, target, legacy);
  try {
    const c = (
      await target.query<{ id: string }>(
        "SELECT id FROM replicator.cutovers WHERE phase = 'flipped' AND shop IS NULL LIMIT 1",
      )
    ).rows[0];
    if (!c) throw new ReplicatorError(ErrorCodes.CUTOVER_REFUSED, 'finalize needs a flipped (full) cutover');
    const slot = await legacy.query<{ active: boolean }>(
      'SELECT active FROM pg_replication_slots WHERE slot_name = $1',
      [config.source.slot],
    );
    if (slot.rows[0]?.active) {
      throw new ReplicatorError(
        ErrorCodes.CUTOVER_REFUSED,
        `slot ${config.source.slot} is still in use: stop the daemon first`,
      );
    }
    if (slot.rowCount) await legacy.query('SELECT pg_drop_replication_slot($1)', [config.source.slot]);
    await legacy.query(`DROP PUBLICATION IF EXISTS ${quoteIdent(config.source.publication)}`);
    await dropPostFlipCapture(target, o.v2Tables);
    // The sink's TOAST images (last known values of legacy rows) serve replication only.
    await dropToastImages(target);
    await target.query("UPDATE replicator.cutovers SET phase = 'finalized' WHERE id = $1", [c.id]);
    print(
      `finalized: slot ${config.source.slot} and publication ${config.source.publication} dropped, the sink's TOAST images removed; legacy stays fenced`,
    );
  } finally {
    await target.end().catch(() => {});
    await legacy.end().catch(() => {});
  }
}
