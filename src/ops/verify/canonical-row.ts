import type pg from 'pg';
import { compareText } from '../../../transforms/compare-text.js';
import { RawJson } from '../../contracts/event-value.js';
import { type ExactJson, exactNumberText, parseJsonWithNumbers } from '../../contracts/exact-json.js';
import type { JsonRow, JsonValue } from '../../contracts/transform-api.js';
import { textTypes } from '../../core/pg-text-types.js';
import { quoteIdent } from '../../core/sql.js';

/**
 * The comparison form of V2 rows, typed by the target's column types, so a value the transforms produce and the
 * same value read back from PostgreSQL compare equal however each side spells it: numerics without insignificant
 * zeros ('10.10' = '10.1'), timestamptz as the UTC instant with microseconds (an offset or 'Z', 'T' or ' ', any
 * number of fractional digits), JSON exactly — numbers as decimals (a jsonb number beyond a double's precision is
 * not the double nearest it), strings as written (a timestamp-shaped string is a string), keys sorted. Everything
 * else compares as it is.
 */
export type ColumnKind =
  | 'numeric'
  | 'timestamptz'
  | 'json'
  | 'integer'
  | 'bigint'
  | 'text'
  | 'other'
  | 'missing';

/** The kind of an information_schema.columns data_type. */
export function columnKind(dataType: string | undefined): ColumnKind {
  switch (dataType) {
    case undefined:
      return 'missing';
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
      return exactJson(value);
    case 'integer':
      return typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value;
    case 'bigint':
      return typeof value === 'number' ? String(value) : value;
    default:
      return value;
  }
}

/**
 * Type parsers for verify's reads of target rows: json and jsonb columns as their text (RawJson), so numbers keep
 * every digit (pg's own parser reads them as doubles: 0.61300000000000000001 would become 0.613); everything
 * else as textTypes. Rows read this way hold RawJson values where JsonRow says JsonValue; displayRow turns them
 * into plain values for reports.
 */
export const exactJsonTypes: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === 114 || oid === 3802
      ? (text: string) => new RawJson(text)
      : textTypes.getTypeParser(oid, format as 'text')) as pg.CustomTypesConfig['getTypeParser'],
};

/** A JSON number as written, inside a parsed RawJson (its value need not fit a double). */
class JsonNumber {
  constructor(readonly text: string) {}
}

type ExactValue = ExactJson<JsonNumber>;

/** Parses JSON text keeping each number's text. */
const parseExact = (text: string): ExactValue => parseJsonWithNumbers(text, (t) => new JsonNumber(t));

/**
 * The exact comparison text of a JSON value — the transforms' (JS values) or the target's (RawJson): numbers as
 * decimals without exponent or insignificant zeros, strings as written, object keys sorted.
 */
export function exactJson(value: JsonValue | RawJson): string {
  return exactText(value instanceof RawJson ? parseExact(value.text) : (value as ExactValue | number));
}

function exactText(v: ExactValue | number | undefined): string {
  if (v === null || v === undefined) return 'null';
  if (v instanceof JsonNumber) return canonicalDecimal(plainDecimal(v.text));
  switch (typeof v) {
    case 'number':
      return canonicalDecimal(plainNumber(v));
    case 'string': {
      // A number the apply stage kept exact (exact-json.ts) compares as that number.
      const exact = exactNumberText(v);
      return exact === undefined ? JSON.stringify(v) : canonicalDecimal(plainDecimal(exact));
    }
    case 'boolean':
      return v ? 'true' : 'false';
  }
  if (v instanceof RawJson) return exactJson(v);
  if (Array.isArray(v)) return `[${v.map((x) => exactText(x)).join(',')}]`;
  const keys = Object.keys(v).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${exactText(v[k])}`).join(',')}}`;
}

/**
 * A JSON value for reports: RawJson parsed, a number that a double cannot hold kept as its text (a string), so a
 * report shows 0.61300000000000000001 rather than the 0.613 it would round to.
 */
export function displayJson(value: JsonValue | RawJson): JsonValue {
  if (!(value instanceof RawJson)) return unmarked(value);
  const plain = (v: ExactValue): JsonValue => {
    if (v instanceof JsonNumber) {
      const n = Number(v.text);
      return canonicalDecimal(plainNumber(n)) === canonicalDecimal(plainDecimal(v.text)) ? n : v.text;
    }
    if (v === null || typeof v !== 'object') return v;
    if (Array.isArray(v)) return v.map(plain);
    const out: JsonRow = {};
    for (const k of Object.keys(v)) out[k] = plain(v[k]!);
    return out;
  };
  return plain(parseExact(value.text));
}

