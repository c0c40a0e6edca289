import type pg from 'pg';
import { userId } from '../../transforms/ids.js';

/**
 * users, recomputed from V2 state for one normalized email (the rules of transforms/users.ts `deriveUser`, in SQL):
 * never incremented, so replays and reordering cannot skew totals. The caller holds the email's advisory lock,
 * and this runs as a new statement, so it sees every committed change of other sinks to that user.
 */
const RECOMPUTE_SQL = `
WITH p AS (
  SELECT * FROM customer_profiles WHERE email = $1 ORDER BY customer_id COLLATE "C" LIMIT 1
), b AS (
  SELECT * FROM bookings WHERE user_id = $2
), fb AS (
  SELECT * FROM b ORDER BY booked_at, id LIMIT 1
), agg AS (
  SELECT count(*) FILTER (WHERE status <> 'CANCELLED') AS total_bookings,
         min(booked_at) FILTER (WHERE status <> 'CANCELLED') AS first_booking_at,
         max(booked_at) FILTER (WHERE status <> 'CANCELLED') AS last_booking_at,
         min(booked_at) AS earliest,
         count(*) AS n
    FROM b
), spent AS (
  SELECT coalesce(sum(amount), 0) AS total FROM payments WHERE user_id = $2 AND status = 'succeeded'
)
SELECT (SELECT count(*) FROM p) + agg.n > 0 AS exists,
       coalesce(nullif((SELECT first_name FROM p), ''), nullif((SELECT contact->>'firstName' FROM fb), '')) AS first_name,
       coalesce(nullif((SELECT last_name FROM p), ''), nullif((SELECT contact->>'lastName' FROM fb), '')) AS last_name,
       nullif((SELECT contact->>'phone' FROM fb), '') AS phone,
       coalesce(nullif((SELECT company_name FROM p), ''), nullif((SELECT contact->>'company' FROM fb), '')) AS company_name,
       (SELECT customer_id FROM p) AS customer_id,
       (SELECT plan FROM p) AS plan,
       (SELECT status FROM p) AS status,
       least((SELECT created_at FROM p), agg.earliest) AS created_at,
       agg.total_bookings::int AS total_bookings,
       spent.total AS total_spent,
       agg.first_booking_at, agg.last_booking_at
  FROM agg, spent`;

const UPSERT_SQL = `
INSERT INTO users (id, email, first_name, last_name, phone, company_name, customer_id, plan, status, created_at,
                   total_bookings, total_spent, first_booking_at, last_booking_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (id) DO UPDATE SET
  email = EXCLUDED.email, first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name, phone = EXCLUDED.phone,
  company_name = EXCLUDED.company_name, customer_id = EXCLUDED.customer_id, plan = EXCLUDED.plan,
  status = EXCLUDED.status, created_at = EXCLUDED.created_at, total_bookings = EXCLUDED.total_bookings,
  total_spent = EXCLUDED.total_spent, first_booking_at = EXCLUDED.first_booking_at,
  last_booking_at = EXCLUDED.last_booking_at`;

interface Recomputed {
  exists: boolean;
  first_name: string | null;
  last_name: string | null;
  phone: string | null;
  company_name: string | null;
  customer_id: string | null;
  plan: string | null;
  status: string | null;
  created_at: string;
  total_bookings: number;
  total_spent: string;
  first_booking_at: string | null;
  last_booking_at: string | null;
}

/** Recomputes (or deletes) the user of `email`. */
export async function recomputeUser(client: pg.ClientBase, email: string): Promise<void> {
  const id = userId(email);
  const r = (await client.query<Recomputed>(RECOMPUTE_SQL, [email, id])).rows[0]!;
  if (!r.exists) {
    await client.query('DELETE FROM users WHERE id = $1', [id]);
    return;
  }
  await client.query(UPSERT_SQL, [
    id,
    email,
    r.first_name,
    r.last_name,
    r.phone,
    r.company_name,
    r.customer_id,
    r.plan,
    r.status,
    r.created_at,
    r.total_bookings,
    r.total_spent,
    r.first_booking_at,
    r.last_booking_at,
  ]);
}

/** A placeholder for a user a booking refers to before the user's recompute (foreign keys stay on in V2). */
export async function ensureUser(client: pg.ClientBase, email: string, createdAt: string): Promise<void> {
  await client.query(
    `INSERT INTO users (id, email, created_at, total_bookings, total_spent) VALUES ($1, $2, $3, 0, 0)
     ON CONFLICT DO NOTHING`,
    [userId(email), email, createdAt],
  );
}

/** Takes the transaction-scoped locks of these emails, in a fixed order so two sinks never deadlock on them. */
export async function lockUsers(client: pg.ClientBase, emails: Iterable<string>): Promise<void> {
  const sorted = [...new Set(emails)].sort();
  if (sorted.length === 0) return;
  await client.query(
    `SELECT count(pg_advisory_xact_lock(hashtext('replicator.user'), hashtext(e)))
       FROM (SELECT e FROM unnest($1::text[]) AS e ORDER BY e) AS ordered`,
    [sorted],
  );
}

/**
 * The same rules as `recomputeUser`, set-based: every email of a batch in one statement (recomputed rows upserted,
 * users no booking or profile has any more deleted). The caller holds all their locks.
 */
const RECOMPUTE_MANY_SQL = `
WITH e AS (
  SELECT email, id FROM unnest($1::text[], $2::uuid[]) AS x(email, id)
), p AS (
  SELECT DISTINCT ON (cp.email) cp.* FROM customer_profiles cp JOIN e ON cp.email = e.email
   ORDER BY cp.email, cp.customer_id COLLATE "C"
), b AS (
  SELECT bk.* FROM bookings bk JOIN e ON bk.user_id = e.id
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
  SELECT pm.user_id, sum(pm.amount) AS total FROM payments pm JOIN e ON pm.user_id = e.id
   WHERE pm.status = 'succeeded' GROUP BY pm.user_id
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
  email = EXCLUDED.email, first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name, phone = EXCLUDED.phone,
  company_name = EXCLUDED.company_name, customer_id = EXCLUDED.customer_id, plan = EXCLUDED.plan,
  status = EXCLUDED.status, created_at = EXCLUDED.created_at, total_bookings = EXCLUDED.total_bookings,
  total_spent = EXCLUDED.total_spent, first_booking_at = EXCLUDED.first_booking_at,
  last_booking_at = EXCLUDED.last_booking_at`;

export async function recomputeUsers(client: pg.ClientBase, emails: readonly string[]): Promise<void> {
  if (emails.length === 0) return;
  await client.query(RECOMPUTE_MANY_SQL, [emails, emails.map(userId)]);
}

/** Placeholders for every user a batch's bookings may refer to, in one statement. */
export async function ensureUsers(
  client: pg.ClientBase,
  emails: readonly string[],
  createdAt: string,
): Promise<void> {
  if (emails.length === 0) return;
  await client.query(
    `INSERT INTO users (id, email, created_at, total_bookings, total_spent)
     SELECT id, email, $3::timestamptz, 0, 0 FROM unnest($1::uuid[], $2::text[]) AS x(id, email)
     ON CONFLICT DO NOTHING`,
    [emails.map(userId), emails, createdAt],
  );
}
