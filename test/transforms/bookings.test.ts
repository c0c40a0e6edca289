import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type JsonRow, type LegacyChange, SchemaDriftRejection } from '../../src/contracts/transform-api.js';
import { bookingsModule } from '../../transforms/bookings.js';
import { paymentId, userId } from '../../transforms/ids.js';
import { legacyBookingSchema } from '../../transforms/legacy-schema.js';
import { ReasonCodes } from '../../transforms/reason-codes.js';
import { invalidLegacyBookingArb, legacyBookingArb } from './arbitraries.js';
import {
  BOOKINGS,
  change,
  deletion,
  expectOps,
  expectRejected,
  expectValidOps,
  legacyBooking,
  ts,
  upserted,
} from './fixtures.js';

const transform = (row: JsonRow, op: 'c' | 'u' | 'r' = 'c') =>
  bookingsModule.transform(change(BOOKINGS, row, op));
const ID = '6f1c2a4e-8b3d-4c5e-9f70-1a2b3c4d5e6f';
const ADA = userId('ada@example.com');

describe('bookings module', () => {
  it('declares its table, schema and topic', () => {
    expect(bookingsModule.name).toBe('bookings');
    expect(bookingsModule.tables).toEqual([BOOKINGS]);
    expect(bookingsModule.legacySchemas[BOOKINGS]).toBe(legacyBookingSchema);
    expect(bookingsModule.topicFor(BOOKINGS)).toBe('bookings');
    expect(() => bookingsModule.topicFor('public.other')).toThrow();
  });

  it('maps a booking to [upsert bookings, upsert payments, recompute users] in foreign-key order', () => {
    const ops = expectOps(transform(legacyBooking()));
    expect(ops).toEqual([
      {
        kind: 'upsert',
        entity: 'bookings',
        key: { id: ID },
        row: {
          id: ID,
          reference: 'BK-1001',
          user_id: ADA,
          status: 'PAID',
          amount: '120.50',
          // email normalized, notes dropped, the rest as received
          contact: {
            email: 'ada@example.com',
            firstName: 'Ada',
            lastName: 'Lovelace',
            phone: '+44 20 7946 0000',
            company: 'Analytical Engines Ltd',
          },
          booked_at: ts(2),
          updated_at: ts(4),
        },
      },
      {
        kind: 'upsert',
        entity: 'payments',
        key: { id: paymentId(ID) },
        row: {
          id: paymentId(ID),
          booking_id: ID,
          user_id: ADA,
          amount: '120.50',
          status: 'succeeded',
          method: 'paypal',
          paid_at: ts(3),
          reference: 'MIGRATED-BK-1001',
        },
      },
      { kind: 'recompute-derived', entity: 'users', keys: ['ada@example.com'] },
    ]);
  });

  it('keeps unknown contact keys and their JSON, and never sees notes', () => {
    const ops = expectOps(
      transform(
        legacyBooking({ contact: { email: 'a@b.co', extra: { nested: [1, null, 'x'] }, notes: 'secret' } }),
      ),
    );
    const contact = upserted(ops, 'bookings')!.contact as JsonRow;
    expect(contact.extra).toEqual({ nested: [1, null, 'x'] });
    expect('notes' in contact).toBe(false);
    expect(JSON.stringify(ops)).not.toContain('secret');
  });

  it('keeps a "__proto__" contact key as data, not as a prototype', () => {
    const contactDetails = JSON.parse('{"email":"a@b.co","__proto__":{"firstName":"Mallory"}}') as JsonRow;
    const ops = expectOps(transform({ ...legacyBooking(), contactDetails }));
    const contact = upserted(ops, 'bookings')!.contact as JsonRow;
    expect(Object.getPrototypeOf(contact)).toBe(Object.prototype);
    expect(contact.firstName).toBeUndefined();
    expect(Object.keys(contact)).toEqual(['email', '__proto__']);
  });

  it('gives case and white-space variants of one email one user', () => {
    const variants = ['ada@example.com', '  ADA@example.COM', 'Ada@Example.Com\t', '\nada@EXAMPLE.com  '];
    const users = variants.map((email, i) => {
      const ops = expectOps(
        transform(legacyBooking({ id: `00000000-0000-0000-0000-00000000000${i}`, contact: { email } })),
      );
      expect(ops.at(-1)).toEqual({ kind: 'recompute-derived', entity: 'users', keys: ['ada@example.com'] });
      expect((upserted(ops, 'bookings')!.contact as JsonRow).email).toBe('ada@example.com');
      return [upserted(ops, 'bookings')!.user_id, upserted(ops, 'payments')!.user_id];
    });
    expect(new Set(users.flat())).toEqual(new Set([ADA]));
  });

  it('on an email change names only the new user (the sink recomputes the old one from lineage)', () => {
    const before = expectOps(transform(legacyBooking()));
    const after = expectOps(transform(legacyBooking({ contact: { email: 'Grace@Navy.mil' } }), 'u'));
    const grace = userId('grace@navy.mil');
    expect(upserted(after, 'bookings')!.user_id).toBe(grace);
    expect(upserted(after, 'payments')!.user_id).toBe(grace);
    expect(after.at(-1)).toEqual({ kind: 'recompute-derived', entity: 'users', keys: ['grace@navy.mil'] });
    expect(JSON.stringify(after)).not.toContain(ADA);
    expect(JSON.stringify(after)).not.toContain('ada@example.com');
    // Same booking and payment ids: the rows move rather than being duplicated.
    expect(upserted(after, 'bookings')!.id).toBe(upserted(before, 'bookings')!.id);
    expect(upserted(after, 'payments')!.id).toBe(upserted(before, 'payments')!.id);
  });

  it.each([
    ['PAID', 'succeeded'],
    ['COMPLETED', 'succeeded'],
    ['ATTENDED', 'succeeded'],
    ['REFUNDED', 'refunded'],
  ])('%s has a %s payment', (status, paymentStatus) => {
    const ops = expectOps(transform(legacyBooking({ status })));
    expect(ops.map((o) => o.kind === 'recompute-derived' || o.entity)).toEqual([
      'bookings',
      'payments',
      true,
    ]);
    expect(upserted(ops, 'payments')!.status).toBe(paymentStatus);
    expect(upserted(ops, 'bookings')!.status).toBe(status);
  });

  it.each(['PENDING', 'CANCELLED'])('%s has no payment op (lineage removes an earlier one)', (status) => {
    const ops = expectOps(transform(legacyBooking({ status })));
    expect(ops.map((o) => o.kind)).toEqual(['upsert', 'recompute-derived']);
    expect(upserted(ops, 'payments')).toBeUndefined();
  });

  it('PAID → REFUNDED → PAID keeps one payment id and flips its status', () => {
    const statuses = ['PAID', 'REFUNDED', 'PAID'].map((status, i) => {
      const payment = upserted(
        expectOps(transform(legacyBooking({ status }), i === 0 ? 'c' : 'u')),
        'payments',
      )!;
      expect(payment.id).toBe(paymentId(ID));
      return payment.status;
    });
    expect(statuses).toEqual(['succeeded', 'refunded', 'succeeded']);
  });

  it('defaults the method to card and paid_at to createdAt', () => {
    const payment = upserted(
      expectOps(transform(legacyBooking({ paymentMethod: null, paymentDate: null }))),
      'payments',
    )!;
    expect(payment.method).toBe('card');
    expect(payment.paid_at).toBe(ts(2));
  });

  it('passes amounts through as exact decimal strings', () => {
    for (const amount of ['0.00', '0.10', '9999999999.99']) {
      const ops = expectOps(transform(legacyBooking({ finalAmount: amount })));
      expect(upserted(ops, 'bookings')!.amount).toBe(amount);
      expect(upserted(ops, 'payments')!.amount).toBe(amount);
    }
  });

  it('maps a delete to no ops', () => {
    expect(bookingsModule.transform(deletion(BOOKINGS, legacyBooking()))).toEqual({ ok: true, ops: [] });
    const keyOnly: LegacyChange = { op: 'd', table: BOOKINGS, key: { id: ID }, before: null, after: null };
    expect(bookingsModule.transform(keyOnly)).toEqual({ ok: true, ops: [] });
  });

  describe('rejects invalid rows with a reason code', () => {
    it.each([
      ['missing email', { email: undefined }],
      ['null email', { email: null }],
      ['blank email', { email: '   ' }],
      ['no @', { email: 'ada.example.com' }],
      ['no dot in the domain', { email: 'ada@example' }],
      ['a number', { email: 42 }],
    ])('%s → BOOKING_INVALID_EMAIL', (_, contact) => {
      const row = legacyBooking({ contact: contact as JsonRow });
      if (contact.email === undefined) delete (row.contactDetails as JsonRow).email;
      expectRejected(transform(row), ReasonCodes.BOOKING_INVALID_EMAIL);
    });

    it.each(['paid', 'LOST', '', 'PAID '])('status %j → BOOKING_UNKNOWN_STATUS', (status) => {
      expectRejected(transform(legacyBooking({ status })), ReasonCodes.BOOKING_UNKNOWN_STATUS);
    });

    it.each(['-0.01', '-120.50'])('amount %s → BOOKING_NEGATIVE_AMOUNT', (finalAmount) => {
      expectRejected(transform(legacyBooking({ finalAmount })), ReasonCodes.BOOKING_NEGATIVE_AMOUNT);
    });

    it.each(['', '  '])('reference %j → BOOKING_EMPTY_REFERENCE', (bookingReference) => {
      expectRejected(transform(legacyBooking({ bookingReference })), ReasonCodes.BOOKING_EMPTY_REFERENCE);
    });

    it('accepts a zero amount', () => {
      expectOps(transform(legacyBooking({ finalAmount: '0.00' })));
    });

    it.each([
      ['a timestamp infinity', { createdAt: 'infinity' }],
      ['a numeric NaN', { finalAmount: 'NaN' }],
      ['contactDetails not an object', { contactDetails: ['a@b.co'] }],
      ['firstName not a string', { contactDetails: { email: 'a@b.co', firstName: 7 } }],
      ['an id that is not a uuid', { id: '42' }],
      ['a null in a NOT NULL column', { status: null }],
    ])('%s → LEGACY_ROW_INVALID', (_, overrides) => {
      const row: JsonRow = { ...legacyBooking() };
      for (const [k, v] of Object.entries(overrides)) row[k] = v as JsonRow[string];
      expectRejected(transform(row), ReasonCodes.LEGACY_ROW_INVALID);
    });

    it.each([
      [
        'a dropped nullable column',
        { paymentMethod: undefined },
        ['paymentMethod'],
        'column "paymentMethod" is missing',
      ],
      [
        'a renamed column',
        { bookingReference: undefined, ref: 'B-1' },
        ['bookingReference'],
        '"bookingReference" is missing',
      ],
      [
        'a numeric retyped to double precision',
        { finalAmount: 12.5 },
        ['finalAmount'],
        '"finalAmount" holds number',
      ],
    ])('%s → SCHEMA_DRIFT naming the column', (_, overrides, columns, message) => {
      const row: JsonRow = { ...legacyBooking() };
      for (const [k, v] of Object.entries(overrides)) {
        if (v === undefined) delete row[k];
        else row[k] = v as JsonRow[string];
      }
      const result = transform(row);
      expectRejected(result, ReasonCodes.SCHEMA_DRIFT);
      expect(!result.ok && result.rejection).toBeInstanceOf(SchemaDriftRejection);
      expect(!result.ok && (result.rejection as SchemaDriftRejection).columns).toEqual(columns);
      expect(!result.ok && result.rejection.message).toContain(message);
    });

    it('an added column and a widened numeric flow on', () => {
      expectOps(transform(legacyBooking({ addedLater: 'x', finalAmount: '12.5000' } as never)));
    });

    it('does not put the email into the message', () => {
      const result = transform(legacyBooking({ contact: { email: 'secret.person@nowhere' } }));
      expectRejected(result, ReasonCodes.BOOKING_INVALID_EMAIL);
      expect(!result.ok && result.rejection.message).not.toContain('secret');
    });

    it('rejects events it cannot map', () => {
      const truncate: LegacyChange = { op: 't', table: BOOKINGS, key: {}, before: null, after: null };
      expectRejected(bookingsModule.transform(truncate), ReasonCodes.TRUNCATE_UNSUPPORTED);
      const noAfter: LegacyChange = { op: 'u', table: BOOKINGS, key: { id: ID }, before: null, after: null };
      expectRejected(bookingsModule.transform(noAfter), ReasonCodes.MISSING_ROW);
      expectRejected(
        bookingsModule.transform(change('public.customers_kv', legacyBooking())),
        ReasonCodes.UNKNOWN_TABLE,
      );
    });
  });

  describe('properties', () => {
    it('same input → same output, valid V2 rows, input untouched', () => {
      fc.assert(
        fc.property(fc.oneof(legacyBookingArb(), invalidLegacyBookingArb()), (row) => {
          const copy = structuredClone(row);
          const first = transform(row);
          const second = transform(structuredClone(row));
          expect(second).toEqual(first);
          expect(row).toEqual(copy);
          if (first.ok) expectValidOps(first.ops);
        }),
      );
    });

    it('every valid booking maps to bookings, maybe payments, then a recompute of its normalized email', () => {
      fc.assert(
        fc.property(legacyBookingArb(), (row) => {
          const ops = expectOps(transform(row));
          const email = ((row.contactDetails as JsonRow).email as string).trim().toLowerCase();
          expect(ops[0]!.kind === 'upsert' && ops[0]!.entity).toBe('bookings');
          expect(ops.at(-1)).toEqual({ kind: 'recompute-derived', entity: 'users', keys: [email] });
          expect(ops.length).toBe(['PENDING', 'CANCELLED'].includes(row.status as string) ? 2 : 3);
        }),
      );
    });
  });
});
