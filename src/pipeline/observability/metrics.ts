import { Counter, collectDefaultMetrics, Gauge, Histogram, type Registry } from 'prom-client';
import { RETRIED_CODES, type StageName, stageErrorCode } from './stage-errors.js';

/**
 * The replicator's Prometheus metrics, registered on the registry the caller passes (never a global one). Stages
 * record through hooks the pipeline builder wires to these; the sampler (`metrics-sampler.ts`) sets the gauges it
 * reads from PostgreSQL and Kafka. Names follow Prometheus conventions: `replicator_` prefix, base units
 * (seconds, bytes), `_total` for counters.
 */
export interface Metrics {
  readonly registry: Registry;
  /** pg_current_wal_lsn() − confirmed_flush_lsn of the slot. */
  readonly sourceLagBytes: Gauge<'slot'>;
  /** pg_current_wal_lsn() − restart_lsn of the slot: WAL the server keeps for us. */
  readonly sourceRetainedWalBytes: Gauge<'slot'>;
  /** WAL that can still be written before the server invalidates the slot (+Inf without a limit; 0 once lost). */
  readonly sourceSafeWalBytes: Gauge<'slot'>;
  readonly sourceEvents: Counter<'table' | 'op'>;
  /** Changes larger than their topic's max.message.bytes, dead-lettered by the source instead of sent. */
  readonly sourceOversizedEvents: Counter<'table'>;
  /** now − commit time of the newest change applied at the target; computed at each scrape. */
  readonly replicationLagSeconds: Gauge<'group'>;
  readonly endToEndSeconds: Histogram;
  /** Per-hop latency of each applied change: capture (commit → Kafka), queue (Kafka → fetched), apply (→ committed). */
  readonly stageLatencySeconds: Histogram<'stage'>;
  /** Partition end − the consumer group's committed offset, in messages. */
  readonly kafkaConsumerLagMessages: Gauge<'group' | 'topic' | 'partition'>;
  readonly transformUnits: Counter<'table'>;
  readonly sinkBatchSeconds: Histogram;
  readonly sinkMessages: Counter;
  readonly dlqMessages: Counter<'stage' | 'reason'>;
  /** Legacy rows the sink re-read because an update's unchanged TOASTed values had no image. */
  readonly toastRefetch: Counter<'table'>;
  /** Partitions of a legacy table whose changes wait because a row no longer fits the module's schema. */
  readonly schemaDriftPartitions: Gauge<'table'>;
  readonly snapshotRows: Counter<'table'>;
  readonly snapshotProgress: Gauge<'table'>;
  /** Set by `cutover`: 0 when no cutover is under way. */
  readonly cutoverPhase: Gauge;
  /** The latest full cutover's write-blocked window (fence → flip, or → unfence when aborted); 0 when none. */
  readonly cutoverWriteBlockedSeconds: Gauge;
  /** Shops by the state of their latest per-shop cutover (contracts/cutover-phase.ts), sampled from the target. */
  readonly cutoverShops: Gauge<'state'>;
  /** 1 while this process holds the source leader lock of the slot, 0 while it stands by. */
  readonly leader: Gauge<'slot'>;
  /** Times a stage re-established its connections after a transient failure and went on. */
  readonly stageReconnects: Counter<'stage'>;
  /** Errors a stage caught and retried, by the error's stable code (UNEXPECTED without one). */
  readonly stageErrors: Counter<'stage' | 'code'>;

  /** A source in this process: `isLeader` is read at each scrape. */
  trackLeader(slot: string, isLeader: () => boolean): void;
  /** A source in this process: how long its changes have waited for Kafka with no acknowledgement, in ms. */
  trackKafkaWait(slot: string, waitingMs: () => number): void;
  /** The sink applied changes committed at `commitTs` (ISO time): end-to-end latency and lag. */
  observeApplied(group: string, commitTs: string, now?: number): void;
  /** The newest commit time already applied (read from the target at start), without a latency sample. */
  seedApplied(group: string, commitTs: string): void;
  /** A stage in this process: zero series for its reconnects and for each code a retried error can carry. */
  trackStage(stage: StageName): void;
  /** `stage` re-established its connections after a transient failure. */
  countReconnect(stage: StageName): void;
  /** `stage` caught `error` and retries: counted under its stable code (see `stageErrorCode`). */
  countRetry(stage: StageName, error: unknown): void;
}

