import type {
  JsonRow,
  LegacyChange,
  TransformModule,
  TransformResult,
  V2Op,
} from '../src/contracts/transform-api.js';
import { isNegativeDecimal } from './decimal.js';
import { normalizeEmail } from './email.js';
import { paymentId, userId } from './ids.js';
import { legacyBookingSchema } from './legacy-schema.js';
import { isJsonObject, readLegacyRow } from './read-legacy-row.js';
import { ReasonCodes, reject } from './reason-codes.js';
import { recomputeUsersOp, upsertOp } from './v2-ops.js';
import { BOOKING_STATUSES, type Booking, type BookingStatus, type Payment } from './v2-schema.js';

const TABLE = 'public.bookings';

/** Statuses with a payment, and its V2 status; the others have none (the sink's lineage deletes an old one). */
const PAYMENT_STATUS: Readonly<Partial<Record<BookingStatus, Payment['status']>>> = {
  PAID: 'succeeded',
  COMPLETED: 'succeeded',
  ATTENDED: 'succeeded',
  REFUNDED: 'refunded',
};

function isBookingStatus(status: string): status is BookingStatus {
  return (BOOKING_STATUSES as readonly string[]).includes(status);
}

/**
 * A legacy booking → [upsert bookings, upsert payments (when its status has one), recompute users [email]], in
 * the order a sink applying them in one transaction needs for foreign keys (it creates a placeholder user for a
 * new user_id itself; the recompute then fills it in). Only the current email's user is named: when the email
 * changed, the sink recomputes the previous one from the row's lineage.
 */
function transformBooking(change: LegacyChange): TransformResult {
  if (change.table !== TABLE)
    return reject(ReasonCodes.UNKNOWN_TABLE, `bookings: not a table of this module: ${change.table}`);
  const read = readLegacyRow(change, legacyBookingSchema);
  if (!read.ok) return read.result;
  const legacy = read.row;

  const email = normalizeEmail(legacy.contactDetails.email);
  if (email === null) {
    return reject(
      ReasonCodes.BOOKING_INVALID_EMAIL,
      `booking ${legacy.id}: contactDetails.email is missing or not a valid email`,
    );
  }
  if (legacy.bookingReference.trim() === '') {
    return reject(ReasonCodes.BOOKING_EMPTY_REFERENCE, `booking ${legacy.id}: bookingReference is empty`);
  }
  const status = legacy.status;
  if (!isBookingStatus(status)) {
    return reject(
      ReasonCodes.BOOKING_UNKNOWN_STATUS,
      `booking ${legacy.id}: unknown status ${JSON.stringify(status)}`,
    );
  }
  if (isNegativeDecimal(legacy.finalAmount)) {
    return reject(
      ReasonCodes.BOOKING_NEGATIVE_AMOUNT,
      `booking ${legacy.id}: finalAmount ${legacy.finalAmount} < 0`,
    );
  }

  const user = userId(email);
  // From the raw row, so every other key (and its JSON) passes through exactly; fromEntries makes own properties
  // even of a '__proto__' key.
  const rawContact = read.raw.contactDetails;
  const contact: JsonRow = Object.fromEntries(
    Object.entries(isJsonObject(rawContact) ? rawContact : {})
      .filter(([k]) => k !== 'notes')
      .map(([k, v]) => [k, k === 'email' ? email : v]),
  );
  const booking: Booking = {
    id: legacy.id,
    reference: legacy.bookingReference,
    user_id: user,
    status,
    amount: legacy.finalAmount,
    contact,
    booked_at: legacy.createdAt,
    updated_at: legacy.updatedAt,
  };
  const ops: V2Op[] = [upsertOp('bookings', booking)];

  const paymentStatus = PAYMENT_STATUS[status];
  if (paymentStatus !== undefined) {
    const payment: Payment = {
      id: paymentId(legacy.id),
      booking_id: legacy.id,
      user_id: user,
      amount: legacy.finalAmount,
      status: paymentStatus,
      method: legacy.paymentMethod ?? 'card',
      paid_at: legacy.paymentDate ?? legacy.createdAt,
      reference: `MIGRATED-${legacy.bookingReference}`,
    };
    ops.push(upsertOp('payments', payment));
  }
  ops.push(recomputeUsersOp([email]));
  return { ok: true, ops };
}

/** public.bookings → V2 bookings, payments and (recomputed) users. */
export const bookingsModule: TransformModule = {
  name: 'bookings',
  tables: [TABLE],
  legacySchemas: { [TABLE]: legacyBookingSchema },
  topicFor: (table) => {
    if (table !== TABLE) throw new Error(`bookings: not a table of this module: ${table}`);
    return 'bookings';
  },
  transform: transformBooking,
};
