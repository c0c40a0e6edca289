import type { V2Entity } from '../src/contracts/transform-api.js';
import type { DerivedEntity, V2Model } from '../src/contracts/v2-model.js';
import { userId } from './ids.js';

/** Children before parents: the order in which a legacy row's former V2 rows are deleted. */
const DELETE_ORDER: readonly V2Entity[] = [
  'payments',
  'bundle_components',
  'bundle_discounts',
  'bookings',
  'customer_profiles',
  'bundles',
  'users',
];

/** Parents before children. */
const UPSERT_ORDER: readonly V2Entity[] = [
  'users',
  'customer_profiles',
  'bundles',
  'bookings',
  'payments',
  'bundle_components',
  'bundle_discounts',
];

/**
 * users recomputed from V2 state, set-based: every email of a batch in one statement (recomputed rows upserted,
 * users no booking or profile has any more deleted).
 *
 * These are the rules of `deriveUser` in ./users.ts, in SQL — change the two together (test/transforms/users.test.ts
 * pins the TypeScript rules; verify and the sink tests compare the target's users with `deriveUsers`):
 * - the profile is the one with the smallest customer_id (code point order: COLLATE "C");
 * - the earliest booking by (booked_at, id) supplies what the profile lacks, and the phone; '' counts as missing;
 * - totals and first/last booking count non-cancelled bookings; total_spent sums succeeded payments;
 * - created_at is the earliest of the profile's created_at and every booking's booked_at;
 * - no profile and no booking: the user must not exist.
 * A user's rows are looked up per key (LATERAL; OFFSET 0 keeps the planner from flattening it into a join), through
 * the indexes on bookings(user_id), payments(user_id) and customer_profiles(email) (V2_DDL). As joins with `e`, they
 * were planned from column statistics, and a table not yet analyzed (a snapshot just loaded; autovacuum off) counts
 * 1/200 of its rows per key: every batch scanned whole tables, 120–520 ms each at 100,000 bookings.
 * The upsert never sets `email` (the id is derived from it, so it cannot change): setting a UNIQUE column makes
 * PostgreSQL lock the row FOR UPDATE, which waits for every apply transaction holding the row's foreign-key share
 * lock (a booking inserted for that user) — and those then wait for it.
 */
const RECOMPUTE_USERS_SQL = `
WITH e AS (
  SELECT DISTINCT email, id FROM unnest($1::text[], $2::uuid[]) AS x(email, id)
), p AS (
  SELECT cp.* FROM e CROSS JOIN LATERAL (
    SELECT * FROM customer_profiles c WHERE c.email = e.email ORDER BY c.customer_id COLLATE "C" LIMIT 1) cp
), b AS (
  SELECT bk.* FROM e CROSS JOIN LATERAL (SELECT * FROM bookings x WHERE x.user_id = e.id OFFSET 0) bk
), fb AS (
  SELECT DISTINCT ON (user_id) * FROM b ORDER BY user_id, booked_at, id
), agg AS (
  SELECT user_id,
         count(*) FILTER (WHERE status <> 'CANCELLED') AS total_bookings,
         min(booked_at) FILTER (WHERE status <> 'CANCELLED') AS first_booking_at,
         max(booked_at) FILTER (WHERE status <> 'CANCELLED') AS last_booking_at,
         min(booked_at) AS earliest
    FROM b GROUP BY user_id
), spent AS (
  SELECT e.id AS user_id, s.total FROM e CROSS JOIN LATERAL (
    SELECT sum(pm.amount) AS total FROM payments pm WHERE pm.user_id = e.id AND pm.status = 'succeeded') s
), computed AS (
  SELECT e.id, e.email, (p.customer_id IS NOT NULL OR agg.user_id IS NOT NULL) AS present,
         coalesce(nullif(p.first_name, ''), nullif(fb.contact->>'firstName', '')) AS first_name,
         coalesce(nullif(p.last_name, ''), nullif(fb.contact->>'lastName', '')) AS last_name,
         nullif(fb.contact->>'phone', '') AS phone,
         coalesce(nullif(p.company_name, ''), nullif(fb.contact->>'company', '')) AS company_name,
         p.customer_id, p.plan, p.status,
         least(p.created_at, agg.earliest) AS created_at,
         coalesce(agg.total_bookings, 0)::int AS total_bookings,
         coalesce(spent.total, 0) AS total_spent,
         agg.first_booking_at, agg.last_booking_at
    FROM e
    LEFT JOIN p ON p.email = e.email
    LEFT JOIN fb ON fb.user_id = e.id
    LEFT JOIN agg ON agg.user_id = e.id
    LEFT JOIN spent ON spent.user_id = e.id
), gone AS (
  DELETE FROM users u USING computed c WHERE u.id = c.id AND NOT c.present RETURNING u.id
)
INSERT INTO users (id, email, first_name, last_name, phone, company_name, customer_id, plan, status, created_at,
                   total_bookings, total_spent, first_booking_at, last_booking_at)
SELECT id, email, first_name, last_name, phone, company_name, customer_id, plan, status, created_at,
       total_bookings, total_spent, first_booking_at, last_booking_at
  FROM computed WHERE present
ON CONFLICT (id) DO UPDATE SET
  first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name, phone = EXCLUDED.phone,
  company_name = EXCLUDED.company_name, customer_id = EXCLUDED.customer_id, plan = EXCLUDED.plan,
  status = EXCLUDED.status, created_at = EXCLUDED.created_at, total_bookings = EXCLUDED.total_bookings,
  total_spent = EXCLUDED.total_spent, first_booking_at = EXCLUDED.first_booking_at,
  last_booking_at = EXCLUDED.last_booking_at`;

/** Placeholder users (no totals yet) for the users a batch's bookings refer to; the recompute fills them in. */
// Existing users are locked FOR KEY SHARE (in id order) until the transaction ends: a recompute running at the same
// time cannot delete a user that this transaction is about to reference (its DELETE waits, then fails on the
// foreign key and is run again), and a user deleted just before is inserted again here.
const USER_PLACEHOLDERS_SQL = `
WITH existing AS (SELECT id FROM users WHERE id = ANY($1::uuid[]) ORDER BY id FOR KEY SHARE)
INSERT INTO users (id, email, created_at, total_bookings, total_spent)
SELECT x.id, x.email, $3::timestamptz, 0, 0 FROM unnest($1::uuid[], $2::text[]) AS x(id, email)
 WHERE x.id NOT IN (SELECT id FROM existing)
ON CONFLICT DO NOTHING`;

const users: DerivedEntity = {
  id: userId,
  lockClass: 'replicator.user',
  recomputeSql: RECOMPUTE_USERS_SQL,
  placeholderSql: USER_PLACEHOLDERS_SQL,
  lookups: [
    { table: 'bookings', column: 'user_id' },
    { table: 'payments', column: 'user_id' },
    { table: 'customer_profiles', column: 'email' },
  ],
};

/** The V2 domain as the sink needs it (see src/contracts/v2-model.ts). */
export const v2Model: V2Model = {
  upsertOrder: UPSERT_ORDER,
  deleteOrder: DELETE_ORDER,
  derived: users,
};
