import fc from 'fast-check';
import type { JsonRow, LegacyChange } from '../../src/contracts/transform-api.js';
import { BOOKING_STATUSES } from '../../transforms/v2-schema.js';
import { AI_FBT_BUNDLES, BOOKINGS, BUNDLE_DISCOUNT_ID, CUSTOMERS_KV, change, deletion } from './fixtures.js';

/** fast-check generators of legacy rows in the source's JSON forms, valid unless said otherwise. */

const MS_2020 = Date.UTC(2020, 0, 1);
const MS_2026 = Date.UTC(2026, 0, 1);

/** A source-style timestamptz: UTC, six fractional digits. Few distinct values, so ties happen. */
export const timestampArb: fc.Arbitrary<string> = fc
  .tuple(fc.integer({ min: 0, max: 40 }), fc.constantFrom(0, 1, 999_999))
  .map(([day, micros]) => {
    const iso = new Date(MS_2020 + day * 86_400_000 + (day % 7) * 3_600_000).toISOString();
    return `${iso.slice(0, 19)}.${String(micros).padStart(6, '0')}Z`;
  });

export const anyTimestampArb: fc.Arbitrary<string> = fc
  .tuple(fc.integer({ min: MS_2020, max: MS_2026 }), fc.integer({ min: 0, max: 999 }))
  .map(([ms, micros]) => `${new Date(ms).toISOString().slice(0, 23)}${String(micros).padStart(3, '0')}Z`);

/** numeric(12,2) ≥ 0 as the source sends it: always two fractional digits. */
export const amountArb: fc.Arbitrary<string> = fc
  .oneof(fc.bigInt({ min: 0n, max: 10_000n }), fc.bigInt({ min: 0n, max: 10n ** 12n - 1n }))
  .map((cents) => {
    const s = cents.toString().padStart(3, '0');
    return `${s.slice(0, -2)}.${s.slice(-2)}`;
  });

const EMAILS = ['ada@example.com', 'bob@example.org', 'carol.k@shop.io', 'dave+x@mail.co.uk'] as const;

/** One of a few emails, with random case and surrounding white space: variants share a user. */
export const emailVariantArb: fc.Arbitrary<string> = fc
  .tuple(
    fc.constantFrom(...EMAILS),
    fc.array(fc.boolean(), { minLength: 20, maxLength: 20 }),
    fc.constantFrom('', ' ', '\t', '  '),
    fc.constantFrom('', ' ', '\n'),
  )
  .map(([email, upper, before, after]) => {
    const cased = [...email].map((c, i) => (upper[i] ? c.toUpperCase() : c)).join('');
    return `${before}${cased}${after}`;
  });

const nameArb = fc.option(fc.constantFrom('', 'Ada', 'Bob', 'Grace Hopper', 'Zoë'), { nil: null });

export const legacyBookingArb = (id: fc.Arbitrary<string> = fc.uuid()): fc.Arbitrary<JsonRow> =>
  fc
    .record({
      id,
      contactDetails: fc.record(
        {
          email: emailVariantArb,
          firstName: nameArb,
          lastName: nameArb,
          phone: fc.option(fc.constantFrom('', '+1 555 0100', '+44 20 7946 0000'), { nil: null }),
          company: fc.option(fc.constantFrom('', 'Acme', 'Initech'), { nil: null }),
          notes: fc.string({ maxLength: 50 }),
        },
        { requiredKeys: ['email'] },
      ),
      status: fc.constantFrom(...BOOKING_STATUSES),
      finalAmount: amountArb,
      paymentDate: fc.option(timestampArb, { nil: null }),
      paymentMethod: fc.option(fc.constantFrom('card', 'paypal', 'bank'), { nil: null }),
      createdAt: timestampArb,
      updatedAt: timestampArb,
    })
    // A unique reference per id, so independent bookings never collide on the UNIQUE column.
    .map((row) => ({ ...row, bookingReference: `BK-${row.id}` }));

