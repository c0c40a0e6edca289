import type { Kafka } from 'kafkajs';
import pg from 'pg';
import { snapshotSessionName } from '../../../connectors/pgoutput-source/index.js';
import { EMIT_HEARTBEAT_SQL } from '../../contracts/topics.js';
import type { Logger } from '../../core/logger.js';
import { sleep } from '../../core/retry.js';

/**
 * Whether the slot's confirmed position (what the source reports once Kafka has everything before it) has passed
 * `lsn`, and how many bytes of WAL it is behind it; undefined when the slot does not exist. Never passed while the
 * source copies its initial snapshot (`copying`: its slot-creating session is open): a new slot's position is its
 * consistent point, so it "passes" any earlier position at once while rows from before that point are still being
 * published.
 */
export async function slotPassed(
  legacy: pg.ClientBase,
  slot: string,
  lsn: string,
): Promise<{ passed: boolean; behind: string; copying: boolean } | undefined> {
  const row = (
    await legacy.query<{ passed: boolean | null; behind: string | null; copying: boolean }>(
      `SELECT confirmed_flush_lsn >= $2::pg_lsn AS passed,
              pg_wal_lsn_diff($2::pg_lsn, confirmed_flush_lsn)::text AS behind,
              EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = left($3, 63)) AS copying
         FROM pg_replication_slots WHERE slot_name = $1`,
      [slot, lsn, snapshotSessionName(slot)],
    )
  ).rows[0];
  return row
    ? { passed: row.passed === true && !row.copying, behind: row.behind ?? '?', copying: row.copying }
    : undefined;
}

/** End offset of every partition of `topics` that holds messages, as `topic/partition` → offset. */
async function endOffsetsOf(kafka: Kafka, topics: readonly string[]): Promise<Map<string, bigint>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const ends = new Map<string, bigint>();
    for (const topic of topics) {
      for (const p of await admin.fetchTopicOffsets(topic)) {
        if (BigInt(p.high) > 0n) ends.set(`${topic}/${p.partition}`, BigInt(p.high));
      }
    }
    return ends;
  } finally {
    await admin.disconnect();
  }
}

/** The sink group's stored offsets (replicator.sink_offsets), as `topic/partition` → next offset. */
async function storedOffsets(target: pg.ClientBase, groupId: string): Promise<Map<string, bigint>> {
  const { rows } = await target.query<{ topic: string; partition: number; n: string }>(
    'SELECT topic, partition, next_offset::text AS n FROM replicator.sink_offsets WHERE group_id = $1',
    [groupId],
  );
  return new Map(rows.map((r) => [`${r.topic}/${r.partition}`, BigInt(r.n)]));
}

/** Changes in Kafka past the stored offsets, summed over partitions; and how many partitions are short. */
function shortOf(ends: ReadonlyMap<string, bigint>, stored: ReadonlyMap<string, bigint>) {
  let changes = 0n;
  let partitions = 0;
  for (const [tp, end] of ends) {
    const at = stored.get(tp) ?? 0n;
    if (at < end) {
      changes += end - at;
      partitions++;
    }
  }
  return { changes: Number(changes), partitions };
}

/**
 * The changes Kafka holds that the sink group has not applied, per topic (its stored offsets against the end offsets
 * of `topics`; topics with none behind left out): what a drain started now would have to apply, beside the source's
 * own lag. The gate's prediction, the lull and the drain all count it so.
 */
export async function sinkBacklog(
  kafka: Kafka,
  target: pg.ClientBase,
  groupId: string,
  topics: readonly string[],
): Promise<[string, number][]> {
  const ends = await endOffsetsOf(kafka, topics);
  const stored = await storedOffsets(target, groupId);
  return topics.flatMap((t) => {
    const { changes } = shortOf(new Map([...ends].filter(([tp]) => tp.startsWith(`${t}/`))), stored);
    return changes > 0 ? [[t, changes] as [string, number]] : [];
  });
}

/**
 * Where a wait for the sink stands: the source has not acknowledged the position to Kafka yet (`behind`: bytes of
 * WAL), or the sink has partitions short of their end offsets (`changes`: how many changes in all), or users
 * queued and not recomputed.
 */
export type AppliedWait =
  | { phase: 'source'; behind: string }
  | { phase: 'sink'; behind: number; changes: number; partitions: number; usersPending: boolean };

export interface AppliedThroughOptions {
  legacy: pg.ClientBase;
  target: pg.ClientBase;
  kafka: Kafka;
  slot: string;
  changeTopics: readonly string[];
  groupId: string;
  /** Every change committed before it must be applied. */
  lsn: string;
  pollMs: number;
}

/**
 * Waits until the pipeline has applied every change committed before `lsn`, exactly (the cutover's drain, verify's
 * re-check): (1) the slot's confirmed position passes it — the source acknowledges WAL only once Kafka has it — so
 * the change topics then hold every such change; (2) their end offsets at that moment are the target; (3) the sink
 * group's stored offsets (replicator.sink_offsets, committed with what they pass) reach them, and the users those
 * batches touched are recomputed — queued (pending_derived) in the transactions that stored the offsets, so in the
 * queue once the offsets are reached; only those are waited for, as other changes keep queueing
 * new ones. `check` runs after every look that is not done: false gives up (resolves false), and it may throw.
 */
