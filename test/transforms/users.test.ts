import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { JsonRow } from '../../src/contracts/transform-api.js';
import { bookingsModule } from '../../transforms/bookings.js';
import { compareText } from '../../transforms/compare-text.js';
import { customerProfilesModule } from '../../transforms/customer-profiles.js';
import { paymentId, userId } from '../../transforms/ids.js';
import { deriveUser, deriveUsers, type UsersSource } from '../../transforms/users.js';
import {
  type Booking,
  bookingSchema,
  type CustomerProfile,
  customerProfileSchema,
  type Payment,
  paymentSchema,
  userSchema,
} from '../../transforms/v2-schema.js';
import { legacyBookingArb, legacyKvArb } from './arbitraries.js';
import { BOOKINGS, CUSTOMERS_KV, change, legacyBooking, legacyProfile, ts } from './fixtures.js';
import { V2Model } from './v2-model.js';

const ADA = 'ada@example.com';

function profile(overrides: Partial<CustomerProfile> = {}): CustomerProfile {
  return {
    customer_id: 'c1',
    email: ADA,
    first_name: 'Augusta',
    last_name: 'King',
    company_name: 'Profile Co',
    plan: 'pro',
    status: 'active',
    created_at: ts(10),
    ...overrides,
  };
}

let nextBooking = 0;
function booking(overrides: Partial<Booking> & { email?: string; contact?: JsonRow } = {}): Booking {
  const { email = ADA, contact, ...rest } = overrides;
  nextBooking += 1;
  return {
    id: `00000000-0000-4000-8000-${String(nextBooking).padStart(12, '0')}`,
    reference: `BK-${nextBooking}`,
    user_id: userId(email),
    status: 'PAID',
    amount: '10.00',
    contact: {
      email,
      firstName: 'Ada',
      lastName: 'Lovelace',
      phone: '+1 555 0100',
      company: 'Booking Co',
      ...contact,
    },
    booked_at: ts(5),
    updated_at: ts(5),
    ...rest,
  };
}

function payment(of: Booking, overrides: Partial<Payment> = {}): Payment {
  return {
    id: paymentId(of.id),
    booking_id: of.id,
    user_id: of.user_id,
    amount: of.amount,
    status: 'succeeded',
    method: 'card',
    paid_at: of.booked_at,
    reference: `MIGRATED-${of.reference}`,
    ...overrides,
  };
}

const state = (s: Partial<UsersSource>): UsersSource => ({ profiles: [], bookings: [], payments: [], ...s });

function only(s: Partial<UsersSource>) {
  const users = deriveUsers(state(s));
  expect(users).toHaveLength(1);
  for (const u of users) userSchema.parse(u);
  return users[0]!;
}

