import type { Admin, Kafka } from 'kafkajs';
import type pg from 'pg';
import { KafkaStateStore } from '../../../connectors/kafka-publisher/index.js';
import { type Finding, readSlot, type SlotState } from '../../../connectors/pgoutput-source/index.js';
import { changeTopic, changeTopics } from '../../contracts/topics.js';
import { createKafka } from '../../core/kafka-client.js';
import type { Logger } from '../../core/logger.js';
import { parseLsn } from '../../core/lsn.js';
import { connectClient } from '../../core/pg-connect.js';
import { describePgUrl } from '../../core/redact.js';
import { qualifiedName } from '../../core/sql.js';
import type { ReplicatorConfig } from '../../pipeline/config/load-config.js';
import { type PartitionLag, readConsumerLag, topicSize } from '../../pipeline/observability/consumer-lag.js';
import { stageTopics } from '../../pipeline/stage-options.js';
import { readOnlyPreflight } from './read-only-preflight.js';

export interface StatusOptions {
  /** Replication lag (seconds) above which the replicator counts as unhealthy. */
  maxLagSeconds: number;
}

export interface GroupStatus {
  group: string;
  stage: 'sink';
  /** Kafka's group state (Stable, Empty, …); Empty or Dead means no consumer runs. */
  state: string;
  members: number;
  lag: number;
  partitions: PartitionLag[];
}

export interface SnapshotTableStatus {
  table: string;
  /** Messages in the table's change topic (during a snapshot: the rows copied so far). */
  rows: number;
  /** The planner's row estimate of the legacy table; null when it has never been analyzed. */
  estimate: number | null;
}

export interface StatusReport {
  healthy: boolean;
  /** Why it is unhealthy; empty when healthy. */
  problems: string[];
  warnings: string[];
  source: {
    /** host:port/database — never the URL. */
    database: string;
    reachable: boolean;
    slot: { name: string } & SlotState;
    currentLsn?: string;
    lagBytes?: number;
    retainedBytes?: number;
    /** The backend holding the source leader lock; undefined when no source leads. */
    leaderPid?: number;
  };
  target?: {
    database: string;
    reachable: boolean;
    group: string;
    /** Commit time of the newest change (or heartbeat) applied; null when the sink applied nothing yet. */
    appliedCommitTs: string | null;
    lagSeconds: number | null;
    /**
     * Changes the sink has consumed (applied, or dead-lettered) from the change topics, heartbeats not counted: the
     * offsets of replicator.sink_offsets summed. A counter (`status --watch` derives applied/s from it); null when
     * unread.
     */
    appliedChanges: number | null;
    /** Partitions whose changes wait because a legacy row no longer fits its module's schema (SCHEMA_DRIFT). */
    schemaDrift: SchemaDriftFinding[];
  };
  kafka: {
    reachable: boolean;
    groups: GroupStatus[];
    dlq: { topic: string; messages: number | null };
    /**
     * Changes the source has published: the change topics' end offsets summed (heartbeats not counted). A counter
     * (`status --watch` derives changes/s from it); null when Kafka was not read.
     */
    publishedChanges: number | null;
  };
  snapshot: {
    state: 'complete' | 'in progress' | 'not started' | 'disabled' | 'unknown';
    completedAt?: string;
    tables: SnapshotTableStatus[];
  };
  /** The latest runs in replicator.cutovers (target), newest first; none when no cutover has been run. */
  cutover: { state: 'none' | 'unknown' } | { state: 'present'; rows: Record<string, unknown>[] };
  preflight: Finding[];
}

export interface SchemaDriftFinding {
  table: string;
  columns: string[];
  message: string;
  topic: string;
  partition: number;
  /** The offset where the partition waits. */
  offset: string;
  since: string;
}

const errText = (e: unknown) => (e instanceof Error ? e.message : String(e));

