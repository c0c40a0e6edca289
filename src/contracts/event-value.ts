import { parse as parseArrayLiteral } from 'postgres-array';
import { ErrorCodes, ReplicatorError } from '../core/errors.js';
import { parseJsonExactly } from './exact-json.js';
import type { JsonValue } from './transform-api.js';

/**
 * Turns PostgreSQL text-format values into exact JSON-able event values. The source session runs with
 * `DateStyle=ISO, YMD`, `TimeZone=UTC`, `IntervalStyle=iso_8601`, `extra_float_digits=3` and `bytea_output=hex`,
 * so those are the text forms parsed here. Nothing goes through JS `Date` (years reach 294276 and BC) and nothing
 * that must stay exact (int8, numeric, money) goes through a float. SQL NULL never reaches a decoder: callers map
 * it to `null` themselves (inside arrays the array parser does).
 */

/** A json/jsonb value kept as the server's text so big integers are never rounded; serializers emit it verbatim. */
export class RawJson {
  constructor(readonly text: string) {}

  /** Lossy fallback for plain `JSON.stringify` callers only (numbers beyond 2^53 round); serializers use `text`. */
  toJSON(): unknown {
    return JSON.parse(this.text);
  }
}

/**
 * An event value as the apply stage sees it after the envelope's JSON round trip (`parseJsonExactly`): json and
 * jsonb numbers a double cannot hold stay exact (see exact-json.ts).
 */
export function eventValueToJson(v: EventValue): JsonValue {
  if (v instanceof RawJson) return parseJsonExactly(v.text);
  if (Array.isArray(v)) return v.map(eventValueToJson);
  return v;
}

export type EventValue = null | boolean | number | string | RawJson | EventValue[];

export interface PgTypeInfo {
  oid: number;
  name: string;
  kind: 'base' | 'enum' | 'array' | 'domain' | 'composite' | 'range' | 'other';
  /** Arrays: the element type. */
  elementOid?: number;
  /** Domains: the underlying type. */
  baseOid?: number;
  /** typdelim: the separator between this type's values inside an array literal (';' for box). */
  delimiter?: string;
}

type Decode = (text: string) => EventValue;

const asText: Decode = (text) => text;

const INTEGER = /^-?\d+$/;
const NUMERIC = /^(?:-?\d+(?:\.\d+)?|NaN|-?Infinity)$/;

function decodeBool(text: string): boolean {
  if (text === 't') return true;
  if (text === 'f') return false;
  throw new Error(`expected 't' or 'f'`);
}

/** int2, int4 and oid all fit a double exactly. */
function decodeSmallInt(text: string): number {
  if (!INTEGER.test(text)) throw new Error('not an integer');
  return Number(text);
}

/** int8 stays a string: beyond 2^53 a double would round it. */
function decodeInt8(text: string): string {
  if (!INTEGER.test(text)) throw new Error('not an integer');
  return text;
}

function decodeNumeric(text: string): string {
  if (!NUMERIC.test(text)) throw new Error('not a numeric');
  return text;
}

/** JSON has no NaN or infinities, so those stay the server's words. */
function decodeFloat(text: string): number | string {
  if (text === 'NaN' || text === 'Infinity' || text === '-Infinity') return text;
  const n = Number(text);
  if (text === '' || !Number.isFinite(n)) throw new Error('not a float');
  return n;
}

function decodeBytea(text: string): string {
  if (!text.startsWith('\\x') || text.length % 2 !== 0) throw new Error('not hex-format bytea');
  const hex = text.slice(2);
  const bytes = Buffer.from(hex, 'hex');
  // Buffer.from stops silently at the first non-hex character; a short result means the text was malformed.
  if (bytes.length * 2 !== hex.length) throw new Error('not hex-format bytea');
  return bytes.toString('base64');
}

const DATE = /^(\d{4,})-(\d\d)-(\d\d)( BC)?$/;
const TIMESTAMP =
  /^(\d{4,})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?([+-]\d\d(?::\d\d){0,2})?( BC)?$/;

/**
 * Years as ISO 8601 astronomical/expanded years, because PostgreSQL's own ' BC' suffix is not ISO:
 * 1 AD..9999 AD → 4 digits ('0001'); 1 BC → '0000'; 44 BC → '-0043' (sign, at least 4 digits);
 * after 9999 → '+10000' (sign, as ISO 8601 expanded representation requires).
 * Note PostgreSQL itself does not accept signed years on input, so a sink must map them back.
 */