describe('deriveUsers', () => {
  it('derives a user from bookings alone', () => {
    const early = booking({ booked_at: ts(3), contact: { phone: '+44 1' } });
    const late = booking({ booked_at: ts(8), contact: { firstName: 'Later', phone: '+44 2' } });
    expect(only({ bookings: [late, early], payments: [payment(early), payment(late)] })).toEqual({
      id: userId(ADA),
      email: ADA,
      first_name: 'Ada',
      last_name: 'Lovelace',
      phone: '+44 1',
      company_name: 'Booking Co',
      customer_id: null,
      plan: null,
      status: null,
      created_at: ts(3),
      total_bookings: 2,
      total_spent: '20.00',
      first_booking_at: ts(3),
      last_booking_at: ts(8),
    });
  });

  it('derives a user from a profile alone', () => {
    expect(only({ profiles: [profile()] })).toEqual({
      id: userId(ADA),
      email: ADA,
      first_name: 'Augusta',
      last_name: 'King',
      phone: null,
      company_name: 'Profile Co',
      customer_id: 'c1',
      plan: 'pro',
      status: 'active',
      created_at: ts(10),
      total_bookings: 0,
      total_spent: '0.00',
      first_booking_at: null,
      last_booking_at: null,
    });
  });

  it("prefers the profile's non-null, non-empty names and company; the phone always comes from the booking", () => {
    const b = booking();
    expect(only({ profiles: [profile()], bookings: [b] })).toMatchObject({
      first_name: 'Augusta',
      last_name: 'King',
      company_name: 'Profile Co',
      phone: '+1 555 0100',
      customer_id: 'c1',
    });
    const partial = profile({ first_name: null, last_name: '', company_name: null, plan: null });
    expect(only({ profiles: [partial], bookings: [b] })).toMatchObject({
      first_name: 'Ada',
      last_name: 'Lovelace',
      company_name: 'Booking Co',
      plan: null,
    });
  });

  it('counts empty strings in the earliest booking as null, without looking at later bookings', () => {
    const early = booking({ booked_at: ts(1), contact: { firstName: '', phone: '', company: null } });
    const late = booking({
      booked_at: ts(2),
      contact: { firstName: 'Later', phone: '+2', company: 'Later Co' },
    });
    expect(only({ bookings: [early, late] })).toMatchObject({
      first_name: null,
      phone: null,
      company_name: null,
    });
  });

  it('breaks a booked_at tie by the smaller booking id', () => {
    const a = booking({ id: '00000000-0000-4000-8000-00000000000b', contact: { firstName: 'B' } });
    const b = booking({ id: '00000000-0000-4000-8000-00000000000a', contact: { firstName: 'A' } });
    expect(only({ bookings: [a, b] }).first_name).toBe('A');
    expect(only({ bookings: [b, a] }).first_name).toBe('A');
  });

  it('with two profiles for one email takes the smallest customer_id (text order) for every profile field', () => {
    const c9 = profile({ customer_id: 'c9', first_name: 'Nine', plan: 'free', created_at: ts(1) });
    const c10 = profile({ customer_id: 'c10', first_name: 'Ten', plan: null, created_at: ts(20) });
    const b = booking({ booked_at: ts(15) });
    const user = only({ profiles: [c9, c10], bookings: [b] });
    expect(user).toMatchObject({ customer_id: 'c10', first_name: 'Ten', plan: null });
    // created_at: the chosen profile's, not the other profile's earlier one.
    expect(user.created_at).toBe(ts(15));
  });

  it('takes created_at as the earliest of the profile and every booking, cancelled ones included', () => {
    const cancelled = booking({ status: 'CANCELLED', booked_at: ts(2) });
    expect(only({ profiles: [profile({ created_at: ts(4) })], bookings: [cancelled] }).created_at).toBe(
      ts(2),
    );
    expect(only({ profiles: [profile({ created_at: ts(1) })], bookings: [cancelled] }).created_at).toBe(
      ts(1),
    );
  });

  it('compares created_at by instant, whatever the offset', () => {
    const p = profile({ created_at: '2024-01-05T09:00:00+00:00' });
    const b = booking({ booked_at: '2024-01-05T08:30:00.000000Z' });
    expect(only({ profiles: [p], bookings: [b] }).created_at).toBe('2024-01-05T08:30:00.000000Z');
    const p2 = profile({ created_at: '2024-01-05T09:00:00+02:00' });
    expect(only({ profiles: [p2], bookings: [b] }).created_at).toBe('2024-01-05T09:00:00+02:00');
  });

  it('leaves CANCELLED bookings out of total_bookings and first/last_booking_at', () => {
    const kept = [
      booking({ booked_at: ts(4), status: 'PENDING' }),
      booking({ booked_at: ts(6), status: 'REFUNDED' }),
    ];
    const cancelled = [
      booking({ booked_at: ts(2), status: 'CANCELLED' }),
      booking({ booked_at: ts(9), status: 'CANCELLED' }),
    ];
    expect(only({ bookings: [...kept, ...cancelled] })).toMatchObject({
      total_bookings: 2,
      first_booking_at: ts(4),
      last_booking_at: ts(6),
      created_at: ts(2),
    });
    expect(only({ bookings: cancelled })).toMatchObject({
      total_bookings: 0,
      first_booking_at: null,
      last_booking_at: null,
    });
  });

  it('sums succeeded payments only, exactly', () => {
    const [a, b, c] = [
      booking({ amount: '0.10' }),
      booking({ amount: '0.20' }),
      booking({ amount: '99.99' }),
    ];
    const payments = [payment(a), payment(b), payment(c, { status: 'refunded' })];
    expect(only({ bookings: [a, b, c], payments }).total_spent).toBe('0.30');
  });

  it('sums large amounts without float error', () => {
    const bookings = Array.from({ length: 100 }, () => booking({ amount: '9999999999.99' }));
    const user = only({ bookings, payments: bookings.map((b) => payment(b)) });
    expect(user.total_spent).toBe('999999999999.00');
  });

  it('gives one user per email, sorted, and none for an email nothing has', () => {
    const users = deriveUsers(
      state({
        profiles: [profile({ email: 'zed@z.io', customer_id: 'z' })],
        bookings: [booking({ email: 'bob@b.io' }), booking({ email: ADA })],
      }),
    );
    expect(users.map((u) => u.email)).toEqual([ADA, 'bob@b.io', 'zed@z.io']);
    expect(deriveUser('nobody@n.io', state({ bookings: [booking()] }))).toBeNull();
    expect(deriveUsers(state({}))).toEqual([]);
  });

  it('deriveUser agrees with deriveUsers', () => {
    const s = state({ profiles: [profile()], bookings: [booking(), booking({ email: 'bob@b.io' })] });
    for (const user of deriveUsers(s)) expect(deriveUser(user.email, s)).toEqual(user);
  });
});

