import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dlqTopic } from '../../../src/contracts/topics.js';
import { userId } from '../../../transforms/ids.js';
import { readTopics } from '../../helpers/kafka-read.js';
import {
  compareTarget,
  freshPipeline,
  startPipeline,
  summary,
  waitForConvergence,
} from '../../helpers/pipeline-harness.js';
import { dropSlot, testKafka, withClient } from '../../helpers/resources.js';
import { isClean } from '../../helpers/v2-oracle.js';

const kafka = testKafka();
let env: Awaited<ReturnType<typeof freshPipeline>>;
let run: ReturnType<typeof startPipeline>;

const contact = (email: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    email,
    firstName: 'Ada',
    lastName: 'Lovelace',
    phone: '+44 1',
    company: 'Engines',
    ...extra,
  });

async function legacy(sql: string, params: unknown[] = []) {
  await withClient(env.legacyUrl, (c) => c.query(sql, params));
}

async function converged() {
  const diff = await waitForConvergence(env.legacyUrl, env.targetUrl);
  expect(isClean(diff), summary(diff)).toBe(true);
}

async function target<T>(sql: string, params: unknown[] = []): Promise<T[]> {
  return withClient(env.targetUrl, async (c) => (await c.query(sql, params)).rows as T[]);
}

beforeAll(async () => {
  env = await freshPipeline('e2e');
  // Rows present before the pipeline starts arrive through the initial snapshot.
  await legacy(
    `INSERT INTO bookings (id, "bookingReference", "contactDetails", status, "finalAmount", "createdAt", "updatedAt")
     VALUES ('00000000-0000-4000-8000-000000000001', 'REF-1', $1, 'PAID', 10.10, '2024-01-01T10:00:00Z', '2024-01-01T10:00:00Z')`,
    [contact('Shared@Example.com ')],
  );
  run = startPipeline(env.config);
});

afterAll(async () => {
  await run?.stop();
  if (env) await dropSlot(env.legacyUrl, env.config.source.slot);
});

