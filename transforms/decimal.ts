/**
 * Exact decimal arithmetic on the decimal strings of change events: money never goes through a JS float
 * (0.10 + 0.20 must be '0.30'). Scaled bigints carry the value.
 */

const DECIMAL = /^(-)?(\d+)(?:\.(\d+))?$/;

/** The value of `text` in units of 10^-scale; throws a RangeError if it needs more fractional digits. */
function toUnits(text: string, scale: number): bigint {
  const m = DECIMAL.exec(text);
  if (m === null) throw new RangeError(`not a decimal number: ${JSON.stringify(text)}`);
  const fraction = (m[3] ?? '').replace(/0+$/, '');
  if (fraction.length > scale) throw new RangeError(`more than ${scale} fractional digits: ${text}`);
  const units = BigInt(m[2]! + fraction.padEnd(scale, '0'));
  return m[1] === '-' ? -units : units;
}

function fromUnits(units: bigint, scale: number): string {
  const negative = units < 0n;
  const digits = (negative ? -units : units).toString().padStart(scale + 1, '0');
  const whole = digits.slice(0, digits.length - scale);
  const text = scale > 0 ? `${whole}.${digits.slice(digits.length - scale)}` : whole;
  return negative ? `-${text}` : text;
}

/** The exact sum with exactly `scale` fractional digits ('0.00' for none). */
export function sumDecimals(values: readonly string[], scale: number): string {
  let total = 0n;
  for (const v of values) total += toUnits(v, scale);
  return fromUnits(total, scale);
}

/** True when the decimal is below zero ('-0.00' is not). */
export function isNegativeDecimal(text: string): boolean {
  return /^-\d*[1-9]/.test(text.replace('.', ''));
}
