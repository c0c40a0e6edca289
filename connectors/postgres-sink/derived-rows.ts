import type pg from 'pg';
import type { DerivedEntity } from '../../src/contracts/v2-model.js';

/**
 * The sink's mechanics for the derived entity (users): locks, placeholders and the recompute, run with the
 * statements the V2 model supplies (src/contracts/v2-model.ts). What a user is lives in the model, not here.
 */

/** Takes the transaction-scoped locks of these keys, in a fixed order so two sinks never deadlock on them. */
export async function lockDerived(
  client: pg.ClientBase,
  derived: DerivedEntity,
  keys: Iterable<string>,
): Promise<void> {
  const sorted = [...new Set(keys)].sort();
  if (sorted.length === 0) return;
  await client.query(
    `SELECT count(pg_advisory_xact_lock(hashtext($2), hashtext(e)))
       FROM (SELECT e FROM unnest($1::text[]) AS e ORDER BY e) AS ordered`,
    [sorted, derived.lockClass],
  );
}

/**
 * The model's placeholder statement for these (distinct) keys and its parameters ($1…$3): run alone, or inside a
 * WITH beside other statements (one round trip).
 */
export function placeholderStatement(
  derived: DerivedEntity,
  keys: readonly string[],
  createdAt: string,
): { sql: string; values: unknown[] } {
  return { sql: derived.placeholderSql, values: [keys.map((k) => derived.id(k)), keys, createdAt] };
}

/** Placeholders for every derived row these keys need before their recompute, in one statement. */
export async function ensurePlaceholders(
  client: pg.ClientBase,
  derived: DerivedEntity,
  keys: Iterable<string>,
  createdAt: string,
): Promise<void> {
  const unique = [...new Set(keys)];
  if (unique.length === 0) return;
  const { sql, values } = placeholderStatement(derived, unique, createdAt);
  await client.query(sql, values);
}

/** Recomputes (or deletes) the derived rows of these keys, in one statement. The caller holds their locks. */
export async function recomputeDerived(
  client: pg.ClientBase,
  derived: DerivedEntity,
  keys: readonly string[],
): Promise<void> {
  if (keys.length === 0) return;
  await client.query(derived.recomputeSql, [keys, keys.map((k) => derived.id(k))]);
}

/**
 * Records, in the apply transaction, the keys whose derived rows must be recomputed: a plain insert (no unique key,
 * so two transactions never wait on each other here). `settleDerived` recomputes them right after the commit; a
 * crash in between leaves them here for the next session's sweep. `alongside`: another data-modifying statement
 * (its parameters $1…) run in the same statement — one round trip instead of two; each costs the batch a wake-up of
 * both processes, milliseconds on a busy box. With it, the statement runs even when there is no key.
 */
export async function queueDerived(
  client: pg.ClientBase,
  keys: readonly string[],
  alongside?: { sql: string; values: readonly unknown[] },
): Promise<string[]> {
  if (keys.length === 0 && !alongside) return [];
  const values = [...(alongside?.values ?? []), keys];
  const { rows } = await client.query<{ id: string }>(
    `${alongside ? `WITH alongside AS (${alongside.sql}) ` : ''}INSERT INTO replicator.pending_derived (key) SELECT unnest($${values.length}::text[]) RETURNING id::text`,
    values,
  );
  return rows.map((r) => r.id);
}

/**
 * Keys per settle transaction: each key's advisory lock takes a slot of PostgreSQL's shared lock table
 * (max_locks_per_transaction × max_connections, 6,400 by default), so a settle merging tens of thousands of keys
 * (an initial snapshot over many users) would fail with "out of shared memory" — and fail again on every retry.
 */
export const SETTLE_CHUNK_KEYS = 500;

/**
 * Recomputes the queued keys in short transactions of their own (SETTLE_CHUNK_KEYS at a time, in key order), under
 * their locks, and removes them from the queue. Holding a key's lock only here — not across a whole apply
 * transaction — lets partitions that share users apply at the same time. `also` runs in the last transaction before
 * its COMMIT, which also removes any of `ids` left; a crash between two leaves the rest queued for the next sweep.
 */
export async function settleDerived(
  client: pg.ClientBase,
  derived: DerivedEntity,
  keys: readonly string[],
  ids: readonly string[],
  also?: () => Promise<void>,
): Promise<void> {
  const sorted = [...new Set(keys)].sort();
  for (let i = 0; i === 0 || i < sorted.length; i += SETTLE_CHUNK_KEYS) {
    const chunk = sorted.slice(i, i + SETTLE_CHUNK_KEYS);
    const last = i + SETTLE_CHUNK_KEYS >= sorted.length;
    await client.query('BEGIN');
    try {
      await lockDerived(client, derived, chunk);
      await recomputeDerived(client, derived, chunk);
      if (ids.length > 0)
        await client.query(
          last
            ? 'DELETE FROM replicator.pending_derived WHERE id = ANY($1::bigint[])'
            : 'DELETE FROM replicator.pending_derived WHERE id = ANY($1::bigint[]) AND key = ANY($2::text[])',
          last ? [ids] : [ids, chunk],
        );
      if (last) await also?.();
      await client.query('COMMIT');
    } catch (e) {
      await client.query('ROLLBACK').catch(() => {});
      throw e;
    }
  }
}