/** V2 state as the transforms and the sink's unit semantics build it. */
function apply(model: V2Model, table: string, row: JsonRow, op: 'c' | 'u' | 'd' = 'c') {
  const module = table === BOOKINGS ? bookingsModule : customerProfilesModule;
  const key: JsonRow = table === BOOKINGS ? { id: row.id ?? null } : { key: row.key ?? null };
  const result = module.transform(
    op === 'd' ? { op, table, key, before: row, after: null } : { op, table, key, before: null, after: row },
  );
  model.applyUnit(`${table}:${JSON.stringify(key)}`, result.ok ? result.ops : []);
}

const userRow = (model: V2Model, email: string) => model.rows('users').find((u) => u.email === email);

describe('users through transforms and unit application', () => {
  it('profile added after bookings, then deleted: the user goes back to the bookings-only user', () => {
    const model = new V2Model();
    apply(model, BOOKINGS, legacyBooking());
    const bookingsOnly = userRow(model, ADA);
    expect(bookingsOnly).toMatchObject({ first_name: 'Ada', customer_id: null, created_at: ts(2) });

    const p = legacyProfile({ value: { name: 'Augusta King', createdAt: '2023-12-01T09:00:00.000000Z' } });
    apply(model, CUSTOMERS_KV, p);
    expect(userRow(model, ADA)).toMatchObject({
      first_name: 'Augusta',
      last_name: 'King',
      customer_id: '42',
      plan: 'pro',
      phone: '+44 20 7946 0000',
      created_at: '2023-12-01T09:00:00.000000Z',
      total_spent: '120.50',
    });

    apply(model, CUSTOMERS_KV, p, 'd');
    expect(userRow(model, ADA)).toEqual(bookingsOnly);
  });

  it('an email change moves the booking and its payment to the new user; the old user goes', () => {
    const model = new V2Model();
    apply(model, BOOKINGS, legacyBooking());
    apply(model, BOOKINGS, legacyBooking({ contact: { email: 'Grace@Navy.mil' } }), 'u');
    expect(userRow(model, ADA)).toBeUndefined();
    expect(userRow(model, 'grace@navy.mil')).toMatchObject({ total_bookings: 1, total_spent: '120.50' });
    expect(model.rows('payments').map((p) => p.user_id)).toEqual([userId('grace@navy.mil')]);
  });

  it("an email change keeps the old user when another booking still has its email, with that booking's totals", () => {
    const model = new V2Model();
    const other = legacyBooking({
      id: '11111111-1111-4111-8111-111111111111',
      bookingReference: 'BK-2',
      finalAmount: '5.00',
    });
    apply(model, BOOKINGS, other);
    apply(model, BOOKINGS, legacyBooking());
    expect(userRow(model, ADA)).toMatchObject({ total_bookings: 2, total_spent: '125.50' });
    apply(model, BOOKINGS, legacyBooking({ contact: { email: 'grace@navy.mil' } }), 'u');
    expect(userRow(model, ADA)).toMatchObject({ total_bookings: 1, total_spent: '5.00' });
  });

  it('PAID → REFUNDED → PAID → PENDING moves total_spent with the payment', () => {
    const model = new V2Model();
    const spent = ['PAID', 'REFUNDED', 'PAID', 'PENDING'].map((status, i) => {
      apply(model, BOOKINGS, legacyBooking({ status }), i === 0 ? 'c' : 'u');
      return [userRow(model, ADA)!.total_spent, model.rows('payments').map((p) => p.status)];
    });
    expect(spent).toEqual([
      ['120.50', ['succeeded']],
      ['0.00', ['refunded']],
      ['120.50', ['succeeded']],
      ['0.00', []],
    ]);
  });

  it('a deleted booking takes its payment and (when it was the last) its user with it', () => {
    const model = new V2Model();
    apply(model, BOOKINGS, legacyBooking());
    apply(model, BOOKINGS, legacyBooking(), 'd');
    expect(model.snapshot()).toEqual(new V2Model().snapshot());
  });

  it('a booking that becomes invalid counts as absent', () => {
    const model = new V2Model();
    apply(model, BOOKINGS, legacyBooking());
    apply(model, BOOKINGS, legacyBooking({ status: 'LOST' }), 'u');
    expect(model.snapshot()).toEqual(new V2Model().snapshot());
  });

  it('users recomputed unit by unit equal deriveUsers over the final state', () => {
    fc.assert(
      fc.property(
        fc.array(legacyBookingArb(), { maxLength: 12 }),
        fc.uniqueArray(legacyKvArb(fc.nat({ max: 30 })), { selector: (r) => r.key, maxLength: 6 }),
        (bookings, kv) => {
          const model = new V2Model();
          for (const row of bookings) apply(model, BOOKINGS, row);
          for (const row of kv) apply(model, CUSTOMERS_KV, row);
          const byEmail = model.rows('users').sort((a, b) => compareText(String(a.email), String(b.email)));
          expect(byEmail).toEqual(deriveUsers(sourceOf(model)));
        },
      ),
    );
  });
});

