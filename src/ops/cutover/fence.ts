import type pg from 'pg';
import type { TableRef } from '../../contracts/topics.js';
import { EMIT_HEARTBEAT_SQL, fencePrefix } from '../../contracts/topics.js';
import { ErrorCodes, ReplicatorError } from '../../core/errors.js';
import { qualifiedName, quoteIdent, quoteLiteral } from '../../core/sql.js';

/**
 * The fence: BEFORE INSERT/UPDATE/DELETE (per row) and TRUNCATE (per statement) triggers on every replicated legacy
 * table that reject writes with a clear error — for every role, the owner included. Installed in ONE short
 * transaction with a lock_timeout (retried), which also emits the fence marker: so the marker's position is
 * exactly the fence's, after every write that committed before it. The waiting fence (`holdWriters`) holds table
 * locks instead until the flip, and only then installs these triggers, admitting the writes that waited.
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

/**
 * The fence's function, in the caller's open transaction. `admitBefore` (a waiting fence's release): writes of
 * transactions begun before that time pass — those that waited on the fence's locks, and those the application
 * issued until then — so that they commit in legacy and are streamed; later ones are rejected.
 */
async function createFenceFunction(
  client: pg.ClientBase,
  o: FenceOptions,
  admitBefore?: string,
): Promise<void> {
  const n = names(o.cutoverId);
  const at = new Date().toISOString();
  const message = `table %s ${FENCE_ERROR_PREFIX} at ${at}${o.shop ? ` for shop ${o.shop}` : ''}; write to V2`;
  const raise = `RAISE EXCEPTION USING MESSAGE = format(${quoteLiteral(message)}, TG_TABLE_NAME), ERRCODE = 'P0001', HINT = 'replicator cutover ${o.cutoverId}'`;
  const admit = admitBefore
    ? `IF transaction_timestamp() < ${quoteLiteral(admitBefore)}::timestamptz THEN RETURN COALESCE(NEW, OLD); END IF;`
    : '';
  const rowCheck = o.shop
    ? `IF (TG_OP <> 'INSERT' AND OLD.shop = ${quoteLiteral(o.shop)}) OR (TG_OP <> 'DELETE' AND NEW.shop = ${quoteLiteral(o.shop)}) THEN ${raise}; END IF;`
    : `${raise};`;
  const body = `BEGIN ${admit} IF TG_OP = 'TRUNCATE' THEN ${raise}; END IF; ${rowCheck} RETURN COALESCE(NEW, OLD); END`;
  await client.query(
    `CREATE OR REPLACE FUNCTION public.${quoteIdent(n.fn)}() RETURNS trigger LANGUAGE plpgsql AS $fence$ ${body} $fence$`,
  );
}

/** The fence's function and triggers, created in the caller's open transaction; returns the tables fenced. */
async function createFenceTriggers(
  client: pg.ClientBase,
  o: FenceOptions,
  admitBefore?: string,
): Promise<TableRef[]> {
  const n = names(o.cutoverId);
  const tables = await fencedTables(client, o);
  await createFenceFunction(client, o, admitBefore);
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
  return tables;
}

/** The tables a fence covers: all of them, or (per shop) those with a `shop` column. */
async function fencedTables(client: pg.ClientBase, o: FenceOptions): Promise<TableRef[]> {
  const tables: TableRef[] = [];
  for (const t of o.tables) if (!o.shop || (await hasShopColumn(client, t))) tables.push(t);
  if (tables.length === 0) {
    throw new ReplicatorError(
      ErrorCodes.CUTOVER_REFUSED,
      `no replicated table has a shop column to fence shop ${o.shop}`,
    );
  }
  return tables;
}

/** The fenced tables locked in the caller's transaction: EXCLUSIVE holds writers, SHARE waits for them. */
async function lockTables(client: pg.ClientBase, tables: readonly TableRef[], mode: 'EXCLUSIVE' | 'SHARE') {
  await client.query(
    `LOCK TABLE ${tables.map((t) => qualifiedName(t.schema, t.table)).join(', ')} IN ${mode} MODE`,
  );
}

/**
 * Runs `step` in a transaction with the fence's lock_timeout, retried after a lock timeout (an application
 * transaction holds a table); `keepOpen` leaves a successful transaction open for the caller.
 */
async function inFenceTransaction<T>(
  client: pg.ClientBase,
  o: FenceOptions,
  step: () => Promise<T>,
  keepOpen = false,
  what = 'install the fence',
): Promise<{ result: T; attempts: number }> {
  for (let attempt = 1; ; attempt++) {
    await client.query('BEGIN');
    try {
      await client.query(`SET LOCAL lock_timeout = ${Math.floor(o.lockTimeoutMs)}`);
      const result = await step();
      if (!keepOpen) await client.query('COMMIT');
      return { result, attempts: attempt };
    } catch (e) {
      await client.query('ROLLBACK').catch(() => {});
      const code = (e as { code?: string }).code;
      if ((code === '55P03' || code === '40P01') && attempt <= o.lockRetries) {
        // Lock timeout (or a deadlock with a writer holding one table and waiting for another): back off, retry.
        await new Promise((r) => setTimeout(r, 100 * attempt));
        continue;
      }
      if (e instanceof ReplicatorError) throw e;
      throw new ReplicatorError(ErrorCodes.CUTOVER_FAILED, `could not ${what} (attempt ${attempt})`, {
        cause: e,
      });
    }
  }
}