function formatYear(year: number): string {
  if (year >= 0 && year <= 9999) return String(year).padStart(4, '0');
  return year < 0 ? `-${String(-year).padStart(4, '0')}` : `+${year}`;
}

const pad2 = (n: number): string => (n < 10 ? `0${n}` : String(n));

/** Days since 1970-01-01 in the proleptic Gregorian calendar (PostgreSQL's); H. Hinnant's days_from_civil. */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/** The inverse of daysFromCivil: [year, month, day]. */
function civilFromDays(days: number): [number, number, number] {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  return [yoe + era * 400 + (month <= 2 ? 1 : 0), month, day];
}

/** '+05:30' → 19800; '-03' → -10800; '+05:53:28' (historical LMT zones) → 21208. */
function offsetSeconds(offset: string): number {
  const sign = offset[0] === '-' ? -1 : 1;
  const parts = offset.slice(1).split(':');
  return sign * (Number(parts[0]) * 3600 + Number(parts[1] ?? 0) * 60 + Number(parts[2] ?? 0));
}

function decodeDate(text: string): string {
  if (text === 'infinity' || text === '-infinity') return text;
  const m = DATE.exec(text);
  if (m === null) throw new Error('not an ISO date');
  if (m[4] === undefined && m[1]!.length === 4) return text;
  const year = m[4] === undefined ? Number(m[1]) : 1 - Number(m[1]);
  return `${formatYear(year)}-${m[2]}-${m[3]}`;
}

/**
 * timestamp → 'YYYY-MM-DDTHH:MM:SS.ffffff'; timestamptz → the same in UTC with 'Z'. Always six fractional digits
 * so values sort as text and compare exactly. Offsets are applied with integer day/second arithmetic.
 */
function decodeTimestamp(text: string, withZone: boolean): string {
  if (text === 'infinity' || text === '-infinity') return text;
  const m = TIMESTAMP.exec(text);
  if (m === null || (m[8] !== undefined) !== withZone) {
    throw new Error(withZone ? 'not an ISO timestamp with time zone' : 'not an ISO timestamp');
  }
  const fraction = m[7] === undefined ? '000000' : m[7].padEnd(6, '0');
  const zone = withZone ? 'Z' : '';
  const offset = m[8] === undefined ? 0 : offsetSeconds(m[8]);
  const bc = m[9] !== undefined;
  if (offset === 0 && !bc && m[1]!.length === 4) {
    // The common case: already UTC (the session's zone), only the separator and fraction change.
    return `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.${fraction}${zone}`;
  }
  let year = bc ? 1 - Number(m[1]) : Number(m[1]);
  let month = Number(m[2]);
  let day = Number(m[3]);
  let second = Number(m[4]) * 3600 + Number(m[5]) * 60 + Number(m[6]) - offset;
  const dayShift = Math.floor(second / 86400);
  if (dayShift !== 0) {
    second -= dayShift * 86400;
    [year, month, day] = civilFromDays(daysFromCivil(year, month, day) + dayShift);
  }
  const hh = pad2(Math.floor(second / 3600));
  const mi = pad2(Math.floor((second % 3600) / 60));
  const ss = pad2(second % 60);
  return `${formatYear(year)}-${pad2(month)}-${pad2(day)}T${hh}:${mi}:${ss}.${fraction}${zone}`;
}

const BASE_DECODERS: ReadonlyMap<number, Decode> = new Map<number, Decode>([
  [16, decodeBool],
  [17, decodeBytea],
  [20, decodeInt8],
  [21, decodeSmallInt],
  [23, decodeSmallInt],
  [26, decodeSmallInt],
  [114, (text) => new RawJson(text)],
  [3802, (text) => new RawJson(text)],
  [700, decodeFloat],
  [701, decodeFloat],
  [1700, decodeNumeric],
  [1082, decodeDate],
  [1114, (text) => decodeTimestamp(text, false)],
  [1184, (text) => decodeTimestamp(text, true)],
]);

// Builtin OIDs are fixed across PostgreSQL versions. Types absent here and from BASE_DECODERS decode as text.
const BUILTIN_BASE: ReadonlyArray<readonly [number, string]> = [
  [16, 'bool'],
  [17, 'bytea'],
  [18, 'char'],
  [19, 'name'],
  [20, 'int8'],
  [21, 'int2'],
  [23, 'int4'],
  [25, 'text'],
  [26, 'oid'],
  [114, 'json'],
  [142, 'xml'],
  [650, 'cidr'],
  [700, 'float4'],
  [701, 'float8'],
  [774, 'macaddr8'],
  [790, 'money'],
  [829, 'macaddr'],
  [869, 'inet'],
  [1042, 'bpchar'],
  [1043, 'varchar'],
  [1082, 'date'],
  [1083, 'time'],
  [1114, 'timestamp'],
  [1184, 'timestamptz'],
  [1186, 'interval'],
  [1266, 'timetz'],
  [1560, 'bit'],
  [1562, 'varbit'],
  [1700, 'numeric'],
  [2950, 'uuid'],
  [3802, 'jsonb'],
];

