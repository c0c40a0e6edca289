import { z } from 'zod';
import type { JsonRow, JsonValue } from '../src/contracts/transform-api.js';

/**
 * Column-level zod schemas shared by the legacy and the V2 row schemas. Values are in the change events' JSON form:
 * numerics as exact decimal strings, timestamptz as ISO strings, jsonb as parsed JSON.
 */

/**
 * Whether `v` is a JSON value: null, a boolean, a finite number, a string, or an array or plain object of JSON values.
 * A walk, not a zod union: the union tried each member at every level and was a third of a booking's parse
 * (verify and the sink parse every legacy row).
 */
export function isJsonValue(v: unknown): v is JsonValue {
  if (v === null) return true;
  switch (typeof v) {
    case 'boolean':
    case 'string':
      return true;
    case 'number':
      return Number.isFinite(v);
    case 'object': {
      if (Array.isArray(v)) return v.every(isJsonValue);
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) return false;
      for (const k in v) if (!isJsonValue((v as Record<string, unknown>)[k])) return false;
      return true;
    }
    default:
      return false;
  }
}

/** Any JSON value; typed as the transform API's JsonValue so rows built from it are JsonRows. */
export const jsonValueSchema: z.ZodType<JsonValue> = z.custom<JsonValue>(isJsonValue, 'a JSON value');

export const jsonObjectSchema: z.ZodType<JsonRow> = z.custom<JsonRow>(
  (v) => typeof v === 'object' && v !== null && !Array.isArray(v) && isJsonValue(v),
  'a JSON object',
);

/**
 * An ISO 8601 timestamp with 'Z' or an offset, at most microsecond precision (PostgreSQL would round more digits,
 * and then two values that compare different here would be equal in the database). The source's 'infinity' and
 * expanded/BC years are not accepted: no V2 column could hold them as the same text.
 */
export const isoTimestampSchema = z.iso
  .datetime({ offset: true })
  .refine((s) => !/\.\d{7,}/.test(s), 'at most microsecond precision');

/** A finite decimal number as text ('12.50', '-3'); NaN and infinities are not accepted. */
export const decimalSchema = z.string().regex(/^-?\d+(?:\.\d+)?$/, 'a decimal number');

/** A value of numeric(precision, scale): at most precision - scale integer digits and scale fractional digits. */
export function numericSchema(precision: number, scale: number, options: { nonNegative?: boolean } = {}) {
  const sign = options.nonNegative ? '' : '-?';
  const fraction = scale > 0 ? `(?:\\.\\d{1,${scale}})?` : '';
  return z
    .string()
    .regex(new RegExp(`^${sign}\\d{1,${precision - scale}}${fraction}$`), `a numeric(${precision},${scale})`);
}

/**
 * A legacy numeric(precision, scale) column as the declared type prints it (exactly `scale` fractional digits).
 * Also accepts the same value spelt by a wider column — a migration that widened it to numeric(14,4) sends
 * '120.5000' — so a compatible schema change does not dead-letter every later row; a value the declared type
 * cannot hold exactly (more integer digits, non-zero digits past `scale`) is still refused.
 */
export function legacyNumericSchema(precision: number, scale: number) {
  const declared = `a numeric(${precision},${scale})`;
  return z
    .string()
    .regex(/^-?\d+(?:\.\d+)?$/, declared)
    .transform((text, ctx) => {
      const [, sign = '', whole = '', fraction = ''] = /^(-?)(\d+)(?:\.(\d+))?$/.exec(text)!;
      const integer = whole.replace(/^0+(?=\d)/, '');
      const kept = fraction.slice(0, scale).padEnd(scale, '0');
      if (integer.length > precision - scale || /[1-9]/.test(fraction.slice(scale))) {
        ctx.addIssue({ code: 'custom', message: `${declared}: ${text} does not fit` });
        return z.NEVER;
      }
      return scale > 0 ? `${sign}${integer}.${kept}` : `${sign}${integer}`;
    });
}
