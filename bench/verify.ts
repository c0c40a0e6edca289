import pg from 'pg';
import { initTarget } from '../src/cli/target-command.js';
import type { V2Entity } from '../src/contracts/transform-api.js';
import { createLogger } from '../src/core/logger.js';
import { TEXT_FORMAT_OPTIONS } from '../src/core/pg-text-types.js';
import { quoteIdent } from '../src/core/sql.js';
import { ExpectedState } from '../src/ops/verify/expected-state.js';
import { LegacyReader } from '../src/ops/verify/legacy-reader.js';
import { readEntityShapes, runVerify } from '../src/ops/verify/verify.js';
import { stackSettings, stackUp } from '../src/stack/stack.js';
import { initLegacy } from '../src/workload/init-legacy.js';
import { transformModules } from '../transforms/index.js';
import { fmt, numberArg, report, stats } from './bench-report.js';

/**
 * `npm run bench:verify [-- --bookings N --runs R]`: rows/s of `replicator verify` on a clean target. The legacy
 * database is seeded with INSERT … SELECT (N bookings over N/10 customers, half of them with a profile, N/50 bundles
 * of each kind, ~1% invalid rows); the target is filled by the reference batch migration, so verify compares every
 * row and finds them equal (the common case: every chunk hash matches). Then R verify runs, one after the other.
 */
const BOOKINGS = numberArg('bookings', 200_000);
const RUNS = numberArg('runs', 5);

const settings = stackSettings();
await stackUp(settings, () => {});
const admin = new pg.Client({ connectionString: settings.pgUrl });
await admin.connect();
const pgVersion = (await admin.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]!
  .v;
const dbUrl = (name: string) => {
  const u = new URL(settings.pgUrl);
  u.pathname = `/${name}`;
  return u.toString();
};

const tag = `bench_verify_${process.pid}`;
const legacyDb = `${tag}_legacy`;
const targetDb = `${tag}_v2`;
await admin.query(`CREATE DATABASE ${quoteIdent(legacyDb)}`);
await admin.query(`CREATE DATABASE ${quoteIdent(targetDb)}`);
const legacyUrl = dbUrl(legacyDb);
const targetUrl = dbUrl(targetDb);

async function seedLegacy() {
  await initLegacy(legacyUrl);
  const c = new pg.Client({ connectionString: legacyUrl });
  await c.connect();
  try {
    const customers = Math.max(100, Math.floor(BOOKINGS / 10));
    await c.query(
      `INSERT INTO customers_kv (key, value, updated_at)
       SELECT 'customer_c' || g, jsonb_build_object('customerId', 'c' || g, 'email', 'customer' || g || '@example.com',
              'name', (ARRAY['Ada Lovelace', 'Grace  Hopper', 'Alan'])[1 + g % 3], 'companyName', CASE WHEN g % 2 = 0 THEN 'Knuth Inc' END,
              'plan', (ARRAY['free', 'pro', 'enterprise'])[1 + g % 3], 'status', 'active',
              'createdAt', to_char(timestamptz '2023-01-01' + g * interval '7 minutes', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')),
              timestamptz '2024-06-01'
         FROM generate_series(0, $1::int - 1, 2) g`,
      [customers],
    );
    await c.query(
      `INSERT INTO customers_kv (key, value) SELECT 'email_to_customer_' || md5(g::text), to_jsonb('c' || g)
         FROM generate_series(0, $1::int - 1, 10) g`,
      [customers],
    );
    await c.query(
      `INSERT INTO bookings (id, "bookingReference", "contactDetails", status, "finalAmount", "paymentDate",
                             "paymentMethod", "createdAt", "updatedAt")
       SELECT md5('booking' || g)::uuid, 'BK-' || g,
              jsonb_build_object('email', CASE WHEN g % 100 = 0 THEN 'not-an-email'
                                               WHEN g % 4 = 1 THEN upper('customer' || (g % $2) || '@example.com')
                                               ELSE ' customer' || (g % $2) || '@Example.com ' END,
                                 'firstName', (ARRAY['Ada', 'Grace', 'Alan', 'Edsger'])[1 + g % 4],
                                 'lastName', (ARRAY['Lovelace', 'Hopper', 'Turing'])[1 + g % 3],
                                 'phone', '+1-555-' || lpad((g % 10000)::text, 4, '0'),
                                 'company', CASE WHEN g % 2 = 0 THEN 'Liskov Ltd' ELSE '' END),
              (ARRAY['PENDING', 'PAID', 'COMPLETED', 'ATTENDED', 'CANCELLED', 'REFUNDED'])[1 + g % 6],
              ((g * 37) % 50000) / 100.0,
              CASE WHEN g % 3 = 0 THEN timestamptz '2024-01-01' + g * interval '1 minute' END,
              CASE WHEN g % 5 = 0 THEN NULL ELSE (ARRAY['card', 'paypal', 'bank'])[1 + g % 3] END,
              timestamptz '2024-01-01' + g * interval '1 minute', timestamptz '2024-02-01' + g * interval '1 minute'
         FROM generate_series(1, $1::int) g`,
      [BOOKINGS, customers],
    );
    const bundles = Math.max(5, Math.floor(BOOKINGS / 50));
    await c.query(
      `INSERT INTO bundle_discount_id (id, "bundleId", "bundleName", "discountId", shop, products, "discountPercent")
       SELECT g, 'gid://shopify/Metaobject/' || g, 'Summer Set #' || g,
              CASE WHEN g % 3 > 0 THEN 'gid://shopify/DiscountNode/' || g END, 'shop-' || (g % 3),
              jsonb_build_array(jsonb_build_object('productId', 'gid://shopify/Product/' || g, 'quantity', 1 + g % 3),
                                jsonb_build_object('productId', 'gid://shopify/Product/' || (g + 1),
                                                   'variantId', 'gid://shopify/ProductVariant/' || g)),
              (g % 5000) / 100.0
         FROM generate_series(1, $1::int) g`,
      [bundles],
    );
    await c.query(
      `INSERT INTO ai_fbt_bundles (id, shop, "productId", "bundledProductIds", "bundleMetaobjectId", "discountId",
                                   "confidenceScore", support, lift, "isActive")
       SELECT g, 'shop-' || (g % 3), 'p' || g, ARRAY['p' || (g + 1), 'p' || (g + 2)],
              CASE WHEN g % 2 = 0 THEN 'gid://shopify/Metaobject/ai-' || g END,
              CASE WHEN g % 3 = 0 THEN 'gid://shopify/DiscountNode/ai-' || g END,
              (g % 1000) / 1000.0, (g % 997) / 1000.0, 1 + (g % 991) / 1000.0, g % 5 > 0
         FROM generate_series(1, $1::int) g`,
      [bundles],
    );
    await c.query('ANALYZE');
  } finally {
    await c.end();
  }
}