const BUILTIN_ARRAYS: ReadonlyArray<readonly [number, string, number]> = [
  [143, '_xml', 142],
  [199, '_json', 114],
  [651, '_cidr', 650],
  [775, '_macaddr8', 774],
  [791, '_money', 790],
  [1000, '_bool', 16],
  [1001, '_bytea', 17],
  [1002, '_char', 18],
  [1003, '_name', 19],
  [1005, '_int2', 21],
  [1007, '_int4', 23],
  [1009, '_text', 25],
  [1014, '_bpchar', 1042],
  [1015, '_varchar', 1043],
  [1016, '_int8', 20],
  [1021, '_float4', 700],
  [1022, '_float8', 701],
  [1028, '_oid', 26],
  [1040, '_macaddr', 829],
  [1041, '_inet', 869],
  [1115, '_timestamp', 1114],
  [1182, '_date', 1082],
  [1183, '_time', 1083],
  [1185, '_timestamptz', 1184],
  [1187, '_interval', 1186],
  [1231, '_numeric', 1700],
  [1270, '_timetz', 1266],
  [1561, '_bit', 1560],
  [1563, '_varbit', 1562],
  [2951, '_uuid', 2950],
  [3807, '_jsonb', 3802],
];

const BUILTIN_TYPES: readonly PgTypeInfo[] = [
  ...BUILTIN_BASE.map(([oid, name]): PgTypeInfo => ({ oid, name, kind: 'base', delimiter: ',' })),
  ...BUILTIN_ARRAYS.map(
    ([oid, name, elementOid]): PgTypeInfo => ({ oid, name, kind: 'array', elementOid, delimiter: ',' }),
  ),
  // Category 'A' in pg_type but space-separated text ('1 2 3'), not array literals: kept as text.
  { oid: 22, name: 'int2vector', kind: 'other' },
  { oid: 30, name: 'oidvector', kind: 'other' },
];

const BUILTIN_OIDS: ReadonlySet<number> = new Set(BUILTIN_TYPES.map((t) => t.oid));

/** Domains over domains are legal, but PostgreSQL cannot make a cycle; this bound only guards bad catalog input. */
const MAX_TYPE_DEPTH = 16;

function decodeFailed(info: PgTypeInfo, cause: unknown): ReplicatorError {
  const why = cause instanceof Error ? cause.message : String(cause);
  // The value itself is left out: it may be personal data and the message goes to logs.
  return new ReplicatorError(
    ErrorCodes.VALUE_DECODE_FAILED,
    `cannot decode a ${info.name} value (type oid ${info.oid}): ${why}`,
    { cause, details: { typeOid: info.oid, typeName: info.name } },
  );
}

export class TypeCatalog {
  readonly #types = new Map<number, PgTypeInfo>();
  readonly #decoders = new Map<number, Decode>();

  constructor() {
    for (const t of BUILTIN_TYPES) this.#types.set(t.oid, t);
  }

  get(oid: number): PgTypeInfo | undefined {
    return this.#types.get(oid);
  }

  add(info: PgTypeInfo): void {
    this.#types.set(info.oid, { ...info });
    // A cached decoder may have been built before this type (or its element/base) was known.
    this.#decoders.clear();
  }

  /** OIDs (including array element / domain base types, transitively) that are not known yet. */
  missing(oids: readonly number[]): number[] {
    const out: number[] = [];
    const seen = new Set<number>();
    const queue = [...oids];
    for (let i = 0; i < queue.length; i++) {
      const oid = queue[i]!;
      if (seen.has(oid)) continue;
      seen.add(oid);
      const info = this.#types.get(oid);
      if (info === undefined) out.push(oid);
      else if (info.kind === 'array' && info.elementOid !== undefined) queue.push(info.elementOid);
      else if (info.kind === 'domain' && info.baseOid !== undefined) queue.push(info.baseOid);
    }
    return out;
  }