/** A customers_kv row: mostly 'customer_<n>' profiles (customerId n), sometimes an index key. */
export const legacyKvArb = (n: fc.Arbitrary<number> = fc.nat({ max: 50 })): fc.Arbitrary<JsonRow> =>
  fc
    .tuple(
      n,
      fc.boolean(),
      emailVariantArb,
      fc.option(fc.constantFrom('', 'Ada', 'Ada Lovelace', '  Grace   Brewster Hopper '), { nil: null }),
      fc.option(fc.constantFrom('', 'Acme'), { nil: null }),
      fc.option(fc.constantFrom('free', 'pro'), { nil: null }),
      fc.option(timestampArb, { nil: null }),
      timestampArb,
    )
    .map(([id, isIndex, email, name, companyName, plan, createdAt, updatedAt]) =>
      isIndex && id % 5 === 0
        ? { key: `email_to_customer_${id}`, value: String(id), updated_at: updatedAt }
        : {
            key: `customer_${id}`,
            value: { customerId: String(id), email, name, companyName, plan, status: 'active', createdAt },
            updated_at: updatedAt,
          },
    );

const productIdArb = fc.constantFrom('gid://shopify/Product/1', 'gid://shopify/Product/2', 'p-3');
const nonBlank = (s: string) => s.trim() !== '';

export const legacyManualBundleArb = (
  id: fc.Arbitrary<number> = fc.nat({ max: 1000 }),
): fc.Arbitrary<JsonRow> =>
  fc.record({
    id,
    bundleId: fc.string({ minLength: 1, maxLength: 20 }).filter(nonBlank),
    bundleName: fc.oneof(
      fc.string({ minLength: 1, maxLength: 20 }).filter(nonBlank),
      fc.constantFrom('Summer Sale', '--Kit & Co--'),
    ),
    discountId: fc.option(fc.constantFrom('gid://shopify/DiscountAutomaticNode/1', 'd-2'), { nil: null }),
    shop: fc.constantFrom('a.myshopify.com', 'b.myshopify.com'),
    products: fc.array(
      fc.record(
        {
          productId: productIdArb,
          variantId: fc.option(fc.constantFrom('v-1', 'v-2'), { nil: null }),
          quantity: fc.option(fc.integer({ min: 1, max: 2_147_483_647 }), { nil: null }),
        },
        { requiredKeys: ['productId'] },
      ),
      { maxLength: 5 },
    ),
    discountPercent: fc.integer({ min: 0, max: 10_000 }).map((n) => (n / 100).toFixed(2)),
    createdAt: anyTimestampArb,
  });

export const legacyAiBundleArb = (id: fc.Arbitrary<number> = fc.nat({ max: 1000 })): fc.Arbitrary<JsonRow> =>
  fc.record({
    id,
    shop: fc.constantFrom('a.myshopify.com', 'b.myshopify.com'),
    productId: productIdArb,
    bundledProductIds: fc.array(productIdArb, { maxLength: 4 }),
    bundleMetaobjectId: fc.option(fc.string({ maxLength: 10 }), { nil: null }),
    discountId: fc.option(fc.constantFrom('d-1', 'd-2'), { nil: null }),
    confidenceScore: fc.double({ noNaN: true, noDefaultInfinity: true }),
    support: fc.double({ min: 0, max: 1, noNaN: true }),
    lift: fc.double({ min: 0, max: 10, noNaN: true }),
    isActive: fc.boolean(),
    createdAt: anyTimestampArb,
  });

/** Rows that break one rule each (or the column types), to show rejections are deterministic too. */
export const invalidLegacyBookingArb = (id: fc.Arbitrary<string> = fc.uuid()): fc.Arbitrary<JsonRow> =>
  fc.tuple(legacyBookingArb(id), fc.integer({ min: 0, max: 4 })).map(([row, which]) => {
    const contact = row.contactDetails as JsonRow;
    switch (which) {
      case 0:
        return { ...row, contactDetails: { ...contact, email: 'not-an-email' } };
      case 1:
        return { ...row, status: 'LOST' };
      case 2:
        return { ...row, finalAmount: '-1.00' };
      case 3:
        return { ...row, createdAt: 'infinity' };
      default:
        return { ...row, contactDetails: { ...contact, email: null } };
    }
  });

