import type { JsonRow, V2Entity } from '../../src/contracts/transform-api.js';
import type { V2Unit } from '../../src/contracts/v2-unit.js';
import { parseLsn } from '../../src/core/lsn.js';

/** A source position: the commit LSN of the change's transaction and its sequence within it. */
export interface Position {
  commitLsn: bigint;
  seq: number;
}

/**
 * What the sink last applied of one legacy row (a row of replicator.lineage): its position, the V2 rows it produced
 * and the emails of the users it contributes to. Shared by the fast (batch) and slow (unit by unit) paths.
 */
export interface Lineage extends Position {
  outputs: [V2Entity, JsonRow][];
  emails: string[];
}

/**
 * A legacy row's entry in a lineage map: its table and its key, either as a row or as the JSON text stored in
 * replicator.lineage.source_key (which is `JSON.stringify` of the row).
 */
export function lineageKey(table: string, key: JsonRow | string): string {
  return `${table}\u0000${typeof key === 'string' ? key : JSON.stringify(key)}`;
}

/** The source position of a unit. */
export function positionOf(unit: V2Unit): Position {
  return { commitLsn: parseLsn(unit.source.commitLsn), seq: unit.source.seq };
}

/** (commitLsn, seq) ordering: whether `a` comes after `b` (a unit at or before its row's lineage is stale). */
export function isNewer(a: Position, b: Position): boolean {
  return a.commitLsn > b.commitLsn || (a.commitLsn === b.commitLsn && a.seq > b.seq);
}

/**
 * Whether a unit at `position` is stale for a row whose lineage records `recorded`: not newer than it — except a
 * replayed dead letter (`replay`) at exactly that position, which is the rejection it repairs.
 */
export function isStale(position: Position, recorded: Position, replay = false): boolean {
  if (replay && position.commitLsn === recorded.commitLsn && position.seq === recorded.seq) return false;
  return !isNewer(position, recorded);
}

const outputId = (entity: string, key: JsonRow) => `${entity}\u0000${JSON.stringify(key)}`;

/** What the row produced before (`before`'s outputs) and no longer produces (`outputs`), in lineage order. */
export function goneOutputs(
  before: Lineage | undefined,
  outputs: readonly [V2Entity, JsonRow][],
): [V2Entity, JsonRow][] {
  if (!before) return [];
  const keep = new Set(outputs.map(([e, k]) => outputId(e, k)));
  return before.outputs.filter(([e, k]) => !keep.has(outputId(e, k)));
}

/**
 * The SET items of a lineage upsert that keep what the row produced before its outputs (emails) last changed, so
 * the cutover's delta verify also checks the V2 rows (users) a change took away. Evaluated against the old row.
 */
export const PRIOR_LINEAGE = `prior_outputs = CASE WHEN replicator.lineage.outputs = EXCLUDED.outputs
    THEN replicator.lineage.prior_outputs ELSE replicator.lineage.outputs END,
  prior_emails = CASE WHEN replicator.lineage.emails = EXCLUDED.emails
    THEN replicator.lineage.prior_emails ELSE replicator.lineage.emails END`;
