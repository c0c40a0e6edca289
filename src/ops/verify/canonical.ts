import type { JsonValue } from '../../contracts/transform-api.js';

const PG_TS = /^(-?\d{4,})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?(Z|[+-]\d\d(?::?\d\d)?)?$/;

/**
 * One text form for a timestamp, whichever side wrote it: PostgreSQL's `2024-01-02 03:04:05.1+00` (session in UTC)
 * and the envelope's `2024-01-02T03:04:05.100000Z` both become the latter. Non-UTC offsets are left as they are
 * (the pipeline only produces UTC); anything else is returned unchanged.
 */
export function canonicalTimestamp(text: string): string {
  const m = PG_TS.exec(text);
  if (!m) return text;
  const zone = m[8];
  if (zone && zone !== 'Z' && !/^\+00(:?00)?$/.test(zone)) return text;
  const frac = (m[7] ?? '').padEnd(6, '0');
  return `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.${frac}${zone ? 'Z' : ''}`;
}

/**
 * Canonical form of a column value for comparison: a timestamp column's text as above; JSON with sorted keys, its
 * strings as written (a timestamp-shaped string inside JSON is a string: re-spelling it is a change).
 */
export function canonical(value: JsonValue | undefined): JsonValue {
  if (typeof value === 'string') return canonicalTimestamp(value);
  return sortedKeys(value);
}

function sortedKeys(value: JsonValue | undefined): JsonValue {
  if (value === undefined || value === null) return null;
  if (Array.isArray(value)) return value.map((v) => sortedKeys(v));
  if (typeof value === 'object') {
    const out: { [k: string]: JsonValue } = {};
    for (const k of Object.keys(value).sort()) out[k] = sortedKeys(value[k]);
    return out;
  }
  return value;
}