/** Merges lists keeping each list's order; `choices` pick which list goes next. */
export function interleave<T>(lists: readonly (readonly T[])[], choices: readonly number[]): T[] {
  const queues = lists.map((l) => [...l]).filter((q) => q.length > 0);
  const out: T[] = [];
  for (let i = 0; queues.length > 0; i++) {
    const q = (choices[i] ?? 0) % queues.length;
    out.push(queues[q]!.shift()!);
    if (queues[q]!.length === 0) queues.splice(q, 1);
  }
  return out;
}

const history = <T>(version: fc.Arbitrary<T>) => fc.array(version, { minLength: 1, maxLength: 3 });

/**
 * Per-key histories (creates, updates, invalid versions, deletes) of a few keys of every legacy table, shared
 * emails included; with the choices that interleave them and the final rows in a random order. What the sink must
 * guarantee: any interleaving that keeps each key's order ends where the final rows alone lead.
 */
export const keyHistoriesArb: fc.Arbitrary<[LegacyChange[][], number[], LegacyChange[]]> = fc
  .tuple(
    fc.uniqueArray(fc.uuid(), { maxLength: 5 }),
    fc.uniqueArray(fc.nat({ max: 20 }), { maxLength: 3 }),
    fc.uniqueArray(fc.nat({ max: 100 }), { maxLength: 3 }),
    fc.uniqueArray(fc.nat({ max: 100 }), { maxLength: 3 }),
  )
  .chain(([bookingIds, customerIds, manualIds, aiIds]) =>
    fc.tuple(
      ...bookingIds.map((id) =>
        history(
          fc.oneof(
            {
              weight: 3,
              arbitrary: legacyBookingArb(fc.constant(id)).map((r) => change(BOOKINGS, r, 'u')),
            },
            invalidLegacyBookingArb(fc.constant(id)).map((r) => change(BOOKINGS, r, 'u')),
            fc.constant(deletion(BOOKINGS, { id })),
          ),
        ),
      ),
      ...customerIds.map((n) =>
        history(
          fc.oneof(
            // The same key throughout: an index-shaped value under it is an invalid profile.
            {
              weight: 3,
              arbitrary: legacyKvArb(fc.constant(n)).map((r) =>
                change(CUSTOMERS_KV, { ...r, key: `customer_${n}` }, 'u'),
              ),
            },
            fc.constant(deletion(CUSTOMERS_KV, { key: `customer_${n}` })),
          ),
        ),
      ),
      ...manualIds.map((id) =>
        history(
          fc.oneof(
            {
              weight: 3,
              arbitrary: legacyManualBundleArb(fc.constant(id)).map((r) =>
                change(BUNDLE_DISCOUNT_ID, r, 'u'),
              ),
            },
            legacyManualBundleArb(fc.constant(id)).map((r) =>
              change(BUNDLE_DISCOUNT_ID, { ...r, products: [{ productId: 'p', quantity: 0 }] }, 'u'),
            ),
            fc.constant(deletion(BUNDLE_DISCOUNT_ID, { id })),
          ),
        ),
      ),
      ...aiIds.map((id) =>
        history(
          fc.oneof(
            {
              weight: 3,
              arbitrary: legacyAiBundleArb(fc.constant(id)).map((r) => change(AI_FBT_BUNDLES, r, 'u')),
            },
            legacyAiBundleArb(fc.constant(id)).map((r) =>
              change(AI_FBT_BUNDLES, { ...r, bundledProductIds: [null] }, 'u'),
            ),
            fc.constant(deletion(AI_FBT_BUNDLES, { id })),
          ),
        ),
      ),
    ),
  )
  .chain((histories) => {
    const total = histories.reduce((n, h) => n + h.length, 0);
    return fc.tuple(
      fc.constant(histories as LegacyChange[][]),
      fc.array(fc.nat(), { minLength: total, maxLength: total }),
      // The order the final rows are applied in for the expected state.
      fc.shuffledSubarray(
        histories.map((h) => h.at(-1)!),
        { minLength: histories.length },
      ),
    );
  });