  /** A decoder for a column of this type; unknown types decode to the text as-is. Cached per oid. */
  decoder(oid: number): (text: string) => EventValue {
    let decode = this.#decoders.get(oid);
    if (decode === undefined) {
      decode = this.#wrapped(oid);
      this.#decoders.set(oid, decode);
    }
    return decode;
  }

  /** Wraps once at the column's type so a failure deep inside an array still names the column's type. */
  #wrapped(oid: number): Decode {
    const inner = this.#build(oid, 0);
    const info = this.#types.get(oid);
    if (inner === asText || info === undefined) return inner;
    return (text) => {
      try {
        return inner(text);
      } catch (e) {
        throw decodeFailed(info, e);
      }
    };
  }

  #build(oid: number, depth: number): Decode {
    const info = this.#types.get(oid);
    if (info === undefined || depth > MAX_TYPE_DEPTH) return asText;
    switch (info.kind) {
      case 'base':
        return BASE_DECODERS.get(oid) ?? asText;
      case 'domain':
        return info.baseOid === undefined ? asText : this.#build(info.baseOid, depth + 1);
      case 'array':
        return info.elementOid === undefined ? asText : this.#arrayDecoder(info.elementOid, depth);
      default:
        // enum labels are their text; composites and ranges have no JSON shape of their own, so stay text.
        return asText;
    }
  }

  #arrayDecoder(elementOid: number, depth: number): Decode {
    // postgres-array only splits on ','; the one builtin exception (box, ';') stays text rather than mis-split.
    if ((this.#types.get(elementOid)?.delimiter ?? ',') !== ',') return asText;
    const element = this.#build(elementOid, depth + 1);
    return (text) => {
      // The parser returns [] for anything without braces, which would silently lose the value.
      if (text[0] !== '{' && text[0] !== '[') throw new Error('not an array literal');
      // Its typing says T[]; it really yields nested arrays and nulls, which EventValue[] describes.
      return parseArrayLiteral(text, element) as EventValue[];
    };
  }
}

interface PgTypeRow {
  oid: unknown;
  typname: unknown;
  typtype: unknown;
  typcategory: unknown;
  typelem: unknown;
  typbasetype: unknown;
  typdelim: unknown;
}

const LOAD_TYPES_SQL =
  'SELECT oid, typname, typtype, typcategory, typelem, typbasetype, typdelim FROM pg_catalog.pg_type WHERE oid = ANY($1)';

function toTypeInfo(raw: unknown): PgTypeInfo {
  const row = raw as PgTypeRow;
  // Numbers or strings: the caller's client may parse oids or hand back raw text.
  const oid = Number(row.oid);
  const name = String(row.typname);
  const typtype = String(row.typtype);
  const elem = Number(row.typelem);
  const base = Number(row.typbasetype);
  const delimiter = String(row.typdelim);
  // typtype first: a domain over an array also has category 'A'.
  if (typtype === 'd') return { oid, name, kind: 'domain', baseOid: base, delimiter };
  if (typtype === 'e') return { oid, name, kind: 'enum', delimiter };
  if (typtype === 'c') return { oid, name, kind: 'composite', delimiter };
  if (typtype === 'r') return { oid, name, kind: 'range', delimiter };
  if (row.typcategory === 'A' && elem !== 0) return { oid, name, kind: 'array', elementOid: elem, delimiter };
  return { oid, name, kind: typtype === 'b' ? 'base' : 'other', delimiter };
}

/**
 * Looks up non-builtin types (enums, domains, arrays of them, composites) in pg_type with a normal connection,
 * following array elements and domain bases until none is left unknown. An oid absent from pg_type (a type
 * dropped meanwhile) is simply not returned; the catalog then decodes it as text.
 */
export async function loadTypes(
  client: { query: (sql: string, values: unknown[]) => Promise<{ rows: unknown[] }> },
  oids: readonly number[],
): Promise<PgTypeInfo[]> {
  const found = new Map<number, PgTypeInfo>();
  const asked = new Set<number>();
  let pending = [...new Set(oids)];
  while (pending.length > 0) {
    for (const oid of pending) asked.add(oid);
    const { rows } = await client.query(LOAD_TYPES_SQL, [pending]);
    const next = new Set<number>();
    for (const row of rows) {
      const info = toTypeInfo(row);
      found.set(info.oid, info);
      const ref = info.kind === 'array' ? info.elementOid : info.kind === 'domain' ? info.baseOid : undefined;
      if (ref !== undefined && ref !== 0 && !asked.has(ref) && !BUILTIN_OIDS.has(ref)) next.add(ref);
    }
    pending = [...next];
  }
  return [...found.values()];
}
