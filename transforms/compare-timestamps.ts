/**
 * Orders ISO 8601 timestamps by the instant they denote. Text order is only right when every value has the same
 * offset and fractional digits (the source's are all UTC with six); profiles' createdAt come from a JSON store
 * and may carry an offset or fewer digits.
 */

const ISO = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:[Zz]|([+-])(\d\d):(\d\d))$/;

/** Nanoseconds since the Unix epoch; throws a RangeError for text that is not such a timestamp. */
export function instantOf(iso: string): bigint {
  const m = ISO.exec(iso);
  if (m === null) throw new RangeError(`not an ISO timestamp: ${JSON.stringify(iso)}`);
  const [, y, mo, d, h, mi, s, frac, sign, oh, om] = m;
  // Not Date.UTC: it reads years 0..99 as 1900..1999.
  const date = new Date(0);
  date.setUTCFullYear(Number(y), Number(mo) - 1, Number(d));
  date.setUTCHours(Number(h), Number(mi), Number(s), 0);
  const offsetSeconds =
    sign === undefined ? 0 : (sign === '-' ? -1 : 1) * (Number(oh) * 3600 + Number(om) * 60);
  const seconds = BigInt(date.getTime() / 1000 - offsetSeconds);
  return seconds * 1_000_000_000n + BigInt((frac ?? '').slice(0, 9).padEnd(9, '0'));
}

/** By instant; one instant written two ways is ordered by its text, so the order is total and deterministic. */
export function compareTimestamps(a: string, b: string): number {
  // Fast path: the same layout in UTC (the source's form: same length, 'T' at 10, 'Z' last) orders as text.
  if (
    a.length === b.length &&
    a.length >= 20 &&
    a[10] === 'T' &&
    b[10] === 'T' &&
    a.endsWith('Z') &&
    b.endsWith('Z')
  ) {
    return a < b ? -1 : a > b ? 1 : 0;
  }
  const ia = instantOf(a);
  const ib = instantOf(b);
  if (ia !== ib) return ia < ib ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}
