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

/** Placeholders for every derived row these keys need before their recompute, in one statement. */
export async function ensurePlaceholders(
  client: pg.ClientBase,
  derived: DerivedEntity,
  keys: Iterable<string>,
  createdAt: string,
): Promise<void> {
  const unique = [...new Set(keys)];
  if (unique.length === 0) return;
  await client.query(derived.placeholderSql, [unique.map((k) => derived.id(k)), unique, createdAt]);
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