/** The reference batch migration, written into the target: what a converged pipeline leaves. */
async function fillTarget() {
  await initTarget(targetUrl);
  const legacy = new pg.Client({ connectionString: legacyUrl, options: TEXT_FORMAT_OPTIONS });
  await legacy.connect();
  const target = new pg.Client({ connectionString: targetUrl });
  await target.connect();
  try {
    const state = new ExpectedState(transformModules, await readEntityShapes(target));
    await legacy.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const reader = new LegacyReader(legacy);
    for (const t of await reader.describe(transformModules.flatMap((m) => m.tables))) {
      for await (const batch of reader.stream(t)) for (const r of batch) state.add(t.name, r.key, r.row);
    }
    await legacy.query('COMMIT');
    state.deriveUsers();
    for (const entity of [
      'users',
      'customer_profiles',
      'bookings',
      'payments',
      'bundles',
      'bundle_components',
      'bundle_discounts',
    ] as V2Entity[]) {
      const rows = [...(state.rows.get(entity)?.values() ?? [])].map((r) => r.row);
      for (let i = 0; i < rows.length; i += 5_000) {
        await target.query(
          `INSERT INTO ${quoteIdent(entity)} SELECT * FROM json_populate_recordset(NULL::${quoteIdent(entity)}, $1::json)`,
          [JSON.stringify(rows.slice(i, i + 5_000))],
        );
      }
    }
    await target.query('ANALYZE');
  } finally {
    await legacy.end();
    await target.end();
  }
}

try {
  const t0 = Date.now();
  await seedLegacy();
  await fillTarget();
  console.log(
    `seeded ${fmt(BOOKINGS)} bookings and filled the target in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
  );
  const logger = createLogger({ level: 'warn' });
  const runs = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await runVerify({
      legacyUrl,
      targetUrl,
      recheck: { waitForApplied: async () => true },
      logger,
    });
    if (!r.clean) throw new Error(`bench: the target is not clean: ${JSON.stringify(r.entities)}`);
    const v2PerSec = r.targetRows / r.seconds;
    console.log(
      `run ${i + 1}/${RUNS}: ${fmt(r.legacyRows)} legacy rows, ${fmt(r.targetRows)} V2 rows in ${r.seconds.toFixed(2)} s: ${fmt(r.rowsPerSecond)} legacy rows/s, ${fmt(v2PerSec)} V2 rows/s`,
    );
    runs.push(r);
  }
  const legacyRate = stats(runs.map((r) => r.legacyRows / r.seconds));
  const v2Rate = stats(runs.map((r) => r.targetRows / r.seconds));
  const seconds = stats(runs.map((r) => r.seconds));
  const span = (s: { min: number; max: number }, d = 0) => `${fmt(s.min, d)}–${fmt(s.max, d)}`;
  report({
    title: `Verify: clean target, ${fmt(runs[0]!.legacyRows)} legacy rows / ${fmt(runs[0]!.targetRows)} V2 rows (${RUNS} runs)`,
    command: `npm run bench:verify -- --bookings ${BOOKINGS} --runs ${RUNS}`,
    pgVersion,
    table: [
      ['figure', 'median', 'spread (min–max)'],
      ['legacy rows verified per second (target ≥ 50,000)', fmt(legacyRate.median), span(legacyRate)],
      ['V2 rows compared per second', fmt(v2Rate.median), span(v2Rate)],
      ['seconds per verify', fmt(seconds.median, 2), span(seconds, 2)],
    ],
    notes: [
      'One legacy snapshot read through the transform modules (users derived), the target compared per entity in 1,000-row key-range chunks by hash; legacy and target on the same local PostgreSQL.',
      'Seeded with INSERT … SELECT; the target filled by the reference batch migration, so every chunk matches (no re-checks).',
    ],
  });
  console.log(
    JSON.stringify({
      verifyRowsPerSec: Math.round(legacyRate.median),
      v2RowsPerSec: Math.round(v2Rate.median),
    }),
  );
} finally {
  await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(legacyDb)} WITH (FORCE)`);
  await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(targetDb)} WITH (FORCE)`);
  await admin.end();
}
