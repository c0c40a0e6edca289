import { compareText } from '../../transforms/compare-text.js';
import type { JsonRow, JsonValue } from '../transform/types.js';
import { canonical } from './canonical.js';

/**
 * The comparison form of V2 rows, typed by the target's column types, so a value the transforms produce and the
 * same value read back from PostgreSQL compare equal however each side spells it: numerics without insignificant
 * zeros ('10.10' = '10.1'), timestamptz as the UTC instant with microseconds (an offset or 'Z', 'T' or ' ', any
 * number of fractional digits), jsonb with sorted keys. Everything else compares as it is.
 */
export type ColumnKind = 'numeric' | 'timestamptz' | 'json' | 'integer' | 'bigint' | 'text' | 'other';

/** The kind of an information_schema.columns data_type. */
export function columnKind(dataType: string): ColumnKind {
  switch (dataType) {
    case 'numeric':
      return 'numeric';
    case 'timestamp with time zone':
      return 'timestamptz';
    case 'json':
    case 'jsonb':
      return 'json';
    case 'integer':
    case 'smallint':
      return 'integer';
    case 'bigint':
      return 'bigint';
    case 'text':
    case 'character varying':
    case 'character':
      return 'text';
    default:
      return 'other';
  }
}

const DECIMAL = /^([+-])?(\d*)(?:\.(\d*))?$/;

/** '010.10' → '10.1', '-0.00' → '0', '.5' → '0.5'; text that is not a plain decimal is returned unchanged. */
export function canonicalDecimal(text: string): string {
  const m = DECIMAL.exec(text);
  if (m === null || (m[2] === '' && (m[3] ?? '') === '')) return text;
  const whole = m[2]!.replace(/^0+/, '') || '0';
  const fraction = (m[3] ?? '').replace(/0+$/, '');
  const body = fraction === '' ? whole : `${whole}.${fraction}`;
  return m[1] === '-' && body !== '0' ? `-${body}` : body;
}

const TIMESTAMP =
  /^(\d{4,})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|z|[+-]\d\d(?::?\d\d)?(?::?\d\d)?)?$/;

/**
 * A timestamptz as its UTC instant, `YYYY-MM-DDTHH:MM:SS.ffffffZ` (microseconds, as PostgreSQL stores it; more
 * digits are rounded as PostgreSQL rounds them). Text that is not such a timestamp (infinity, BC) is unchanged.
 */
export function canonicalTimestamptz(text: string): string {
  const m = TIMESTAMP.exec(text);
  if (m === null) return text;
  const [, y, mo, d, h, mi, s, frac = '', zone = 'Z'] = m;
  let micros = Number(frac.slice(0, 6).padEnd(6, '0'));
  if (frac.length > 6 && Number(frac[6]) >= 5) micros++;
  let offsetSeconds = 0;
  if (zone !== 'Z' && zone !== 'z') {
    const digits = zone.slice(1).replaceAll(':', '');
    offsetSeconds =
      (zone[0] === '-' ? -1 : 1) *
      (Number(digits.slice(0, 2)) * 3600 +
        Number(digits.slice(2, 4) || 0) * 60 +
        Number(digits.slice(4, 6) || 0));
  }
  if (offsetSeconds === 0 && micros < 1_000_000) {
    return `${y}-${mo}-${d}T${h}:${mi}:${s}.${String(micros).padStart(6, '0')}Z`;
  }
  // Not Date.UTC: it reads years 0..99 as 1900..1999.
  const date = new Date(0);
  date.setUTCFullYear(Number(y), Number(mo) - 1, Number(d));
  date.setUTCHours(Number(h), Number(mi), Number(s), 0);
  const ms = date.getTime() - offsetSeconds * 1000 + Math.floor(micros / 1_000_000) * 1000;
  const iso = new Date(ms).toISOString();
  if (!/^\d{4}-/.test(iso)) return text; // expanded years: leave as written
  return `${iso.slice(0, 19)}.${String(micros % 1_000_000).padStart(6, '0')}Z`;
}

/** The comparison form of one value of a column of this kind. */
export function canonicalValue(kind: ColumnKind, value: JsonValue | undefined): JsonValue {
  if (value === undefined || value === null) return null;
  switch (kind) {
    case 'numeric':
      return typeof value === 'string' ? canonicalDecimal(value) : canonicalDecimal(String(value));
    case 'timestamptz':
      return typeof value === 'string' ? canonicalTimestamptz(value) : value;
    case 'json':
      return canonical(value);
    case 'integer':
      return typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value;
    case 'bigint':
      return typeof value === 'number' ? String(value) : value;
    default:
      return value;
  }
}

export interface EntityShape {
  /** The V2 schema's columns, in schema order. */
  columns: readonly { name: string; kind: ColumnKind }[];
  /** Primary-key columns, in key order. */
  key: readonly { name: string; kind: ColumnKind }[];
}

/** One JSON text per row: its columns' comparison forms in the schema's column order. */
export function canonicalRow(shape: EntityShape, row: JsonRow): string {
  let out = '[';
  for (let i = 0; i < shape.columns.length; i++) {
    const c = shape.columns[i]!;
    if (i > 0) out += ',';
    out += JSON.stringify(canonicalValue(c.kind, row[c.name]));
  }
  return `${out}]`;
}

/** The columns whose comparison forms differ. */
export function differingColumns(shape: EntityShape, expected: JsonRow, actual: JsonRow): string[] {
  return shape.columns
    .filter(
      (c) =>
        JSON.stringify(canonicalValue(c.kind, expected[c.name])) !==
        JSON.stringify(canonicalValue(c.kind, actual[c.name])),
    )
    .map((c) => c.name);
}

/** The key's values in key order (the comparison forms: a bigint key read back as text equals the number). */
export function keyValues(shape: EntityShape, row: JsonRow): JsonValue[] {
  return shape.key.map((k) => canonicalValue(k.kind, row[k.name]));
}

/** Text identity of a key (what maps and the re-verify queue use). */
export const keyText = (values: readonly JsonValue[]): string => JSON.stringify(values);

/** The key as an object (column → value), for reports and the queue. */
export function keyObject(shape: EntityShape, values: readonly JsonValue[]): JsonRow {
  const out: JsonRow = {};
  shape.key.forEach((k, i) => {
    out[k.name] = values[i] ?? null;
  });
  return out;
}

function compareKeyValue(kind: ColumnKind, a: JsonValue, b: JsonValue): number {
  if (a === b) return 0;
  if (a === null) return 1; // NULLS LAST, as ORDER BY … ASC
  if (b === null) return -1;
  if (kind === 'integer') return Number(a) - Number(b);
  if (kind === 'bigint') {
    const x = BigInt(a as string);
    const y = BigInt(b as string);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  // uuid text is lower-case hex: code point order is PostgreSQL's uuid order; text keys are ordered COLLATE "C".
  return compareText(String(a), String(b));
}

/** Orders key values as `ORDER BY` the key columns (text keys COLLATE "C") orders them in PostgreSQL. */
export function compareKeys(shape: EntityShape, a: readonly JsonValue[], b: readonly JsonValue[]): number {
  for (let i = 0; i < shape.key.length; i++) {
    const c = compareKeyValue(shape.key[i]!.kind, a[i] ?? null, b[i] ?? null);
    if (c !== 0) return c;
  }
  return 0;
}