const END_TO_END_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];
const STAGE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const BATCH_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface CreateMetricsOptions {
  /** Also register Node's process metrics (CPU, memory, event loop). */
  defaultMetrics?: boolean;
}

export function createMetrics(registry: Registry, options: CreateMetricsOptions = {}): Metrics {
  const registers = [registry];
  if (options.defaultMetrics) collectDefaultMetrics({ register: registry });
  const leaderProbes = new Map<string, () => boolean>();
  const waitProbes = new Map<string, () => number>();
  const newestApplied = new Map<string, number>();

  const leader = new Gauge({
    name: 'replicator_leader',
    help: '1 when this process holds the source leader lock of the slot, 0 when it stands by.',
    labelNames: ['slot'] as const,
    registers,
    collect() {
      for (const [slot, isLeader] of leaderProbes) this.set({ slot }, isLeader() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'replicator_source_kafka_wait_seconds',
    help: 'Seconds the source has had changes waiting for Kafka with no acknowledgement (0 when none wait): a stall.',
    labelNames: ['slot'] as const,
    registers,
    collect() {
      for (const [slot, waitingMs] of waitProbes) this.set({ slot }, waitingMs() / 1000);
    },
  });
  const replicationLagSeconds = new Gauge({
    name: 'replicator_replication_lag_seconds',
    help: 'Seconds between now and the commit time of the newest change (or heartbeat) applied at the target.',
    labelNames: ['group'] as const,
    registers,
    collect() {
      const now = Date.now();
      for (const [group, ts] of newestApplied) this.set({ group }, Math.max(0, (now - ts) / 1000));
    },
  });
  const endToEndSeconds = new Histogram({
    name: 'replicator_end_to_end_seconds',
    help: 'Seconds from the legacy commit to its application at the target (one sample per applied batch, its newest change).',
    buckets: END_TO_END_BUCKETS,
    registers,
  });

  const stageReconnects = new Counter({
    name: 'replicator_stage_reconnects_total',
    help: 'Times a stage (source, publisher, sink) re-established its connections after a transient failure: a session started again, a batch retried on a new connection, a new Kafka producer.',
    labelNames: ['stage'] as const,
    registers,
  });
  const stageErrors = new Counter({
    name: 'replicator_stage_errors_total',
    help: 'Errors a stage (source, publisher, sink) caught and retried, by the error’s stable code (UNEXPECTED when it has none).',
    labelNames: ['stage', 'code'] as const,
    registers,
  });

  const remember = (group: string, commitTs: string): number | undefined => {
    const ts = Date.parse(commitTs);
    if (Number.isNaN(ts)) return undefined;
    if (ts > (newestApplied.get(group) ?? Number.NEGATIVE_INFINITY)) newestApplied.set(group, ts);
    return ts;
  };

  return {
    registry,
    sourceLagBytes: new Gauge({
      name: 'replicator_source_lag_bytes',
      help: 'WAL bytes between the server’s current position and the slot’s confirmed flush position.',
      labelNames: ['slot'] as const,
      registers,
    }),
    sourceRetainedWalBytes: new Gauge({
      name: 'replicator_source_retained_wal_bytes',
      help: 'WAL bytes the server retains for the slot (current position − restart_lsn).',
      labelNames: ['slot'] as const,
      registers,
    }),
    sourceSafeWalBytes: new Gauge({
      name: 'replicator_source_slot_safe_wal_bytes',
      help: 'WAL the legacy server can still write before it invalidates the slot (pg_replication_slots.safe_wal_size; +Inf without max_slot_wal_keep_size, 0 once the slot is lost).',
      labelNames: ['slot'] as const,
      registers,
    }),
    sourceEvents: new Counter({
      name: 'replicator_source_events_total',
      help: 'Change events the source published, by legacy table and operation (c, u, d, t).',
      labelNames: ['table', 'op'] as const,
      registers,
    }),
    sourceOversizedEvents: new Counter({
      name: 'replicator_source_oversized_events_total',
      help: "Changes larger than their topic's max.message.bytes, dead-lettered (EVENT_TOO_LARGE) instead of sent.",
      labelNames: ['table'] as const,
      registers,
    }),
    replicationLagSeconds,
    endToEndSeconds,
    stageLatencySeconds: new Histogram({
      name: 'replicator_stage_latency_seconds',
      help: 'Per-hop latency of each applied change: capture (legacy commit → produced to Kafka), queue (→ its batch started applying: in Kafka and queued in the sink), apply (→ committed in the target).',
      labelNames: ['stage'] as const,
      buckets: STAGE_BUCKETS,
      registers,
    }),
    kafkaConsumerLagMessages: new Gauge({
      name: 'replicator_kafka_consumer_lag_messages',
      help: 'Messages between a partition’s end and the consumer group’s committed offset.',
      labelNames: ['group', 'topic', 'partition'] as const,
      registers,
    }),
    transformUnits: new Counter({
      name: 'replicator_transform_units_total',
      help: 'V2 units the transform modules produced in the sink, by legacy table.',
      labelNames: ['table'] as const,
      registers,
    }),
    sinkBatchSeconds: new Histogram({
      name: 'replicator_sink_batch_seconds',
      help: 'Seconds to apply one partition batch at the target (one transaction).',
      buckets: BATCH_BUCKETS,
      registers,
    }),
    sinkMessages: new Counter({
      name: 'replicator_sink_messages_total',
      help: 'Messages (units and heartbeats) in the batches the sink applied.',
      registers,
    }),
    dlqMessages: new Counter({
      name: 'replicator_dlq_messages_total',
      help: 'Messages sent to the dead-letter topic, by stage and reason.',
      labelNames: ['stage', 'reason'] as const,
      registers,
    }),
    toastRefetch: new Counter({
      name: 'replicator_toast_refetch_total',
      help: 'Legacy rows the sink re-read because an update left TOASTed values unchanged and the image store had none, by legacy table.',
      labelNames: ['table'] as const,
      registers,
    }),
    schemaDriftPartitions: new Gauge({
      name: 'replicator_schema_drift_partitions',
      help: 'Partitions of a legacy table held by schema drift: a change whose row no longer fits its transform module waits there (0: flowing).',
      labelNames: ['table'] as const,
      registers,
    }),
    snapshotRows: new Counter({
      name: 'replicator_snapshot_rows_total',
      help: 'Rows the initial snapshot copied, by legacy table.',
      labelNames: ['table'] as const,
      registers,
    }),
    snapshotProgress: new Gauge({
      name: 'replicator_snapshot_progress_ratio',
      help: 'Initial snapshot progress per table, 0 to 1 (rows copied over the planner’s row estimate; 1 when done).',
      labelNames: ['table'] as const,
      registers,
    }),
    cutoverWriteBlockedSeconds: new Gauge({
      name: 'replicator_cutover_write_blocked_seconds',
      help: 'Write-blocked window of the latest full cutover, sampled from the target: fence → flip, or fence → unfence when it aborted (0: none yet, or it has not ended).',
      registers,
    }),
    cutoverShops: new Gauge({
      name: 'replicator_cutover_shops',
      help: 'Shops by the state of their latest per-shop cutover (pending: none yet), sampled from the target: the shops V2 bundles name or a cutover named.',
      labelNames: ['state'] as const,
      registers,
    }),
    cutoverPhase: new Gauge({
      name: 'replicator_cutover_phase',
      help: 'Phase of the latest full cutover, sampled from the target (index in its phase list: 1 fencing … 8 flipped, 10 finalized; -1 rolled back, -2 aborted; 0 none, planned or a dry run).',
      registers,
    }),
    leader,
    stageReconnects,
    stageErrors,
    trackLeader(slot, isLeader) {
      leaderProbes.set(slot, isLeader);
    },
    trackKafkaWait(slot, waitingMs) {
      waitProbes.set(slot, waitingMs);
    },
    observeApplied(group, commitTs, now = Date.now()) {
      const ts = remember(group, commitTs);
      if (ts !== undefined) endToEndSeconds.observe(Math.max(0, (now - ts) / 1000));
    },
    seedApplied(group, commitTs) {
      remember(group, commitTs);
    },
    trackStage(stage) {
      stageReconnects.inc({ stage }, 0);
      for (const code of RETRIED_CODES) stageErrors.inc({ stage, code }, 0);
    },
    countReconnect(stage) {
      stageReconnects.inc({ stage });
    },
    countRetry(stage, error) {
      stageErrors.inc({ stage, code: stageErrorCode(error) });
    },
  };
}
