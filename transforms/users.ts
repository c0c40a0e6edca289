import { compareText } from './compare-text.js';
import { compareTimestamps } from './compare-timestamps.js';
import { sumDecimals } from './decimal.js';
import { normalizeEmail } from './email.js';
import { userId } from './ids.js';
import type { Booking, CustomerProfile, Payment, User } from './v2-schema.js';

/** The V2 rows users are derived from. */
export interface UsersSource {
  profiles: readonly CustomerProfile[];
  bookings: readonly Booking[];
  payments: readonly Payment[];
}

/**
 * The users rules, as a pure reference for the sink's SQL recompute and for `verify`: one user per normalized email
 * that a booking or a profile has, recomputed from scratch (never incremented, so replays and reordering cannot
 * skew it). Sorted by email (code point order). Bookings are grouped by their contact email (V2 bookings carry the
 * normalized one, and their user_id derives from it), payments by user_id.
 */
export function deriveUsers(state: UsersSource): User[] {
  const profiles = groupBy(state.profiles, (p) => p.email);
  const bookings = groupBy(state.bookings, bookingEmail);
  const payments = groupBy(state.payments, (p) => p.user_id);
  const emails = [...new Set([...profiles.keys(), ...bookings.keys()])].sort(compareText);
  return emails.map(
    (email) =>
      buildUser(
        email,
        profiles.get(email) ?? [],
        bookings.get(email) ?? [],
        payments.get(userId(email)) ?? [],
      )!,
  );
}

/** The user of one normalized email, or null when no booking or profile has it (the user must not exist). */
export function deriveUser(email: string, state: UsersSource): User | null {
  const id = userId(email);
  return buildUser(
    email,
    state.profiles.filter((p) => p.email === email),
    state.bookings.filter((b) => bookingEmail(b) === email),
    state.payments.filter((p) => p.user_id === id),
  );
}

function buildUser(
  email: string,
  profiles: readonly CustomerProfile[],
  bookings: readonly Booking[],
  payments: readonly Payment[],
): User | null {
  if (profiles.length === 0 && bookings.length === 0) return null;
  // Several profiles with one email: the smallest customer_id is the profile.
  const profile = minBy(profiles, (a, b) => compareText(a.customer_id, b.customer_id));
  // The earliest booking by (booked_at, id) supplies what the profile lacks, and the phone.
  const first = minBy(
    bookings,
    (a, b) => compareTimestamps(a.booked_at, b.booked_at) || compareText(a.id, b.id),
  );
  const active = bookings.filter((b) => b.status !== 'CANCELLED').map((b) => b.booked_at);
  const createdAt = minBy(
    [...(profile ? [profile.created_at] : []), ...bookings.map((b) => b.booked_at)],
    compareTimestamps,
  )!;
  return {
    id: userId(email),
    email,
    first_name: nonEmpty(profile?.first_name) ?? contactText(first, 'firstName'),
    last_name: nonEmpty(profile?.last_name) ?? contactText(first, 'lastName'),
    phone: contactText(first, 'phone'),
    company_name: nonEmpty(profile?.company_name) ?? contactText(first, 'company'),
    customer_id: profile?.customer_id ?? null,
    plan: profile?.plan ?? null,
    status: profile?.status ?? null,
    created_at: createdAt,
    total_bookings: active.length,
    total_spent: sumDecimals(
      payments.filter((p) => p.status === 'succeeded').map((p) => p.amount),
      2,
    ),
    first_booking_at: minBy(active, compareTimestamps) ?? null,
    last_booking_at: minBy(active, (a, b) => compareTimestamps(b, a)) ?? null,
  };
}

export function bookingEmail(booking: Booking): string | null {
  return normalizeEmail(booking.contact.email);
}

/** Empty strings count as missing values. */
function nonEmpty(value: string | null | undefined): string | null {
  return value === undefined || value === '' ? null : value;
}

function contactText(booking: Booking | undefined, field: string): string | null {
  const value = booking?.contact[field];
  return typeof value === 'string' ? nonEmpty(value) : null;
}

function minBy<T>(items: readonly T[], compare: (a: T, b: T) => number): T | undefined {
  let min: T | undefined;
  for (const item of items) if (min === undefined || compare(item, min) < 0) min = item;
  return min;
}

function groupBy<T>(items: readonly T[], keyOf: (item: T) => string | null): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const key = keyOf(item);
    if (key === null) continue;
    const group = groups.get(key);
    if (group === undefined) groups.set(key, [item]);
    else group.push(item);
  }
  return groups;
}