describe('end to end: legacy writes → source → Kafka → sink (transforms in process)', () => {
  it('snapshot rows and email case/space variants shared by several bookings make one user with exact totals', async () => {
    await legacy(
      `INSERT INTO bookings (id, "bookingReference", "contactDetails", status, "finalAmount", "createdAt", "updatedAt") VALUES
       ('00000000-0000-4000-8000-000000000002', 'REF-2', $1, 'COMPLETED', 20.20, '2024-01-02T10:00:00Z', '2024-01-02T10:00:00Z'),
       ('00000000-0000-4000-8000-000000000003', 'REF-3', $2, 'CANCELLED', 5.00, '2024-01-03T10:00:00Z', '2024-01-03T10:00:00Z')`,
      [contact('  shared@example.COM'), contact('SHARED@example.com')],
    );
    await converged();
    const [user] = await target<{ total_bookings: number; total_spent: string }>(
      'SELECT total_bookings, total_spent FROM users WHERE id = $1',
      [userId('shared@example.com')],
    );
    expect(user).toEqual({ total_bookings: 2, total_spent: '30.30' });
  });

  it('an email change moves the booking and its payment to the other user; the old user is recomputed', async () => {
    await legacy(
      `UPDATE bookings SET "contactDetails" = $1 WHERE id = '00000000-0000-4000-8000-000000000002'`,
      [contact('other@example.com')],
    );
    await converged();
    const payments = await target<{ user_id: string }>(
      "SELECT user_id FROM payments WHERE booking_id = '00000000-0000-4000-8000-000000000002'",
    );
    expect(payments).toEqual([{ user_id: userId('other@example.com') }]);
    const [shared] = await target<{ total_spent: string }>('SELECT total_spent FROM users WHERE id = $1', [
      userId('shared@example.com'),
    ]);
    expect(shared?.total_spent).toBe('10.10');
  });

  it('PAID → REFUNDED → PAID, and a deleted booking', async () => {
    for (const status of ['REFUNDED', 'PAID', 'REFUNDED', 'PAID']) {
      await legacy(`UPDATE bookings SET status = $1 WHERE id = '00000000-0000-4000-8000-000000000001'`, [
        status,
      ]);
    }
    await legacy(`DELETE FROM bookings WHERE id = '00000000-0000-4000-8000-000000000003'`);
    await converged();
    const rows = await target<{ status: string }>(
      "SELECT status FROM payments WHERE booking_id = '00000000-0000-4000-8000-000000000001'",
    );
    expect(rows).toEqual([{ status: 'succeeded' }]);
  });

  it('a profile added after bookings and then deleted; two profiles with one email', async () => {
    await legacy(
      `INSERT INTO customers_kv (key, value) VALUES
       ('customer_b2', $1), ('customer_a1', $2), ('email_to_customer_x', '"a1"')`,
      [
        JSON.stringify({
          customerId: 'b2',
          email: 'Shared@example.com',
          name: 'Zed Zulu',
          plan: 'pro',
          createdAt: '2023-05-01T00:00:00Z',
        }),
        JSON.stringify({
          customerId: 'a1',
          email: 'shared@example.com',
          name: 'Amy',
          plan: 'free',
          createdAt: '2023-06-01T00:00:00Z',
        }),
      ],
    );
    await converged();
    const [withProfiles] = await target<{
      customer_id: string;
      first_name: string;
      last_name: string | null;
    }>('SELECT customer_id, first_name, last_name FROM users WHERE id = $1', [userId('shared@example.com')]);
    // The smallest customer_id wins; a one-word name has no last name, so the booking's is used.
    expect(withProfiles).toEqual({ customer_id: 'a1', first_name: 'Amy', last_name: 'Lovelace' });
    await legacy("DELETE FROM customers_kv WHERE key IN ('customer_a1', 'customer_b2')");
    await converged();
  });

  it('bundles: products reordered, empty bundledProductIds, a deleted bundle', async () => {
    await legacy(
      `INSERT INTO bundle_discount_id (id, "bundleId", "bundleName", "discountId", shop, products, "discountPercent")
       VALUES (1, 'gid://meta/1', 'Summer Set!', 'disc-1', 'shop-a', $1, 12.50)`,
      [
        JSON.stringify([
          { productId: 'p1', quantity: 2 },
          { productId: 'p2', variantId: 'v2' },
          { productId: 'p3' },
        ]),
      ],
    );
    await legacy(
      `INSERT INTO ai_fbt_bundles (id, shop, "productId", "bundledProductIds", "confidenceScore", support, lift, "isActive", "discountId")
       VALUES (7, 'shop-b', 'p9', '{}', 0.9, 0.1, 1.5, false, 'disc-7'), (8, 'shop-b', 'p8', '{p1,p2}', 0.5, 0.2, 1.1, true, null)`,
    );
    await converged();
    await legacy(`UPDATE bundle_discount_id SET products = $1 WHERE id = 1`, [
      JSON.stringify([{ productId: 'p3' }, { productId: 'p1', quantity: 2 }]),
    ]);
    await legacy('DELETE FROM ai_fbt_bundles WHERE id = 8');
    await converged();
    const components = await target<{ position: number; shopify_product_id: string }>(
      'SELECT position, shopify_product_id FROM bundle_components c JOIN bundles b ON b.id = c.bundle_id WHERE b.shop = $1 ORDER BY position',
      ['shop-a'],
    );
    expect(components).toEqual([
      { position: 0, shopify_product_id: 'p3' },
      { position: 1, shopify_product_id: 'p1' },
    ]);
  });

  it('every invalid-row class is absent in V2 and dead-lettered with its reason while valid rows flow', async () => {
    await legacy(
      `INSERT INTO bookings (id, "bookingReference", "contactDetails", status, "finalAmount") VALUES
       ('00000000-0000-4000-8000-000000000010', 'BAD-EMAIL', $1, 'PAID', 1),
       ('00000000-0000-4000-8000-000000000011', 'BAD-STATUS', $2, 'LOST', 1),
       ('00000000-0000-4000-8000-000000000012', 'NEGATIVE', $2, 'PAID', -1),
       ('00000000-0000-4000-8000-000000000013', 'GOOD', $2, 'PENDING', 3)`,
      [contact('not-an-email'), contact('good@example.com')],
    );
    await legacy(
      `INSERT INTO customers_kv (key, value) VALUES
       ('customer_bad_email', '{"customerId":"x1","email":"nope","name":"A B"}'),
       ('customer_no_id', '{"email":"noid@example.com","name":"A B"}'),
       ('customer_ok', '{"customerId":"ok1","email":"ok@example.com","name":"O K"}')`,
    );
    await legacy(
      `INSERT INTO bundle_discount_id (id, "bundleId", "bundleName", shop, products) VALUES
       (101, 'm101', 'Bad products', 'shop-z', '[{"productId": 42}]'),
       (102, 'm102', 'Bad quantity', 'shop-z', '[{"productId": "p1", "quantity": 0}]'),
       (103, 'm103', 'Not a list', 'shop-z', '{"productId": "p1"}'),
       (104, 'm104', 'Fine', 'shop-z', '[{"productId": "p1", "quantity": 2}]')`,
    );
    await converged();
    const expected = {
      'bookings:BAD-EMAIL': 'BOOKING_INVALID_EMAIL',
      'bookings:BAD-STATUS': 'BOOKING_UNKNOWN_STATUS',
      'bookings:NEGATIVE': 'BOOKING_NEGATIVE_AMOUNT',
      'customers_kv:customer_bad_email': 'PROFILE_INVALID_EMAIL',
      'customers_kv:customer_no_id': 'PROFILE_MISSING_CUSTOMER_ID',
      'bundle_discount_id:101': 'BUNDLE_INVALID_PRODUCTS',
      'bundle_discount_id:102': 'BUNDLE_INVALID_QUANTITY',
      'bundle_discount_id:103': 'BUNDLE_INVALID_PRODUCTS',
    };
    const dead = await readTopics(
      kafka,
      [dlqTopic(env.config.kafka.topicPrefix)],
      (m) => m.length >= 8,
      30_000,
      // Then read on for a second: a ninth letter (a duplicate, another row) would show.
      1_000,
    );
    const reasons = Object.fromEntries(
      dead.map((m) => {
        const e = JSON.parse(m.value!) as { after: Record<string, unknown>; source: { table: string } };
        const id = e.after.bookingReference ?? e.after.key ?? e.after.id;
        return [`${e.source.table}:${id}`, m.headers['error.code']];
      }),
    );
    // Exactly these eight letters, one per invalid row: no other row dead-lettered, none twice.
    expect(dead.length, JSON.stringify(reasons)).toBe(8);
    expect(reasons).toEqual(expected);
    expect(dead.every((m) => m.headers.stage === 'sink' && m.headers['error.message'])).toBe(true);
    expect(await target('SELECT 1 FROM bookings WHERE reference = $1', ['GOOD'])).toHaveLength(1);
    expect(await target('SELECT 1 FROM customer_profiles WHERE customer_id = $1', ['ok1'])).toHaveLength(1);
    expect(await target("SELECT 1 FROM bundles WHERE name = 'Fine'")).toHaveLength(1);
    expect(await target("SELECT 1 FROM bundles WHERE shop = 'shop-z' AND name <> 'Fine'")).toHaveLength(0);
  });

  it('a row the target rejects (a CHECK constraint) goes to the DLQ with the database error; the rest is applied', async () => {
    await withClient(env.targetUrl, (c) =>
      c.query('ALTER TABLE bookings ADD CONSTRAINT amount_cap CHECK (amount < 100000)'),
    );
    await legacy(
      `INSERT INTO bookings (id, "bookingReference", "contactDetails", status, "finalAmount") VALUES
       ('00000000-0000-4000-8000-000000000020', 'HUGE', $1, 'PENDING', 200000),
       ('00000000-0000-4000-8000-000000000021', 'FINE', $1, 'PENDING', 5)`,
      [contact('cap@example.com')],
    );
    const dead = await readTopics(kafka, [dlqTopic(env.config.kafka.topicPrefix)], (m) =>
      m.some((x) => x.value?.includes('"HUGE"') || x.value?.includes('HUGE')),
    );
    const huge = dead.find((m) => m.value?.includes('HUGE'));
    expect(huge?.headers).toMatchObject({ 'error.code': '23514', stage: 'sink' });
    expect(huge?.headers['error.message']).toMatch(/amount_cap/);
    for (let i = 0; i < 100; i++) {
      if ((await target('SELECT 1 FROM bookings WHERE reference = $1', ['FINE'])).length === 1) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(await target('SELECT 1 FROM bookings WHERE reference = $1', ['FINE'])).toHaveLength(1);
    expect(await target('SELECT 1 FROM bookings WHERE reference = $1', ['HUGE'])).toHaveLength(0);
    const diff = await compareTarget(env.legacyUrl, env.targetUrl);
    expect(diff.find((d) => d.entity === 'bookings')?.missing).toHaveLength(1);
    await withClient(env.targetUrl, (c) => c.query('ALTER TABLE bookings DROP CONSTRAINT amount_cap'));
  });
});
