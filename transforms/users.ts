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
  return foldOf(state).users();
}

/** The user of one normalized email, or null when no booking or profile has it (the user must not exist). */
export function deriveUser(email: string, state: UsersSource): User | null {
  const id = userId(email);
  return foldOf({
    profiles: state.profiles.filter((p) => p.email === email),
    bookings: state.bookings.filter((b) => bookingEmail(b) === email),
    payments: state.payments.filter((p) => p.user_id === id),
  }).user(email);
}

function foldOf(state: UsersSource): UsersFold {
  const fold = new UsersFold();
  for (const p of state.profiles) fold.addProfile(p);
  for (const b of state.bookings) fold.addBooking(b);
  for (const p of state.payments) fold.addPayment(p);
  return fold;
}

/** What one email's rows contribute to its user, so far. */
interface UserParts {
  /** Several profiles with one email: the smallest customer_id is the profile (the first of equals). */
  profile?: CustomerProfile;
  /** The earliest booking by (booked_at, id): it supplies what the profile lacks, and the phone. */
  first?: Booking;
  /** The earliest booked_at of every booking. */
  earliest?: string;
  /** Bookings not cancelled: how many, and the first and last booked_at among them. */
  active: number;
  firstActive?: string;
  lastActive?: string;
}

/**
 * The users rules as a fold: rows are added one at a time, in any grouping, and the users built at the end — what
 * `verify` uses to derive every user without keeping the rows. Adding the same row twice counts it twice; in order,
 * ties go to the first added (as deriveUsers over the rows in that order).
 */
export class UsersFold {
  private readonly parts = new Map<string, UserParts>();
  /** Amounts of succeeded payments, by user_id. */
  private readonly succeeded = new Map<string, string[]>();

  private partsOf(email: string): UserParts {
    let p = this.parts.get(email);
    if (p === undefined) {
      p = { active: 0 };
      this.parts.set(email, p);
    }
    return p;
  }

  addProfile(profile: CustomerProfile): void {
    const p = this.partsOf(profile.email);
    if (p.profile === undefined || compareText(profile.customer_id, p.profile.customer_id) < 0)
      p.profile = profile;
  }

  addBooking(booking: Booking): void {
    const email = bookingEmail(booking);
    if (email === null) return;
    const p = this.partsOf(email);
    const at = booking.booked_at;
    if (
      p.first === undefined ||
      (compareTimestamps(at, p.first.booked_at) || compareText(booking.id, p.first.id)) < 0
    ) {
      p.first = booking;
    }
    if (p.earliest === undefined || compareTimestamps(at, p.earliest) < 0) p.earliest = at;
    if (booking.status === 'CANCELLED') return;
    p.active++;
    if (p.firstActive === undefined || compareTimestamps(at, p.firstActive) < 0) p.firstActive = at;
    if (p.lastActive === undefined || compareTimestamps(p.lastActive, at) < 0) p.lastActive = at;
  }

  addPayment(payment: Payment): void {
    if (payment.status !== 'succeeded') return;
    const amounts = this.succeeded.get(payment.user_id);
    if (amounts === undefined) this.succeeded.set(payment.user_id, [payment.amount]);
    else amounts.push(payment.amount);
  }

  /** Every user, sorted by email. */
  users(): User[] {
    return [...this.parts.keys()].sort(compareText).map((email) => this.user(email)!);
  }

  /** The user of one normalized email, or null when no booking or profile has it. */
  user(email: string): User | null {
    const p = this.parts.get(email);
    if (p === undefined) return null;
    const { profile, first } = p;
    const id = userId(email);
    // The profile's created_at unless a booking is strictly earlier.
    const createdAt =
      p.earliest !== undefined && (!profile || compareTimestamps(p.earliest, profile.created_at) < 0)
        ? p.earliest
        : profile!.created_at;
    return {
      id,
      email,
      first_name: nonEmpty(profile?.first_name) ?? contactText(first, 'firstName'),
      last_name: nonEmpty(profile?.last_name) ?? contactText(first, 'lastName'),
      phone: contactText(first, 'phone'),
      company_name: nonEmpty(profile?.company_name) ?? contactText(first, 'company'),
      customer_id: profile?.customer_id ?? null,
      plan: profile?.plan ?? null,
      status: profile?.status ?? null,
      created_at: createdAt,
      total_bookings: p.active,
      total_spent: sumDecimals(this.succeeded.get(id) ?? [], 2),
      first_booking_at: p.firstActive ?? null,
      last_booking_at: p.lastActive ?? null,
    };
  }
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
