const VALID_EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/**
 * lower(NFC(trim(email))), or null when the result is not a valid email (or the value is not a string at all).
 * NFC first, so the composed and decomposed spellings of `zoë` are one user; then locale-independent lower-casing
 * (JavaScript's full Unicode mapping), except that a dotted capital I (`İ`, U+0130) becomes a plain `i`: the
 * default mapping gives `i` + U+0307 (a combining dot no one types), so `İSTANBUL@…` would not match `istanbul@…`.
 * V2 emails (and users' keys) come from here only; SQL never re-normalizes them (PostgreSQL's trim strips only
 * spaces and its lower depends on the locale).
 */
export function normalizeEmail(raw: unknown): string | null {
  if (typeof raw !== 'string') return null;
  const email = raw.trim().normalize('NFC').replaceAll('\u0130', 'I').toLowerCase();
  return VALID_EMAIL.test(email) ? email : null;
}

/** True for text normalizeEmail returns unchanged. */
export function isNormalizedEmail(email: string): boolean {
  return normalizeEmail(email) === email;
}