export async function appliedThrough(
  o: AppliedThroughOptions,
  check: (state: AppliedWait) => boolean | Promise<boolean>,
): Promise<boolean> {
  for (;;) {
    const slot = await slotPassed(o.legacy, o.slot, o.lsn);
    if (slot?.passed) break;
    if (!(await check({ phase: 'source', behind: slot?.behind ?? '?' }))) return false;
    await sleep(o.pollMs);
  }
  const ends = await endOffsetsOf(o.kafka, o.changeTopics);
  /** The queued users to wait for, by id, read once the offsets are reached. */
  let pending: string[] | undefined;
  for (;;) {
    const { changes, partitions: behind } = shortOf(ends, await storedOffsets(o.target, o.groupId));
    let usersPending = false;
    if (behind === 0) {
      // Read once, then looked up by key: a range or `ORDER BY id` probe walks every dead index entry of the queue,
      // which a snapshot fills with a row per key (445 ms a look at a million without vacuum).
      if (pending === undefined) {
        const { rows } = await o.target.query<{ id: string }>(
          'SELECT id::text FROM replicator.pending_derived',
        );
        pending = rows.map((r) => r.id);
      } else if (pending.length > 0) {
        const { rows } = await o.target.query<{ id: string }>(
          'SELECT id::text FROM replicator.pending_derived WHERE id = ANY($1::bigint[])',
          [pending],
        );
        pending = rows.map((r) => r.id);
      }
      usersPending = pending.length > 0;
    }
    if (behind === 0 && !usersPending) return true;
    if (!(await check({ phase: 'sink', behind, changes, partitions: ends.size, usersPending }))) return false;
    await sleep(o.pollMs);
  }
}

export interface SinkAppliedWaiterOptions {
  legacyUrl: string;
  targetUrl: string;
  /** The source's replication slot: its confirmed position says what Kafka holds. */
  slot: string;
  /** The raw change topics the sink applies. */
  changeTopics: readonly string[];
  kafka: Kafka;
  /** The sink group whose stored offsets (replicator.sink_offsets) are read. */
  sinkGroupId: string;
  /**
   * `<kafka.topicPrefix>.heartbeat`: a heartbeat is emitted on the legacy database (pg_logical_emit_message, as the
   * source's own) so an idle source acknowledges the position now rather than at its next heartbeat.
   */
  heartbeatPrefix?: string;
  timeoutMs?: number;
  pollMs?: number;
  logger: Logger;
}

/**
 * "Has the pipeline applied everything committed before this LSN?", exactly, as the cutover's drain asks it: once
 * the slot's confirmed position passes the LSN (the source acknowledges WAL only once Kafka has it), the change
 * topics' end offsets hold every such change; applied once the sink's stored offsets reach them and the users they
 * touched are recomputed (appliedThrough). Not from the newest position the sink recorded (replicator.applied): partitions
 * are applied independently, and under a backlog (a snapshot loading, a sink restarted) one partition's heartbeat
 * or change passes the LSN minutes before another's changes are applied — a re-check would then confirm lag as
 * drift. Resolves false when the timeout passes first (the sink is stopped or far behind).
 */
export function sinkAppliedWaiter(o: SinkAppliedWaiterOptions): (lsn: string) => Promise<boolean> {
  const timeoutMs = o.timeoutMs ?? 60_000;
  const pollMs = o.pollMs ?? 50;
  let warned = false;
  return async (lsn: string) => {
    const legacy = new pg.Client({ connectionString: o.legacyUrl });
    const target = new pg.Client({ connectionString: o.targetUrl });
    legacy.on('error', () => {});
    target.on('error', () => {});
    await legacy.connect();
    try {
      await target.connect();
      const deadline = Date.now() + timeoutMs;
      const nudge = async () => {
        if (!o.heartbeatPrefix) return;
        await legacy.query(EMIT_HEARTBEAT_SQL, [o.heartbeatPrefix]).catch((e: unknown) => {
          if (!warned)
            o.logger.warn({ err: String(e) }, 'verify: could not emit a heartbeat; waiting for the source’s');
          warned = true;
        });
      };
      let lastNudge = Date.now();
      await nudge();
      const wait = {
        legacy,
        target,
        kafka: o.kafka,
        slot: o.slot,
        changeTopics: o.changeTopics,
        groupId: o.sinkGroupId,
        lsn,
        pollMs,
      };
      return await appliedThrough(wait, async (state) => {
        if (Date.now() > deadline) return false;
        if (state.phase === 'source' && Date.now() - lastNudge > 1_000) {
          lastNudge = Date.now();
          await nudge();
        }
        return true;
      });
    } finally {
      await target.end().catch(() => {});
      await legacy.end().catch(() => {});
    }
  };
}