/** The transforms' value with the apply stage's exact numbers (exact-json.ts) shown as their text. */
function unmarked(v: JsonValue): JsonValue {
  if (typeof v === 'string') return exactNumberText(v) ?? v;
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(unmarked);
  const out: JsonRow = {};
  for (const k of Object.keys(v)) out[k] = unmarked(v[k]!);
  return out;
}

/** A row read with exactJsonTypes, its JSON values as displayJson makes them. */
export function displayRow(row: JsonRow): JsonRow;
export function displayRow(row: JsonRow | null): JsonRow | null;
export function displayRow(row: JsonRow | null): JsonRow | null {
  if (row === null) return null;
  let out: JsonRow | undefined;
  for (const [k, v] of Object.entries(row)) {
    const shown = displayJson(v);
    if (shown === v) continue;
    out ??= { ...row };
    out[k] = shown;
  }
  return out ?? row;
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
  if (shape.key.length === 1) {
    const k = shape.key[0]!;
    const v = row[k.name];
    return [
      typeof v === 'string' && k.kind !== 'integer' && k.kind !== 'numeric' ? v : canonicalValue(k.kind, v),
    ];
  }
  return shape.key.map((k) => canonicalValue(k.kind, row[k.name]));
}

/**
 * Text identity of a key within its entity (map keys): a one-column text key is its text, others JSON. An entity's
 * keys all have one shape, so the two forms never meet.
 */