/**
 * The fence's logical message (the source turns it into the fence record); returns its LSN. Transactional: it
 * commits with the fence's triggers; not: the source sees it at once, while the waiting fence's locks are held.
 */
async function emitFenceMessage(
  client: pg.ClientBase,
  o: FenceOptions,
  transactional: boolean,
): Promise<string> {
  const { rows } = await client.query<{ lsn: string }>(
    'SELECT pg_logical_emit_message($1::boolean, $2::text, $3::text)::text AS lsn',
    [transactional, fencePrefix(o.topicPrefix), o.cutoverId],
  );
  return rows[0]!.lsn;
}

/** Installs the fence and emits the marker; returns the marker's LSN and the tables fenced. */
export async function installFence(
  client: pg.ClientBase,
  o: FenceOptions,
): Promise<{ markerLsn: string; tables: TableRef[]; attempts: number }> {
  const { result, attempts } = await inFenceTransaction(client, o, async () => {
    const tables = await createFenceTriggers(client, o);
    const markerLsn = await emitFenceMessage(client, o, true);
    return { markerLsn, tables };
  });
  return { ...result, attempts };
}

/**
 * The waiting fence: on its own connection, a transaction takes EXCLUSIVE locks on the tables — reads go on, every
 * write (and TRUNCATE) waits — and emits the marker right away (non-transactional, so the source sees it while the
 * transaction stays open): every write that committed before the locks precedes it in the WAL. The transaction
 * stays open until `releaseHeldFence` (after the flip: the writes that waited commit in legacy and are streamed,
 * later ones are rejected) or `releaseWriters` (an abort: it rolls back and the waiting writes go on in legacy,
 * replicated as usual). If the cutover dies, the connection does too and the writers go on: a later run fences
 * again (`fenceLegacy`) before it resumes a flip.
 */
export async function holdWriters(
  client: pg.ClientBase,
  o: FenceOptions,
): Promise<{ markerLsn: string; tables: TableRef[]; attempts: number }> {
  const { result, attempts } = await inFenceTransaction(
    client,
    o,
    async () => {
      const tables = await fencedTables(client, o);
      await lockTables(client, tables, 'EXCLUSIVE');
      const markerLsn = await emitFenceMessage(client, o, false);
      return { markerLsn, tables };
    },
    true,
  );
  return { ...result, attempts };
}

/**
 * Ends a waiting fence at the flip: the rejecting triggers are created under the held locks, admitting the
 * transactions begun before now + `graceMs`, and committed. The writes that waited (and those the application
 * still sends to legacy within the grace) commit in legacy; returns the admission's end (server time).
 */
export async function releaseHeldFence(
  client: pg.ClientBase,
  o: FenceOptions,
  graceMs: number,
): Promise<string> {
  const { rows } = await client.query<{ t: string }>(
    'SELECT (clock_timestamp() + make_interval(secs => $1::float8 / 1000))::text AS t',
    [graceMs],
  );
  const admitBefore = rows[0]!.t;
  await createFenceTriggers(client, o, admitBefore);
  await client.query('COMMIT');
  return admitBefore;
}

/**
 * Closes a released fence once its admission has ended: no write is admitted any more, and every transaction that
 * wrote under it has ended (a SHARE lock waits for their write locks). Returns the WAL position of a heartbeat
 * emitted after them: streamed up to it, V2 has every admitted write.
 */
export async function closeReleasedFence(
  client: pg.ClientBase,
  o: FenceOptions,
  heartbeatPrefix: string,
): Promise<string> {
  const { result } = await inFenceTransaction(
    client,
    o,
    async () => {
      await createFenceFunction(client, o);
      const tables = await fencedTables(client, o);
      await lockTables(client, tables, 'SHARE');
      // Transactional: it commits (and is flushed) with this transaction, stamped with legacy's clock.
      const { rows } = await client.query<{ lsn: string }>(EMIT_HEARTBEAT_SQL, [heartbeatPrefix]);
      return rows[0]!.lsn;
    },
    false,
    'close the fence: a transaction admitted after the flip is still open',
  );
  return result;
}

/** The rejecting fence, again (a later run resuming a flip whose waiting fence died with its connection). */
export async function fenceLegacy(client: pg.ClientBase, o: FenceOptions): Promise<void> {
  await inFenceTransaction(client, o, () => createFenceTriggers(client, o));
}

/** Ends a waiting fence without a flip: the waiting writes go on in legacy. */
export async function releaseWriters(client: pg.ClientBase): Promise<void> {
  await client.query('ROLLBACK');
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
