import type { z } from 'zod';

/**
 * The transform API. A transform module maps one legacy change event to the V2 operations that describe the
 * *current* state of that legacy row in V2 — pure and synchronous, no I/O. The stage wraps its output in a V2 unit
 * (src/contracts/v2-unit.ts) with the event's source position; the sink applies a unit atomically and removes what
 * the legacy row produced before but no longer produces (its lineage), so transforms never emit "undo" logic.
 */

/** A JSON value as it appears in change events (numerics, int8 and timestamps are strings). */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };
export type JsonRow = { [column: string]: JsonValue };

/** The change event as the transform sees it (the source's Debezium-shaped envelope, parsed). */
export interface LegacyChange {
  op: 'c' | 'u' | 'd' | 'r' | 't';
  /** schema.table of the legacy row */
  table: string;
  /** Primary-key columns of the legacy row (from the Kafka key). */
  key: JsonRow;
  before: JsonRow | null;
  after: JsonRow | null;
}

/** The V2 tables a sink writes (keys of the V2 zod schemas in transforms/v2-schema.ts). */
export type V2Entity =
  | 'users'
  | 'customer_profiles'
  | 'bookings'
  | 'payments'
  | 'bundles'
  | 'bundle_components'
  | 'bundle_discounts';

export type V2Op =
  /** INSERT … ON CONFLICT (key columns) DO UPDATE; `row` holds every column including the key. */
  | { kind: 'upsert'; entity: V2Entity; key: JsonRow; row: JsonRow }
  /** DELETE by key (normally the sink's lineage does this; explicit deletes are allowed). */
  | { kind: 'delete'; entity: V2Entity; key: JsonRow }
  /** The full set of child rows under a parent: upsert these, delete the parent's other children. */
  | { kind: 'replace-children'; entity: V2Entity; parentKey: JsonRow; childKey: string[]; rows: JsonRow[] }
  /** Recompute a derived entity (users) for these keys (normalized emails) from V2 state. */
  | { kind: 'recompute-derived'; entity: 'users'; keys: string[] };

/** A reason-coded rejection of an invalid legacy row: the row counts as absent in V2 and the event is dead-lettered. */
export class TransformRejection extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'TransformRejection';
  }
}

/** The reason code of a SchemaDriftRejection (in findings, metrics and logs). */
export const SCHEMA_DRIFT = 'SCHEMA_DRIFT';

/**
 * The row does not have the shape the module declares for its table — a declared column is missing, or holds
 * another JSON type than declared — so the legacy *schema* changed (a dropped, renamed or retyped column), not this
 * row's data. The apply stage holds the table's changes (its other tables flow) until the legacy schema or the
 * module fits again, instead of dead-lettering every later row.
 */
export class SchemaDriftRejection extends TransformRejection {
  constructor(
    /** The declared columns that no longer fit. */
    readonly columns: readonly string[],
    message: string,
  ) {
    super(SCHEMA_DRIFT, message);
    this.name = 'SchemaDriftRejection';
  }
}

export type TransformResult = { ok: true; ops: V2Op[] } | { ok: false; rejection: TransformRejection };

export interface TransformModule {
  /** Stable name, used in DLQ headers and metrics. */
  name: string;
  /** Legacy tables (schema.table) this module handles. */
  tables: readonly string[];
  /** zod schema of the legacy row, per table. */
  legacySchemas: Readonly<Record<string, z.ZodType>>;
  /** Which V2 topic (entity name) the units of a table go to. */
  topicFor: (table: string) => string;
  /**
   * The V2 operations for the current state of the changed legacy row: [] when it was deleted (or is skipped).
   * Never throws for bad data: returns { ok: false } with a reason code instead.
   */
  transform: (change: LegacyChange) => TransformResult;
}
