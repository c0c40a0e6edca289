import type { JsonRow, V2Op } from './transform-api.js';

/**
 * What the transform stage publishes for one legacy change: the V2 operations describing the legacy row's current
 * state, with the row's identity and source position. The sink applies a unit atomically, skips it when it has
 * already applied a later position of the same legacy row, and removes what the row produced before but no longer
 * produces (its lineage).
 */
export interface V2Unit {
  v: 1;
  kind: 'change';
  source: {
    /** schema.table of the legacy row */
    table: string;
    /** its primary key */
    key: JsonRow;
    op: 'c' | 'u' | 'd' | 'r' | 't';
    /** commit LSN of its transaction (the snapshot's consistent point for op r) */
    commitLsn: string;
    seq: number;
    txId: number | null;
    commitTs: string | null;
    snapshot: boolean;
    /**
     * A change re-published by `dlq replay` (header `replicator.replayed-from`): applied even at the position its
     * row's lineage records — the rejection it repairs recorded that very position — never over a newer one.
     */
    replay?: boolean;
  };
  ops: V2Op[];
  /** A TRUNCATE of the legacy table: every legacy row of that table is now absent. */
  truncate?: boolean;
}

/** Kafka key of a unit: the legacy row's identity, so every change of one legacy row stays in one partition. */
export function unitKey(table: string, key: JsonRow): string {
  return JSON.stringify([table, key]);
}