const connect = (url: string) =>
  connectClient({
    connectionString: url,
    connectionTimeoutMillis: 5_000,
    application_name: 'replicator-status',
  });

async function leaderPid(client: pg.Client, slot: string): Promise<number | undefined> {
  // pg_try_advisory_lock(int4, int4) shows as classid = key1, objid = key2, objsubid = 2 (oids: unsigned).
  const { rows } = await client.query<{ pid: number }>(
    `SELECT pid FROM pg_locks
      WHERE locktype = 'advisory' AND granted AND objsubid = 2
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND classid::int8 = (hashtext('replicator.source')::int8 & 4294967295)
        AND objid::int8 = (hashtext($1)::int8 & 4294967295)`,
    [slot],
  );
  return rows[0]?.pid;
}

/**
 * Everything `replicator status` shows, read without changing anything: the slot and its lag, the leader, the
 * target's applied position, consumer-group lag, the DLQ size, snapshot progress, the cutover state and the
 * preflight findings. Unreachable services become problems in the report, not exceptions.
 */
export async function readStatus(
  config: ReplicatorConfig,
  options: StatusOptions,
  logger: Logger,
): Promise<StatusReport> {
  const problems: string[] = [];
  const warnings: string[] = [];
  const { source } = config;
  const report: StatusReport = {
    healthy: false,
    problems,
    warnings,
    source: {
      database: describePgUrl(source.url),
      reachable: false,
      slot: { name: source.slot, exists: false, active: false },
    },
    kafka: {
      reachable: false,
      groups: [],
      dlq: { topic: stageTopics(config).dlq, messages: null },
      publishedChanges: null,
    },
    snapshot: { state: source.snapshot === 'never' ? 'disabled' : 'unknown', tables: [] },
    cutover: { state: 'unknown' },
    preflight: [],
  };

  // Legacy database: slot, lag, leader, preflight.
  let database: string | undefined;
  const estimates = new Map<string, number | null>();
  let legacy: pg.Client | undefined;
  try {
    legacy = await connect(source.url);
    report.source.reachable = true;
    database = (await legacy.query<{ d: string }>('SELECT current_database() AS d')).rows[0]!.d;
    const slot = await readSlot(legacy, source.slot);
    report.source.slot = { name: source.slot, ...slot };
    const current = (await legacy.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!
      .lsn;
    report.source.currentLsn = current;
    if (slot.confirmedFlushLsn) {
      const lag = parseLsn(current) - parseLsn(slot.confirmedFlushLsn);
      report.source.lagBytes = Number(lag > 0n ? lag : 0n);
    }
    if (slot.retainedBytes !== undefined)
      report.source.retainedBytes = Math.max(0, Number(slot.retainedBytes));
    const pid = await leaderPid(legacy, source.slot);
    if (pid !== undefined) report.source.leaderPid = pid;
    for (const t of source.tables) {
      const r = await legacy.query<{ n: number | null }>(
        'SELECT reltuples::float8 AS n FROM pg_class WHERE oid = to_regclass($1)',
        [qualifiedName(t.schema, t.table)],
      );
      const n = r.rows[0]?.n;
      estimates.set(`${t.schema}.${t.table}`, n !== null && n !== undefined && n >= 0 ? n : null);
    }
    report.preflight = await readOnlyPreflight(legacy, source);
  } catch (e) {
    if (!report.source.reachable) {
      problems.push(`legacy database ${report.source.database} is unreachable: ${errText(e)}`);
    } else {
      problems.push(`could not read the legacy database ${report.source.database}: ${errText(e)}`);
    }
  } finally {
    await legacy?.end().catch(() => {});
  }
  for (const f of report.preflight) {
    const text = `preflight: ${f.message}${f.fix ? ` (fix: ${f.fix})` : ''}`;
    if (f.level === 'error') problems.push(text);
    else if (f.level === 'warn') warnings.push(text);
  }
  if (report.source.reachable) {
    if (!report.source.slot.exists) {
      problems.push(`slot ${source.slot} does not exist: no source has started (run \`replicator start\`)`);
    }
    if (report.source.leaderPid === undefined) {
      problems.push('no source holds the leader lock: the source is not running');
    }
  }

  // Target: applied position (lag) and cutover state.
  if (config.target) {
    const group = config.sink.groupId;
    const target: NonNullable<StatusReport['target']> = {
      database: describePgUrl(config.target.url),
      reachable: false,
      group,
      appliedCommitTs: null,
      lagSeconds: null,
      appliedChanges: null,
      schemaDrift: [],
    };
    report.target = target;
    let client: pg.Client | undefined;
    try {
      client = await connect(config.target.url);
      target.reachable = true;
      const has = async (name: string) =>
        (await client!.query<{ r: string | null }>('SELECT to_regclass($1)::text AS r', [name])).rows[0]
          ?.r !== null;
      if (await has('replicator.applied')) {
        const row = (
          await client.query<{ ts: string | null; lag: number | null }>(
            `SELECT to_char(commit_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS ts,
                    extract(epoch FROM now() - commit_ts)::float8 AS lag
               FROM replicator.applied WHERE group_id = $1`,
            [group],
          )
        ).rows[0];
        if (row?.ts) {
          target.appliedCommitTs = row.ts;
          target.lagSeconds = Math.max(0, row.lag ?? 0);
        }
      }
      target.appliedChanges = (await has('replicator.sink_offsets'))
        ? Number(
            (
              await client.query<{ n: string }>(
                `SELECT coalesce(sum(next_offset), 0)::text AS n FROM replicator.sink_offsets
                  WHERE group_id = $1 AND topic = ANY($2)`,
                [group, changeTopics({ rawPrefix: config.kafka.topicPrefix, tables: source.tables })],
              )
            ).rows[0]!.n,
          )
        : 0;
      if (await has('replicator.schema_drift')) {
        target.schemaDrift = (
          await client.query<SchemaDriftFinding>(
            `SELECT legacy_table AS table, columns, message, topic, partition, held_offset::text AS offset,
                    to_char(since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS since
               FROM replicator.schema_drift WHERE group_id = $1 ORDER BY legacy_table, topic, partition`,
            [group],
          )
        ).rows;
        for (const d of target.schemaDrift) {
          problems.push(
            `SCHEMA_DRIFT: ${d.message}; its changes wait at ${d.topic} partition ${d.partition} offset ${d.offset} ` +
              `since ${d.since} (fix: restore the legacy schema or deploy a transform module that accepts it; ` +
              'the held changes then apply, nothing is lost)',
          );
        }
      }
      if (await has('replicator.cutovers')) {
        // The cutover's state machine (src/ops/cutover): its latest runs, newest first, without the bulky details.
        const rows = (
          await client.query<{ row: Record<string, unknown> }>(
            `SELECT to_jsonb(c) - 'details' AS row FROM replicator.cutovers c
              ORDER BY to_jsonb(c)->>'started_at' DESC NULLS LAST LIMIT 5`,
          )
        ).rows.map((r) => r.row);
        report.cutover = rows.length > 0 ? { state: 'present', rows } : { state: 'none' };
      } else {
        report.cutover = { state: 'none' };
      }
    } catch (e) {
      problems.push(
        target.reachable
          ? `could not read the target database ${target.database}: ${errText(e)}`
          : `target database ${target.database} is unreachable: ${errText(e)}`,
      );
    } finally {
      await client?.end().catch(() => {});
    }
    if (target.reachable && target.lagSeconds === null) {
      warnings.push(`the sink (group ${group}) has applied nothing yet`);
    } else if (target.lagSeconds !== null && target.lagSeconds > options.maxLagSeconds) {
      problems.push(
        `replication lag is ${target.lagSeconds.toFixed(1)} s, above ${options.maxLagSeconds} s (newest applied commit ${target.appliedCommitTs})`,
      );
    }
  } else {
    warnings.push('no target configured: lag and cutover state are unknown');
  }

  // Kafka: consumer lag, DLQ size, snapshot marker and progress.
  const kafka = createKafka(config.kafka, logger, `${config.kafka.clientId}-status`, {
    connectionTimeout: 3_000,
    requestTimeout: 10_000,
    retry: { retries: 2, initialRetryTime: 200, maxRetryTime: 2_000 },
  });
  const admin = kafka.admin();
  try {
    await admin.connect();
    report.kafka.reachable = true;
    await readKafka(report, admin, kafka, config, database, estimates);
  } catch (e) {
    problems.push(
      report.kafka.reachable
        ? `could not read Kafka (${config.kafka.brokers.join(',')}): ${errText(e)}`
        : `Kafka (${config.kafka.brokers.join(',')}) is unreachable: ${errText(e)}`,
    );
  } finally {
    await admin.disconnect().catch(() => {});
  }
  for (const g of report.kafka.groups) {
    if (g.members === 0 && g.lag > 0) {
      warnings.push(
        `consumer group ${g.group} (${g.stage}) has ${g.lag} messages to read and no member running`,
      );
    }
  }
  if ((report.kafka.dlq.messages ?? 0) > 0) {
    warnings.push(
      `the dead-letter topic ${report.kafka.dlq.topic} holds ${report.kafka.dlq.messages} messages`,
    );
  }

  report.healthy = problems.length === 0;
  return report;
}

async function readKafka(
  report: StatusReport,
  admin: Admin,
  kafka: Kafka,
  config: ReplicatorConfig,
  database: string | undefined,
  estimates: Map<string, number | null>,
): Promise<void> {
  const topics = stageTopics(config);
  const described = await admin.describeGroups([topics.sink.groupId]);
  const changes = new Set(
    changeTopics({ rawPrefix: config.kafka.topicPrefix, tables: config.source.tables }),
  );
  for (const [stage, g] of [['sink', topics.sink]] as const) {
    const partitions = await readConsumerLag(admin, g.groupId, g.topics);
    // The sink reads every change topic, so its partitions' end offsets also count what the source published.
    report.kafka.publishedChanges = partitions
      .filter((p) => changes.has(p.topic))
      .reduce((n, p) => n + Number(p.high), 0);
    const d = described.groups.find((x) => x.groupId === g.groupId);
    report.kafka.groups.push({
      group: g.groupId,
      stage,
      state: d?.state ?? 'Unknown',
      members: d?.members.length ?? 0,
      lag: partitions.reduce((n, p) => n + p.lag, 0),
      partitions,
    });
  }
  report.kafka.dlq.messages = await topicSize(admin, topics.dlq);

  const { source, kafka: k } = config;
  if (source.snapshot === 'never') return;
  if (!report.source.reachable || database === undefined) return;
  if (!report.source.slot.exists) {
    report.snapshot.state = 'not started';
    return;
  }
  const stateTopic = `${k.topicPrefix}.replicator-state`;
  const marker = (await admin.listTopics()).includes(stateTopic)
    ? await new KafkaStateStore(kafka, stateTopic).get<{ completedAt: string }>(
        `snapshot/${database}/${source.slot}`,
      )
    : undefined;
  if (marker) {
    report.snapshot.state = 'complete';
    report.snapshot.completedAt = marker.completedAt;
    return;
  }
  report.snapshot.state = 'in progress';
  // Streaming starts after the snapshot, so until then a change topic holds only the rows copied.
  for (const t of source.tables) {
    const table = `${t.schema}.${t.table}`;
    report.snapshot.tables.push({
      table,
      rows: await topicSize(admin, changeTopic(k.topicPrefix, t.schema, t.table)),
      estimate: estimates.get(table) ?? null,
    });
  }
}
