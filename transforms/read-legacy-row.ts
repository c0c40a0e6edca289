import type { z } from 'zod';
import {
  type JsonRow,
  type LegacyChange,
  SchemaDriftRejection,
  type TransformResult,
} from '../src/contracts/transform-api.js';
import { ReasonCodes, reject } from './reason-codes.js';

/** The parsed current row of a change, or the transform's whole answer when there is none to map. */
export type LegacyRowOutcome<T> = { ok: true; row: T; raw: JsonRow } | { ok: false; result: TransformResult };

/**
 * The steps every transform starts with: a delete maps to [] (the sink's lineage removes what the row produced),
 * a truncate and an event without `after` are rejected, and the row must have the legacy schema's column types.
 * `raw` is the unparsed row, for copying JSON through exactly as received.
 */
export function readLegacyRow<T>(change: LegacyChange, schema: z.ZodType<T>): LegacyRowOutcome<T> {
  if (change.op === 't') {
    return {
      ok: false,
      result: reject(ReasonCodes.TRUNCATE_UNSUPPORTED, `${change.table}: a truncate has no row to transform`),
    };
  }
  if (change.op === 'd') return { ok: false, result: { ok: true, ops: [] } };
  if (change.after === null) {
    return {
      ok: false,
      result: reject(ReasonCodes.MISSING_ROW, `${change.table}: '${change.op}' event without an after image`),
    };
  }
  const parsed = schema.safeParse(change.after);
  if (!parsed.success) {
    const drifted = driftedColumns(parsed.error.issues, change.after);
    if (drifted.length > 0) {
      return {
        ok: false,
        result: {
          ok: false,
          rejection: new SchemaDriftRejection(
            drifted.map((d) => d.column),
            `${change.table}: the legacy schema changed: ${drifted.map((d) => d.why).join('; ')}`,
          ),
        },
      };
    }
    // Paths and messages only: zod's messages do not quote values, so no personal data reaches DLQ headers.
    const issues = parsed.error.issues
      .map((i) => `${i.path.map(String).join('.') || '(row)'}: ${i.message}`)
      .join('; ');
    return {
      ok: false,
      result: reject(ReasonCodes.LEGACY_ROW_INVALID, `${change.table}: not a legacy row: ${issues}`),
    };
  }
  return { ok: true, row: parsed.data, raw: change.after };
}

/**
 * The declared columns the row's *shape* contradicts: absent (dropped or renamed), or holding a value of a type the
 * declaration never accepts (retyped: a PostgreSQL type other than json/jsonb always gives one JSON type). A null where the declaration
 * forbids it, a malformed value, a number out of range or a bad value nested inside a column are this row's data,
 * not the schema: those stay LEGACY_ROW_INVALID.
 */
function driftedColumns(
  issues: readonly z.core.$ZodIssue[],
  row: JsonRow,
): { column: string; why: string }[] {
  const out = new Map<string, string>();
  for (const issue of issues) {
    if (issue.path.length !== 1) continue;
    const column = String(issue.path[0]);
    if (!Object.hasOwn(row, column)) {
      out.set(column, `column "${column}" is missing`);
      continue;
    }
    const value = row[column];
    if (value === null || !wrongType(issue)) continue;
    out.set(
      column,
      `column "${column}" holds ${Array.isArray(value) ? 'array' : typeof value}: ${issue.message}`,
    );
  }
  return [...out].map(([column, why]) => ({ column, why }));
}

/**
 * A type mismatch: the value's type, or every alternative of a union refusing its type. Not for a column declared
 * as an object: that is a json/jsonb column, which may hold any JSON value (a non-object there is this row's data).
 */
function wrongType(issue: z.core.$ZodIssue): boolean {
  if (issue.code === 'invalid_type') return issue.expected !== 'object' && issue.expected !== 'record';
  if (issue.code !== 'invalid_union' || issue.errors.length === 0) return false;
  return issue.errors.every((branch) => branch.some((i) => i.path.length === 0 && wrongType(i)));
}

/** A JSON object (not null, not an array). */
export function isJsonObject(value: unknown): value is JsonRow {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
