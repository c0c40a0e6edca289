import type pg from 'pg';
import type { TableRef } from '../../contracts/topics.js';
import { fencePrefix } from '../../contracts/topics.js';
import { ErrorCodes, ReplicatorError } from '../../core/errors.js';
import { qualifiedName, quoteIdent, quoteLiteral } from '../../core/sql.js';

/**
 * The fence: BEFORE INSERT/UPDATE/DELETE (per row) and TRUNCATE (per statement) triggers on every replicated legacy
 * table that reject writes with a clear error — for every role, the owner included. Installed in ONE short
 * transaction with a lock_timeout (retried), which also emits the fence marker: so the marker's position is
 * exactly the fence's, after every write that committed before it.
 */

export const FENCE_ERROR_PREFIX = 'was cut over to V2';

const names = (cutoverId: string) => {
  const short = cutoverId.replace(/-/g, '').slice(0, 12);
  return {
    trigger: `replicator_fence_${short}`,
    truncTrigger: `replicator_fence_t_${short}`,
    fn: `replicator_fence_${short}`,
  };
};

export interface FenceOptions {
  cutoverId: string;
  tables: readonly TableRef[];
  /** Per-tenant: only rows of this shop are rejected; tables without a `shop` column are left unfenced. */
  shop?: string;
  topicPrefix: string;
  lockTimeoutMs: number;
  lockRetries: number;
}

async function hasShopColumn(client: pg.ClientBase, t: TableRef): Promise<boolean> {
  const r = await client.query(
    `SELECT 1 FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'shop' AND NOT attisdropped`,
    [qualifiedName(t.schema, t.table)],
  );
  return (r.rowCount ?? 0) > 0;
}

/** Installs the fence and emits the marker; returns the marker's LSN and the tables fenced. */
export async function installFence(
  client: pg.ClientBase,
  o: FenceOptions,
): Promise<{ markerLsn: string; tables: TableRef[]; attempts: number }> {
  const n = names(o.cutoverId);
  const at = new Date().toISOString();
  const message = `table %s ${FENCE_ERROR_PREFIX} at ${at}${o.shop ? ` for shop ${o.shop}` : ''}; write to V2`;
  const raise = `RAISE EXCEPTION USING MESSAGE = format(${quoteLiteral(message)}, TG_TABLE_NAME), ERRCODE = 'P0001', HINT = 'replicator cutover ${o.cutoverId}'`;
  const rowCheck = o.shop
    ? `IF (TG_OP <> 'INSERT' AND OLD.shop = ${quoteLiteral(o.shop)}) OR (TG_OP <> 'DELETE' AND NEW.shop = ${quoteLiteral(o.shop)}) THEN ${raise}; END IF;`
    : `${raise};`;
  const body = `BEGIN IF TG_OP = 'TRUNCATE' THEN ${raise}; END IF; ${rowCheck} RETURN COALESCE(NEW, OLD); END`;
  const tables: TableRef[] = [];
  for (const t of o.tables) if (!o.shop || (await hasShopColumn(client, t))) tables.push(t);
  if (tables.length === 0) {
    throw new ReplicatorError(
      ErrorCodes.CUTOVER_REFUSED,
      `no replicated table has a shop column to fence shop ${o.shop}`,
    );
  }
  for (let attempt = 1; ; attempt++) {
    await client.query('BEGIN');
    try {
      await client.query(`SET LOCAL lock_timeout = ${Math.floor(o.lockTimeoutMs)}`);
      await client.query(
        `CREATE OR REPLACE FUNCTION public.${quoteIdent(n.fn)}() RETURNS trigger LANGUAGE plpgsql AS $fence$ ${body} $fence$`,
      );
      for (const t of tables) {
        const table = qualifiedName(t.schema, t.table);
        await client.query(`DROP TRIGGER IF EXISTS ${quoteIdent(n.trigger)} ON ${table}`);
        await client.query(`DROP TRIGGER IF EXISTS ${quoteIdent(n.truncTrigger)} ON ${table}`);
        await client.query(
          `CREATE TRIGGER ${quoteIdent(n.trigger)} BEFORE INSERT OR UPDATE OR DELETE ON ${table} FOR EACH ROW EXECUTE FUNCTION public.${quoteIdent(n.fn)}()`,
        );
        await client.query(
          `CREATE TRIGGER ${quoteIdent(n.truncTrigger)} BEFORE TRUNCATE ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION public.${quoteIdent(n.fn)}()`,
        );
      }
      const markerLsn = (
        await client.query<{ lsn: string }>('SELECT pg_logical_emit_message(true, $1, $2)::text AS lsn', [
          fencePrefix(o.topicPrefix),
          o.cutoverId,
        ])
      ).rows[0]!.lsn;
      await client.query('COMMIT');
      return { markerLsn, tables, attempts: attempt };
    } catch (e) {
      await client.query('ROLLBACK').catch(() => {});
      const code = (e as { code?: string }).code;
      if (code === '55P03' && attempt <= o.lockRetries) {
        // Lock timeout: an application transaction holds the table. Back off briefly and try again.
        await new Promise((r) => setTimeout(r, 100 * attempt));
        continue;
      }
      throw new ReplicatorError(
        ErrorCodes.CUTOVER_FAILED,
        `could not install the fence (attempt ${attempt})`,
        { cause: e },
      );
    }
  }
}

/** Removes the fence of a cutover (idempotent). */
export async function removeFence(
  client: pg.ClientBase,
  cutoverId: string,
  tables: readonly TableRef[],
): Promise<void> {
  const n = names(cutoverId);
  await client.query('BEGIN');
  try {
    for (const t of tables) {
      const table = qualifiedName(t.schema, t.table);
      const exists = await client.query('SELECT to_regclass($1) AS r', [table]);
      if (!exists.rows[0]?.r) continue;
      await client.query(`DROP TRIGGER IF EXISTS ${quoteIdent(n.trigger)} ON ${table}`);
      await client.query(`DROP TRIGGER IF EXISTS ${quoteIdent(n.truncTrigger)} ON ${table}`);
    }
    await client.query(`DROP FUNCTION IF EXISTS public.${quoteIdent(n.fn)}()`);
    await client.query('COMMIT');
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {});
    throw e;
  }
}
