import type pg from 'pg';
import type { Logger } from '../../core/logger.js';
import { sleep } from '../../core/retry.js';

/**
 * The current WAL insert position, once every transaction that might have committed before it is finished: a
 * snapshot taken after this resolves sees every commit whose commit record precedes the returned LSN. (A
 * transaction becomes visible only after its commit record is written, so reading the LSN inside a snapshot gives
 * an upper bound of what it sees, not a lower one.) Transactions still open after `timeoutMs` are not waited for;
 * that is logged and `settled` is false.
 */
export async function settledLsn(
  client: pg.ClientBase,
  o: { timeoutMs?: number; logger: Logger },
): Promise<{ lsn: string; settled: boolean }> {
  const lsn = (await client.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0]!.l;
  // In progress now (read after the LSN): every transaction whose commit record precedes it is finished or here.
  let open = (
    await client.query<{ x: string[] }>(
      'SELECT array(SELECT x::text FROM pg_snapshot_xip(pg_current_snapshot()) AS x) AS x',
    )
  ).rows[0]!.x;
  const deadline = Date.now() + (o.timeoutMs ?? 10_000);
  while (open.length > 0) {
    open = (
      await client.query<{ x: string }>(
        "SELECT x::text FROM unnest($1::xid8[]) AS x WHERE pg_xact_status(x) = 'in progress'",
        [open],
      )
    ).rows.map((r) => r.x);
    if (open.length === 0) break;
    if (Date.now() > deadline) {
      o.logger.warn({ transactions: open.length }, 'verify: transactions still open at a snapshot position');
      return { lsn, settled: false };
    }
    await sleep(10);
  }
  return { lsn, settled: true };
}
