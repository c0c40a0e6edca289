import type { V2Entity } from './transform-api.js';

/**
 * What a sink needs to know of the V2 domain, and nothing more: in which order the entities are written and
 * removed, and how the derived entity (users) is kept. The sink owns the mechanics (transactions, locks taken in a
 * fixed order, running the statements); the model owns the domain. The implementation lives in transforms/, next
 * to the TypeScript rules its SQL mirrors.
 */
export interface V2Model {
  /** Parents before children: the order of upserts, so a child's foreign key finds its parent. */
  readonly upsertOrder: readonly V2Entity[];
  /** Children before parents: the order in which rows a legacy row no longer produces are deleted. */
  readonly deleteOrder: readonly V2Entity[];
  /** The entity computed from other V2 rows (users), never written by a unit directly. */
  readonly derived: DerivedEntity;
}

/**
 * A derived entity: one row per key (users: a normalized email), recomputed from scratch from V2 state, never
 * incremented, so replays and reordering cannot skew it. A unit asks for a recompute with a `recompute-derived` op.
 */
export interface DerivedEntity {
  /** The derived row's id for a key (users.id of a normalized email). */
  id(key: string): string;
  /**
   * The class of the transaction-scoped advisory locks the sink takes on keys before it touches their rows
   * (`pg_advisory_xact_lock(hashtext(lockClass), hashtext(key))`). Every sink writing one target must agree on it.
   */
  readonly lockClass: string;
  /**
   * One statement that recomputes the rows of many keys from V2 state: upserts each row that should exist and
   * deletes each row that no longer should. Parameters: $1 the keys (text[]), $2 their ids (uuid[], same order).
   * The caller holds the keys' locks.
   */
  readonly recomputeSql: string;
  /**
   * One statement that inserts a placeholder row for each key that has none (a child row may refer to its derived
   * row before the recompute fills it in; foreign keys stay on in V2), leaving existing rows alone. Parameters:
   * $1 the ids (uuid[]), $2 the keys (text[], same order), $3 the placeholders' creation time (timestamptz). An
   * INSERT (a WITH of its own is fine) without a trailing semicolon: the sink runs it inside a WITH, beside the
   * statement that queues the keys.
   */
  readonly placeholderSql: string;
  /**
   * The columns `recomputeSql` finds a key's rows by: each needs an index whose first column it is, or every
   * recompute scans that table. The sink warns at start about any without one.
   */
  readonly lookups: readonly { table: V2Entity; column: string }[];
}