export const keyText = (values: readonly JsonValue[]): string =>
  values.length === 1 && typeof values[0] === 'string' ? values[0] : JSON.stringify(values);

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
  // Text keys are ordered COLLATE "C" (code points); uuid text is lower-case hex, whose text order is uuid order.
  if (kind === 'text') return compareText(String(a), String(b));
  const x = String(a);
  const y = String(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Orders key values as `ORDER BY` the key columns (text keys COLLATE "C") orders them in PostgreSQL. */
export function compareKeys(shape: EntityShape, a: readonly JsonValue[], b: readonly JsonValue[]): number {
  for (let i = 0; i < shape.key.length; i++) {
    const c = compareKeyValue(shape.key[i]!.kind, a[i] ?? null, b[i] ?? null);
    if (c !== 0) return c;
  }
  return 0;
}

/**
 * The exact-text form used for chunk hashes: per column the text PostgreSQL itself prints for the value in the
 * expression of `hashRowSql` — to_json of text, uuid and boolean, trim_scale of numerics, timestamptz as UTC with
 * microseconds, jsonb as jsonb prints it (keys by length then bytes, ', ' and ': ', numbers in plain notation) —
 * so a chunk's hash can be computed by the target without shipping its rows. A value spelt differently on the two
 * sides only makes its chunk mismatch; the row-by-row comparison (canonicalRow) then decides, so this form is
 * an optimization that can never hide a difference or invent one.
 */
export function hashLine(shape: EntityShape, row: JsonRow): string {
  let out = '';
  for (let i = 0; i < shape.columns.length; i++) {
    const c = shape.columns[i]!;
    if (i > 0) out += ',';
    out += hashText(c.kind, row[c.name]);
  }
  return out;
}

/** Already canonical: the source's form, 'YYYY-MM-DDTHH:MM:SS.ffffffZ'. */
const isCanonicalTimestamptz = (v: string) =>
  v.length === 27 &&
  v.charCodeAt(10) === 84 /* T */ &&
  v.charCodeAt(19) === 46 /* . */ &&
  v.charCodeAt(26) === 90; /* Z */

/** Already canonical: digits, at most one '.', no leading zero before another digit, no trailing fractional zero. */
function isCanonicalDecimal(v: string): boolean {
  const n = v.length;
  let i = v.charCodeAt(0) === 45 /* - */ ? 1 : 0;
  if (i >= n) return false;
  if (v.charCodeAt(i) === 48 /* 0 */ && i + 1 < n && v.charCodeAt(i + 1) !== 46) return false;
  let dot = -1;
  for (; i < n; i++) {
    const c = v.charCodeAt(i);
    if (c === 46) {
      if (dot >= 0) return false;
      dot = i;
    } else if (c < 48 || c > 57) return false;
  }
  if (dot < 0) return v !== '-0';
  return dot < n - 1 && v.charCodeAt(n - 1) !== 48;
}

function hashText(kind: ColumnKind, v: JsonValue | undefined): string {
  if (v === null || v === undefined) return 'null';
  switch (kind) {
    case 'numeric': {
      const text = String(v);
      return `"${isCanonicalDecimal(text) ? text : canonicalDecimal(text)}"`;
    }
    case 'timestamptz':
      if (typeof v !== 'string') return JSON.stringify(v);
      return `"${isCanonicalTimestamptz(v) ? v : canonicalTimestamptz(v)}"`;
    case 'json':
      return jsonbText(v);
    case 'integer':
    case 'bigint':
      return typeof v === 'number' ? String(v) : JSON.stringify(v);
    default:
      return JSON.stringify(v);
  }
}

const NON_ASCII = /[\u0080-\uffff]/;

/** jsonb's key order: shorter (in UTF-8 bytes) first, then bytewise (for ASCII: by length, then as text). */
function jsonbKeyOrder(a: string, b: string): number {
  if (!NON_ASCII.test(a) && !NON_ASCII.test(b)) {
    return a.length !== b.length ? a.length - b.length : a < b ? -1 : a > b ? 1 : 0;
  }
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length !== y.length ? x.length - y.length : Buffer.compare(x, y);
}

/** A JS number as PostgreSQL's numeric prints what JSON.stringify wrote for it (no exponent). */
export function plainNumber(n: number): string {
  if (!Number.isFinite(n)) return 'null';
  return plainDecimal(String(n));
}

/** A JSON number's text without an exponent ('1.5E-7' → '0.00000015'); other text is returned unchanged. */
export function plainDecimal(s: string): string {
  const m = /^(-?)(\d+)(?:\.(\d+))?[eE]([+-]?\d+)$/.exec(s);
  if (m === null) return s;
  const digits = m[2]! + (m[3] ?? '');
  const point = m[2]!.length + Number(m[4]);
  if (point <= 0) return `${m[1]}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return `${m[1]}${digits}${'0'.repeat(point - digits.length)}`;
  return `${m[1]}${digits.slice(0, point)}.${digits.slice(point)}`;
}

const keyOrders = new Map<string, string[]>();

/** Keys in jsonb's order; objects of one shape (a row's JSON column) share a cached order. */
function jsonbKeys(keys: string[]): string[] {
  if (keys.length < 2) return keys;
  const signature = keys.join('\u0000');
  let sorted = keyOrders.get(signature);
  if (sorted === undefined) {
    sorted = [...keys].sort(jsonbKeyOrder);
    if (keyOrders.size >= 1_000) keyOrders.clear();
    keyOrders.set(signature, sorted);
  }
  return sorted;
}

/** JSON text as jsonb's output function writes it. */
export function jsonbText(v: JsonValue): string {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'number':
      return plainNumber(v);
    case 'boolean':
      return v ? 'true' : 'false';
  }
  if (Array.isArray(v)) {
    let out = '[';
    for (let i = 0; i < v.length; i++) out += (i > 0 ? ', ' : '') + jsonbText(v[i]!);
    return `${out}]`;
  }
  const keys = jsonbKeys(Object.keys(v));
  let out = '{';
  for (let i = 0; i < keys.length; i++)
    out += `${i > 0 ? ', ' : ''}${JSON.stringify(keys[i])}: ${jsonbText(v[keys[i]!]!)}`;
  return `${out}}`;
}

/** The SQL expression of hashLine for alias `t` (text; never NULL). */
export function hashRowSql(shape: EntityShape, alias = 't'): string {
  return shape.columns
    .map((c) => {
      if (c.kind === 'missing') return `'null'`;
      const col = `${alias}.${quoteIdent(c.name)}`;
      const expr =
        c.kind === 'numeric'
          ? `to_json(trim_scale(${col})::text)::text`
          : c.kind === 'timestamptz'
            ? `to_json(to_char(${col} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::text`
            : c.kind === 'json'
              ? `${col}::text`
              : c.kind === 'integer' || c.kind === 'bigint'
                ? `${col}::text`
                : `to_json(${col})::text`;
      return `coalesce(${expr}, 'null')`;
    })
    .join(` || ',' || `);
}