function sourceOf(model: V2Model): UsersSource {
  return {
    profiles: model.rows('customer_profiles').map((r) => customerProfileSchema.parse(r)),
    bookings: model.rows('bookings').map((r) => bookingSchema.parse(r)),
    payments: model.rows('payments').map((r) => paymentSchema.parse(r)),
  };
}

describe('deriveUsers properties', () => {
  const sourceArb = fc
    .tuple(
      fc.array(legacyBookingArb(), { maxLength: 15 }),
      fc.uniqueArray(legacyKvArb(fc.nat({ max: 30 })), { selector: (r) => r.key, maxLength: 8 }),
    )
    .map(([bookings, kv]) => {
      const model = new V2Model();
      for (const row of bookings)
        model.applyUnit(`b:${row.id}`, opsOf(bookingsModule.transform(change(BOOKINGS, row))));
      for (const row of kv)
        model.applyUnit(`k:${row.key}`, opsOf(customerProfilesModule.transform(change(CUSTOMERS_KV, row))));
      return sourceOf(model);
    });

  it('does not depend on the order of its input arrays', () => {
    fc.assert(
      fc.property(
        sourceArb.chain((s) =>
          fc.record({
            original: fc.constant(s),
            shuffled: fc.record({
              profiles: fc.shuffledSubarray([...s.profiles], { minLength: s.profiles.length }),
              bookings: fc.shuffledSubarray([...s.bookings], { minLength: s.bookings.length }),
              payments: fc.shuffledSubarray([...s.payments], { minLength: s.payments.length }),
            }),
          }),
        ),
        ({ original, shuffled }) => {
          const users = deriveUsers(original);
          expect(deriveUsers(shuffled)).toEqual(users);
          expect(users.map((u) => u.email)).toEqual([...users.map((u) => u.email)].sort());
          for (const u of users) userSchema.parse(u);
        },
      ),
    );
  });

  it('same input → same output', () => {
    fc.assert(
      fc.property(sourceArb, (s) => {
        expect(deriveUsers(structuredClone(s))).toEqual(deriveUsers(s));
      }),
    );
  });
});

function opsOf(result: ReturnType<typeof bookingsModule.transform>) {
  return result.ok ? result.ops : [];
}
