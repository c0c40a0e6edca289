import type pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { LegacyWorkload } from '../../../src/workload/legacy-workload.js';
import { bundleId } from '../../../transforms/ids.js';
import type { ChildReplicator } from '../../helpers/child-source.js';
import { runCli, scrape, waitFor } from '../../helpers/daemon.js';
import { startFaultDaemon } from '../../helpers/fault-daemon.js';
import { startLiveWriter } from '../../helpers/live-writer.js';
import { freshPipeline, summary, waitForConvergence } from '../../helpers/pipeline-harness.js';
import { dropSlot, withClient } from '../../helpers/resources.js';
import { testSeed, withSeed } from '../../helpers/seed.js';
import { isClean } from '../../helpers/v2-oracle.js';

/**
 * A production day's *data* faults, under live legacy writes, against one daemon (`start --role all`) that must
 * never exit: compatible schema changes (an added column, a widened numeric) flow on; rows the transforms must
 * refuse, and a 50 MB row over the topic's message limit, are dead-lettered with their reason and key while the
 * rows around them apply; a JSON number beyond a
 * double stays exact in V2; a dropped column the bookings module declares holds that table — with a SCHEMA_DRIFT
 * finding, a metric and no dead letters — while the other tables flow, and the held changes apply once the column
 * is restored. At the end V2 equals what the legacy rows make (the test's oracle) and `replicator verify` is clean.
 */

const { seed, tag } = testSeed('DATA_FAULTS_SEED');
const children: ChildReplicator[] = [];
const slots: { url: string; slot: string }[] = [];
afterAll(async () => {
  for (const c of children) await c.kill9();
  for (const s of slots) await dropSlot(s.url, s.slot);
});

interface Letter {
  table: string;
  key: string;
  code: string;
  message: string;
}

/** A booking row with the columns every version of the table has; returns its id. */
async function insertBooking(
  c: pg.Client,
  ref: string,
  contact: Record<string, unknown> | string,
  amount = '10.00',
): Promise<string> {
  const { rows } = await c.query<{ id: string }>(
    `INSERT INTO bookings ("bookingReference", "contactDetails", status, "finalAmount")
     VALUES ($1, $2::jsonb, 'PAID', $3) RETURNING id::text`,
    [ref, typeof contact === 'string' ? contact : JSON.stringify(contact), amount],
  );
  return rows[0]!.id;
}

/** Ids far above the workload's own (it numbers the serial tables' rows itself). */
let nextId = 1_000_000;

async function insertManualBundle(
  c: pg.Client,
  fields: { bundleId?: string; bundleName?: string; shop?: string; discountPercent?: string },
): Promise<number> {
  const { rows } = await c.query<{ id: number }>(
    `INSERT INTO bundle_discount_id (id, "bundleId", "bundleName", shop, products, "discountPercent", "discountId")
     VALUES ($5, $1, $2, $3, '[{"productId":"gid://p/1"}]', $4, 'gid://d/1') RETURNING id`,
    [
      fields.bundleId ?? 'gid://m/1',
      fields.bundleName ?? 'Summer set',
      fields.shop ?? 'shop-a.example',
      fields.discountPercent ?? '10.00',
      nextId++,
    ],
  );
  return rows[0]!.id;
}

async function insertAiBundle(
  c: pg.Client,
  fields: { productId?: string; confidenceScore?: string },
): Promise<number> {
  const { rows } = await c.query<{ id: number }>(
    `INSERT INTO ai_fbt_bundles (id, shop, "productId", "bundledProductIds", "confidenceScore", support, lift)
     VALUES ($3, 'shop-a.example', $1, '{gid://p/2}', $2::float8, 0.5, 1.5) RETURNING id`,
    [fields.productId ?? 'gid://p/1', fields.confidenceScore ?? '0.7', nextId++],
  );
  return rows[0]!.id;
}

