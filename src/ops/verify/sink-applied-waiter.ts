import pg from 'pg';
import type { Logger } from '../../core/logger.js';
import { sleep } from '../../core/retry.js';

export interface SinkAppliedWaiterOptions {
  legacyUrl: string;
  targetUrl: string;
  /** The sink group whose replicator.applied.commit_lsn is read. */
  sinkGroupId: string;
  /**
   * `<kafka.topicPrefix>.heartbeat`: a heartbeat is emitted on the legacy database (pg_logical_emit_message, as the
   * source's own) so an idle pipeline passes the position now rather than at the source's next heartbeat.
   */
  heartbeatPrefix?: string;
  timeoutMs?: number;
  pollMs?: number;
  logger: Logger;
}

/**
 * "Has the pipeline applied everything committed before this LSN?", from what the sink records: the newest
 * source position it has applied (replicator.applied.commit_lsn — stream units and heartbeats, updated in each
 * batch's transaction). Partitions are applied independently, so that position passing the LSN on one partition
 * can precede a unit still in flight on another by about one fetch; the waiter therefore waits twice — for the
 * LSN, then for a heartbeat emitted after that — which leaves every partition a full round trip to catch up.
 * Resolves false when the timeout passes first (the sink is stopped or far behind).
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
        await legacy
          .query('SELECT pg_logical_emit_message(false, $1, $2)', [
            o.heartbeatPrefix,
            new Date().toISOString(),
          ])
          .catch((e: unknown) => {
            if (!warned)
              o.logger.warn(
                { err: String(e) },
                'verify: could not emit a heartbeat; waiting for the source’s',
              );
            warned = true;
          });
      };
      const reach = async (position: string) => {
        let lastNudge = Date.now();
        await nudge();
        while (Date.now() < deadline) {
          const row = (
            await target
              .query<{ ok: boolean }>(
                'SELECT commit_lsn >= $2::pg_lsn AS ok FROM replicator.applied WHERE group_id = $1',
                [o.sinkGroupId, position],
              )
              .catch(() => ({ rows: [] as { ok: boolean }[] }))
          ).rows[0];
          if (row?.ok) return true;
          if (Date.now() - lastNudge > 1_000) {
            lastNudge = Date.now();
            await nudge();
          }
          await sleep(pollMs);
        }
        return false;
      };
      if (!(await reach(lsn))) return false;
      const after = (await legacy.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l'))
        .rows[0]!.l;
      return await reach(after);
    } finally {
      await target.end().catch(() => {});
      await legacy.end().catch(() => {});
    }
  };
}
