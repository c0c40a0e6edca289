const VALID_EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/**
 * lower(trim(email)), or null when the result is not a valid email (or the value is not a string at all).
 * JavaScript's trim and lower-casing (all Unicode white space, full Unicode case mapping) are the definition: V2
 * emails (and users' keys) come from here only, SQL never re-normalizes them (PostgreSQL's trim strips only spaces
 * and its lower depends on the locale).
 */
export function normalizeEmail(raw: unknown): string | null {
  if (typeof raw !== 'string') return null;
  const email = raw.trim().toLowerCase();
  return VALID_EMAIL.test(email) ? email : null;
}

/** True for text normalizeEmail returns unchanged. */
export function isNormalizedEmail(email: string): boolean {
  return normalizeEmail(email) === email;
}