describe('data faults under live writes', () => {
  it(
    `added column, widened numeric, bad input rows, a 50 MB row, big JSON numbers, a dropped column held and resumed: one process, V2 exact, verify clean (${tag})`,
    () =>
      withSeed(tag, async () => {
        const { legacyUrl, targetUrl, config } = await freshPipeline('datafaults');
        slots.push({ url: legacyUrl, slot: config.source.slot });
        const workload = new LegacyWorkload({
          seed,
          customers: 20,
          shops: 2,
          invalidShare: 0,
          bigNotesBytes: 3000,
        });
        const { daemon, pid, base, alive } = await startFaultDaemon(config, legacyUrl, workload, children);
        const cli = async (args: string[]) =>
          runCli([...args, '--config', daemon.configFile], { REPLICATOR_LOG_LEVEL: 'error' });
        const letters = async (): Promise<Letter[]> => {
          const r = await cli(['dlq', 'list', '--json']);
          expect(r.code, r.stderr).toBe(0);
          return r.stdout
            .split('\n')
            .filter((l) => l.trim() !== '')
            .map((l) => JSON.parse(l) as Letter);
        };
        const target = <T extends pg.QueryResultRow>(sql: string, params: unknown[] = []) =>
          withClient(targetUrl, async (c) => (await c.query<T>(sql, params)).rows);
        const driftStatus = async () => {
          const r = await cli(['status', '--json']);
          const report = JSON.parse(r.stdout) as {
            problems: string[];
            target: { schemaDrift: { table: string; columns: string[] }[] };
          };
          return { code: r.code, report };
        };

        // 1. Compatible schema changes under live writes: nothing is held, nothing dead-lettered.
        // Through every step; while the column is dropped the workload's bookings writes fail (they name it) and
        // are counted, its other writes go on.
        const writer = startLiveWriter(legacyUrl, workload, { pauseMs: 3, survive: true });
        const expectedLetters: { table: string; key: string; code: string }[] = [];
        let hugeId = '';
        try {
          await writer.advance(100);
          await withClient(legacyUrl, (c) =>
            c.query(`ALTER TABLE bookings ADD COLUMN "loyaltyTier" text NOT NULL DEFAULT 'none'`),
          );
          await writer.advance(100);
          await withClient(legacyUrl, (c) =>
            c.query('ALTER TABLE bookings ALTER COLUMN "finalAmount" TYPE numeric(14,4)'),
          );
          await writer.advance(100);
          alive('compatible schema changes');

          // 2. Rows the transforms must refuse, among rows that must apply, while the writer goes on.
          await withClient(legacyUrl, async (c) => {
            const booking = async (
              ref: string,
              code: string,
              contact: Record<string, unknown>,
              amount?: string,
            ) => {
              const id = await insertBooking(c, ref, contact, amount);
              expectedLetters.push({ table: 'public.bookings', key: JSON.stringify({ id }), code });
            };
            await booking('', 'BOOKING_EMPTY_REFERENCE', { email: 'empty.ref@example.com' });
            // The widened column holds a value the declared numeric(12,2) cannot: refused, not rounded.
            await booking('WIDE-1', 'LEGACY_ROW_INVALID', { email: 'wide@example.com' }, '12.3456');
            const manual = async (code: string, fields: Parameters<typeof insertManualBundle>[1]) => {
              const id = await insertManualBundle(c, fields);
              expectedLetters.push({ table: 'public.bundle_discount_id', key: JSON.stringify({ id }), code });
            };
            await manual('BUNDLE_EMPTY_FIELD', { bundleName: '' });
            await manual('BUNDLE_EMPTY_FIELD', { shop: ' ' });
            await manual('BUNDLE_EMPTY_FIELD', { bundleId: '' });
            await manual('BUNDLE_INVALID_DISCOUNT', { discountPercent: '-50.00' });
            const ai = async (code: string, fields: Parameters<typeof insertAiBundle>[1]) => {
              const id = await insertAiBundle(c, fields);
              expectedLetters.push({ table: 'public.ai_fbt_bundles', key: JSON.stringify({ id }), code });
            };
            await ai('BUNDLE_EMPTY_FIELD', { productId: '' });
            for (const score of ['NaN', 'Infinity', '-Infinity']) {
              await ai('BUNDLE_INVALID_SCORE', { confidenceScore: score });
            }
            // Rows that apply: one address in NFC and NFD is one user; a Turkish dotted capital I lower-cases
            // locale-independently; JSON numbers a double cannot hold stay exact.
            await insertBooking(c, 'NFC-1', { email: 'zo\u00eb@ex\u00e4mple.com' });
            await insertBooking(c, 'NFD-1', { email: 'zoe\u0308@exa\u0308mple.com' });
            await insertBooking(c, 'TR-1', { email: '\u0130STANBUL@example.com' });
            // 50 MB: far over the topic's 1 MB max.message.bytes. Dead-lettered as a summary, the stream moves on.
            const { rows } = await c.query<{ id: string }>(
              `INSERT INTO bookings ("bookingReference", "contactDetails", status, "finalAmount")
               VALUES ('HUGE-1', jsonb_build_object('email', 'huge@example.com', 'notes', repeat('x', 50 * 1024 * 1024)),
                       'PAID', 10) RETURNING id::text`,
            );
            hugeId = rows[0]!.id;
            expectedLetters.push({
              table: 'public.bookings',
              key: JSON.stringify({ id: hugeId }),
              code: 'EVENT_TOO_LARGE',
            });
            await insertBooking(
              c,
              'BIG-1',
              '{"email":"big@example.com","loyaltyId":12345678901234567890,"ratio":0.61300000000000000001}',
            );
          });
          await writer.advance(100);
          expect(writer.failed()).toBe(0);

          // The rows after the 50 MB one applied; the application then removes it (its delete, carrying the whole
          // old row under REPLICA IDENTITY FULL, is too large as well: a second letter).
          await waitFor('a booking written after the 50 MB row in V2', async () => {
            const r = await target("SELECT 1 FROM bookings WHERE reference = 'BIG-1'");
            return r.length > 0 || undefined;
          });
          await withClient(legacyUrl, (c) => c.query('DELETE FROM bookings WHERE id = $1', [hugeId]));
          const hugeKey = JSON.stringify({ id: hugeId });
          await waitFor('the 50 MB row delete dead-lettered', async () => {
            const huge = (await letters()).filter((l) => l.key === hugeKey && l.code === 'EVENT_TOO_LARGE');
            return huge.length === 2 || undefined;
          });

          // 3. A column the bookings module declares is dropped (its values saved first, under the same lock):
          // bookings wait, the other tables flow.
          const lettersBefore = await letters();
          await withClient(legacyUrl, async (c) => {
            await c.query('BEGIN');
            await c.query('LOCK TABLE bookings IN ACCESS EXCLUSIVE MODE');
            await c.query('CREATE TABLE saved_payment_methods AS SELECT id, "paymentMethod" FROM bookings');
            await c.query('ALTER TABLE bookings DROP COLUMN "paymentMethod"');
            await c.query('COMMIT');
            for (let i = 0; i < 6; i++)
              await insertBooking(c, `DRIFT-${i}`, { email: `drift${i}@example.com` });
            await c.query(
              `UPDATE bookings SET status = 'COMPLETED', "updatedAt" = now()
              WHERE id IN (SELECT id FROM bookings WHERE status = 'PAID' ORDER BY "createdAt" LIMIT 3)`,
            );
          });
          const flowing = await withClient(legacyUrl, (c) =>
            insertManualBundle(c, { bundleId: 'gid://m/during-drift', bundleName: 'Flows on' }),
          );
          const held = await waitFor(
            'a SCHEMA_DRIFT finding for public.bookings',
            async () => {
              const { report } = await driftStatus();
              const d = report.target.schemaDrift.filter((x) => x.table === 'public.bookings');
              return d.length > 0 ? { report, d } : undefined;
            },
            60_000,
            1_000,
          );
          expect(held.d.every((x) => x.columns.join() === 'paymentMethod')).toBe(true);
          expect(held.report.problems.some((p) => p.startsWith('SCHEMA_DRIFT: public.bookings'))).toBe(true);
          expect(
            await scrape(base, 'replicator_schema_drift_partitions', 'table="public.bookings"'),
          ).toBeGreaterThan(0);
          expect(
            await scrape(base, 'replicator_schema_drift_partitions', 'table="public.customers_kv"'),
          ).toBe(0);
          await waitFor('the bundle written during the drift in V2', async () => {
            const rows = await target('SELECT id FROM bundles WHERE id = $1', [
              bundleId('bundle_discount_id', flowing),
            ]);
            return rows.length > 0 || undefined;
          });
          // Held rather than dead-lettered: not one letter more.
          expect((await letters()).length).toBe(lettersBefore.length);
          alive('schema drift');

          // 4. The column is restored (with its values): the held changes apply, the finding clears.
          await withClient(legacyUrl, async (c) => {
            await c.query('BEGIN');
            await c.query('ALTER TABLE bookings ADD COLUMN "paymentMethod" text');
            await c.query(
              `UPDATE bookings b SET "paymentMethod" = s."paymentMethod"
               FROM saved_payment_methods s WHERE b.id = s.id AND s."paymentMethod" IS NOT NULL`,
            );
            await c.query('COMMIT');
          });
          await waitFor(
            'the SCHEMA_DRIFT finding to clear',
            async () => ((await driftStatus()).report.target.schemaDrift.length === 0 ? true : undefined),
            60_000,
            1_000,
          );
          expect(await scrape(base, 'replicator_schema_drift_partitions', 'table="public.bookings"')).toBe(0);
          await writer.advance(150);
        } finally {
          await writer.stop();
        }
        expect(writer.failed()).toBeGreaterThan(0);

        // 5. V2 is exactly what the legacy rows make, and the product's verify agrees.
        const diff = await waitForConvergence(legacyUrl, targetUrl, 180_000);
        expect(isClean(diff), summary(diff)).toBe(true);
        const verify = await cli(['verify', '--json']);
        expect(verify.code, verify.stderr).toBe(0);
        expect((JSON.parse(verify.stdout) as { clean: boolean }).clean).toBe(true);

        // Every refused row is a letter naming its table, key and reason; drift made none.
        const all = await letters();
        for (const want of expectedLetters) {
          expect(all, JSON.stringify(want)).toContainEqual(expect.objectContaining(want));
        }
        expect(all.filter((l) => l.code === 'SCHEMA_DRIFT')).toEqual([]);
        // NFC and NFD: one user; İ → i; the big numbers exactly as written.
        expect(
          await target<{ email: string }>('SELECT email FROM users WHERE email IN ($1, $2) ORDER BY email', [
            'zo\u00eb@ex\u00e4mple.com',
            'zoe\u0308@exa\u0308mple.com',
          ]),
        ).toEqual([{ email: 'zo\u00eb@ex\u00e4mple.com' }]);
        expect(
          await target('SELECT email FROM users WHERE email = $1', ['istanbul@example.com']),
        ).toHaveLength(1);
        expect(
          await target<{ loyalty: string; ratio: string }>(
            `SELECT contact->>'loyaltyId' AS loyalty, contact->>'ratio' AS ratio FROM bookings WHERE reference = 'BIG-1'`,
          ),
        ).toEqual([{ loyalty: '12345678901234567890', ratio: '0.61300000000000000001' }]);

        // Data faults are warnings (dead letters, drift), never errors; nor is anything on a healthy start.
        expect(
          daemon
            .log()
            .split('\n')
            .filter((l) => l.includes('"level":50')),
        ).toEqual([]);
        // One process throughout.
        alive('after the faults');
        expect(daemon.pid).toBe(pid);
        expect(await daemon.stop()).toBe(0);
      }),
    600_000,
  );
});
