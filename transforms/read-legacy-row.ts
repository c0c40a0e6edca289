import type { z } from 'zod';
import type { JsonRow, LegacyChange, TransformResult } from '../src/contracts/transform-api.js';
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

/** A JSON object (not null, not an array). */
export function isJsonObject(value: unknown): value is JsonRow {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
