import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lineage } from '../../../connectors/postgres-sink/lineage.js';
import type { PendingToast } from '../../../connectors/postgres-sink/raw-change.js';
import { dropToastImages, ensureReplicatorSchema } from '../../../connectors/postgres-sink/target-schema.js';
import {
  LegacyRows,
  type RowChange,
  ToastImages,
  type ToastStep,
} from '../../../connectors/postgres-sink/toast-images.js';
import { changeTopic, dlqTopic } from '../../../src/contracts/topics.js';
import type { JsonRow, TransformModule } from '../../../src/contracts/transform-api.js';
import { silentLogger } from '../../../src/core/logger.js';
import { listDeadLetters } from '../../../src/ops/dlq/dead-letters.js';
import { runVerify, sinkOf } from '../../../src/ops/verify/verify.js';
import { LegacyWorkload } from '../../../src/workload/legacy-workload.js';
import { ChildReplicator } from '../../helpers/child-source.js';
import { events, readTopics } from '../../helpers/kafka-read.js';
import {
  freshPipeline,
  LEGACY_TABLES,
  startPipeline,
  summary,
  waitForConvergence,
} from '../../helpers/pipeline-harness.js';
import { dropSlot, freshDatabase, testKafka, withClient } from '../../helpers/resources.js';
import { isClean } from '../../helpers/v2-oracle.js';

const ROWS = 3_000;
const WRITES = 3_000;
const KILLS = 3;
/** Random hex: pglz finds nothing to compress, so each value is stored out of line (TOAST). */
const bigText = () => randomBytes(4_600).toString('hex');
/** The same in SQL, per row (correlated on `column`): 288 MD5s of random input, 9,216 hex digits. */
const RANDOM_HEX = (column: string) =>
  `(SELECT string_agg(md5(random()::text || g::text || ${column}::text), '') FROM generate_series(1, 288) g)`;

const children: ChildReplicator[] = [];
afterAll(async () => {
  for (const c of children) await c.kill9();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every message of these topics (their end offsets, read once). */
async function readAll(topics: string[]) {
  const admin = testKafka().admin();
  await admin.connect();
  let total = 0;
  try {
    for (const t of topics) for (const p of await admin.fetchTopicOffsets(t)) total += Number(p.high);
  } finally {
    await admin.disconnect();
  }
  return events(await readTopics(testKafka(), topics, (m) => m.length >= total, 60_000));
}

/**
 * The image store's size against the legacy rows it mirrors, both compacted first (VACUUM FULL: no dead versions
 * left by the updates): pg_total_relation_size (heap, TOAST, indexes) over the number of legacy rows.
 */
async function measureStore(legacyUrl: string, targetUrl: string) {
  const legacy = await withClient(legacyUrl, async (c) => {
    let rows = 0;
    let bytes = 0;
    for (const t of LEGACY_TABLES) {
      await c.query(`VACUUM FULL ${t.table}`);
      const r = await c.query<{ n: string; bytes: string }>(
        `SELECT count(*)::text AS n, pg_total_relation_size('${t.table}')::text AS bytes FROM ${t.table}`,
      );
      rows += Number(r.rows[0]!.n);
      bytes += Number(r.rows[0]!.bytes);
    }
    return { rows, bytes };
  });
  return withClient(targetUrl, async (c) => {
    await c.query('VACUUM FULL replicator.toast_images');
    const r = await c.query<{ n: string; bytes: string }>(
      "SELECT count(*)::text AS n, pg_total_relation_size('replicator.toast_images')::text AS bytes FROM replicator.toast_images",
    );
    return {
      legacyRows: legacy.rows,
      legacyBytes: legacy.bytes,
      images: Number(r.rows[0]!.n),
      bytes: Number(r.rows[0]!.bytes),
    };
  });
}

const describeStore = (s: Awaited<ReturnType<typeof measureStore>>) =>
  `image store: ${s.images} images, ${s.bytes} bytes = ${Math.round(s.bytes / s.legacyRows)} bytes per legacy row ` +
  `(${s.legacyRows} legacy rows taking ${Math.round(s.legacyBytes / s.legacyRows)} bytes per row)`;

describe.each(['default', 'full'] as const)('unchanged TOASTed values, replica identity %s', (identity) => {
  it(`${ROWS} rows with out-of-line notes, updates of other columns, deletes, email changes and ${KILLS} kill -9s: V2 exact, nothing dead-lettered for TOAST`, async () => {
    const env = await freshPipeline(`toast_${identity}`);
    const { legacyUrl, targetUrl, config } = env;
    const w = new LegacyWorkload({ seed: 14, customers: 60, shops: 2, invalidShare: 0.01, bigNotesBytes: 0 });
    await withClient(legacyUrl, async (c) => {
      for (const t of LEGACY_TABLES) {
        await c.query(`ALTER TABLE ${t.table} REPLICA IDENTITY ${identity === 'full' ? 'FULL' : 'DEFAULT'}`);
      }
      // Seeded before the slot exists: these rows reach V2 (and the image store) through the initial snapshot.
      for (const write of w.seed(ROWS)) await c.query(write.sql, write.params);
      await c.query(
        `UPDATE bookings SET "contactDetails" = jsonb_set("contactDetails", '{notes}', to_jsonb(${RANDOM_HEX('id')}))`,
      );
      // A second table with out-of-line values: profiles with a large free-text field.
      await c.query(
        `UPDATE customers_kv SET value = value || jsonb_build_object('bio', ${RANDOM_HEX('key')})`,
      );
    });
    const sizes = await withClient(legacyUrl, async (c) => {
      const r = await c.query<{ toast: string }>(
        "SELECT pg_relation_size(reltoastrelid)::text AS toast FROM pg_class WHERE oid = 'bookings'::regclass",
      );
      return Number(r.rows[0]!.toast);
    });
    // Out of line: the bookings' TOAST table holds (at least) the notes of every row.
    expect(sizes).toBeGreaterThan(ROWS * 8_000);

    const mine: ChildReplicator[] = [];
    let child = new ChildReplicator(config, 'all');
    children.push(child);
    mine.push(child);
    child.start();
    try {
      await child.waitForLog(/"msg":"streaming"/, 60_000);
      let done = 0;
      const profiles = 60;
      const writes = withClient(legacyUrl, async (c) => {
        for (let i = 0; i < WRITES; i++) {
          const r = i % 4;
          if (r === 0) {
            // Only other columns: the notes stay TOASTed and unchanged.
            await c.query(
              `UPDATE bookings SET "finalAmount" = round((random() * 500)::numeric, 2), "updatedAt" = now()
                WHERE id = (SELECT id FROM bookings ORDER BY random() LIMIT 1)`,
            );
          } else if (r === 1 && i % 8 === 1) {
            await c.query('UPDATE customers_kv SET updated_at = now() WHERE key = $1', [
              `customer_c${2 * Math.floor(Math.random() * (profiles / 2))}`,
            ]);
          } else {
            // The workload's mix: status transitions and refunds (other columns again), email changes (the jsonb is
            // rewritten), deletes, new bookings (with large notes too), profiles, bundles.
            const write = w.next();
            if (write.kind === 'insert booking') {
              const contact = JSON.parse(write.params[2] as string) as Record<string, unknown>;
              write.params[2] = JSON.stringify({ ...contact, notes: bigText() });
            }
            await c.query(write.sql, write.params);
          }
          done = i + 1;
          if (i % 25 === 0) await sleep(10);
        }
      });
      for (let k = 0; k < KILLS; k++) {
        while (done < (WRITES * (k + 1)) / (KILLS + 1)) await sleep(20);
        await child.kill9();
        if (k === 0 && identity === 'default') {
          // Rows without an image (as if last written before the store existed): re-read from legacy.
          await withClient(targetUrl, (c) =>
            c.query(
              "DELETE FROM replicator.toast_images WHERE source_table = 'public.bookings' AND random() < 0.3",
            ),
          );
        }
        child = new ChildReplicator(config, 'all');
        children.push(child);
        mine.push(child);
        child.start();
        await child.waitForLog(/"msg":"streaming"/, 60_000);
      }
      await writes;

      const diff = await waitForConvergence(legacyUrl, targetUrl, 120_000);
      expect(isClean(diff), summary(diff)).toBe(true);
      expect(mine.filter((c) => c.log().includes('sink starting')).length).toBe(KILLS + 1);

      const letters = await listDeadLetters(testKafka(), dlqTopic(config.kafka.topicPrefix));
      expect(letters.filter((d) => d.code === 'UNCHANGED_TOAST')).toEqual([]);

      const raw = await readAll([
        changeTopic(config.kafka.topicPrefix, 'public', 'bookings'),
        changeTopic(config.kafka.topicPrefix, 'public', 'customers_kv'),
      ]);
      const unchanged = raw.filter((e) => e.event.source.unchangedToast?.length);
      // The product's verify agrees with the oracle above.
      const report = await runVerify({
        legacyUrl,
        targetUrl,
        recheck: { sink: sinkOf(config, testKafka()), timeoutMs: 30_000 },
        persist: false,
        logger: silentLogger(),
      });
      expect(report.clean).toBe(true);
      expect(await child.stop()).toBe(0);
      const store = await measureStore(legacyUrl, targetUrl);
      console.log(
        `[toast-images ${identity}] ${unchanged.length} unchanged-TOAST events; ${describeStore(store)}`,
      );
      if (identity === 'default') {
        // The point of the test: many updates arrived without their notes / bios, and were completed.
        expect(unchanged.length).toBeGreaterThan(500);
        expect(
          unchanged.some((e) => e.event.source.table === 'customers_kv'),
          'a profile update without its value',
        ).toBe(true);
        expect(store.images).toBeGreaterThan(ROWS / 2);
        // The images deleted after the first kill were re-read from legacy.
        expect(mine.some((c) => c.log().includes('re-read from the legacy rows'))).toBe(true);
      } else {
        // FULL: the source fills the values from the old row; the sink keeps no images.
        expect(unchanged).toEqual([]);
        expect(store.images).toBe(0);
      }
    } finally {
      await child.kill9();
      await dropSlot(legacyUrl, config.source.slot);
    }
  }, 240_000);
});

describe('image store cost', () => {
  it("on the workload's mix (a tenth of the bookings with 6 kB notes), replica identity default: bytes per legacy row", async () => {
    const env = await freshPipeline('toast_cost');
    const w = new LegacyWorkload({
      seed: 3,
      customers: 200,
      shops: 3,
      invalidShare: 0.02,
      bigNotesBytes: 6000,
    });
    await withClient(env.legacyUrl, async (c) => {
      for (const t of LEGACY_TABLES) await c.query(`ALTER TABLE ${t.table} REPLICA IDENTITY DEFAULT`);
      for (const write of w.seed(ROWS)) await c.query(write.sql, write.params);
    });
    const run = startPipeline(env.config);
    try {
      await withClient(env.legacyUrl, async (c) => {
        for (let i = 0; i < 1_000; i++) {
          const write = w.next();
          await c.query(write.sql, write.params);
        }
      });
      const diff = await waitForConvergence(env.legacyUrl, env.targetUrl, 120_000);
      expect(isClean(diff), summary(diff)).toBe(true);
    } finally {
      await run.stop();
      await dropSlot(env.legacyUrl, env.config.source.slot);
    }
    const store = await measureStore(env.legacyUrl, env.targetUrl);
    console.log(`[toast-images cost, workload mix] ${describeStore(store)}`);
    // Bounded: a copy of the TOAST-able values only, never more than the legacy rows themselves.
    expect(store.bytes).toBeLessThan(store.legacyBytes);
  }, 180_000);
});

describe('image store: which image completes which change', () => {
  const TABLE = 'public.docs';
  /** Large enough to be stored out of line (a row of short values keeps no image). */
  const B = (n: number) => `body as written at position ${n} `.padEnd(2_500, '.');
  const IN_LEGACY = 'the body as legacy holds it now';
  let legacy: LegacyRows;
  let store: ToastImages;
  let target: pg.Client;
  const at = (n: number) => ({ commitLsn: BigInt(n * 100), seq: 0 });
  const lineageAt = (n: number, id = 1): [string, Lineage] => [
    `${TABLE}\u0000${JSON.stringify({ id })}`,
    { ...at(n), outputs: [], emails: [] },
  ];
  /** A change at position n; with `unchanged`, its `after` lacks those columns. */
  const change = (n: number, after: JsonRow | null, unchanged?: string[], id = 1): ToastStep => {
    const key = { id };
    const c: RowChange = { table: TABLE, key, position: at(n), after };
    if (unchanged) {
      const pending: PendingToast = {
        change: { op: 'u', table: TABLE, key, before: null, after },
        source: {
          table: TABLE,
          key,
          op: 'u',
          commitLsn: `0/${(n * 100).toString(16)}`,
          seq: 0,
          txId: 1,
          commitTs: null,
          snapshot: false,
        },
        unchanged,
        module: {} as TransformModule,
      };
      c.pending = pending;
    }
    return { change: c };
  };
  const images = async () =>
    (
      await target.query(
        'SELECT source_key, commit_lsn::text, seq, columns::text FROM replicator.toast_images ORDER BY 1',
      )
    ).rows;
  const put = (n: number, values: JsonRow, id = 1) =>
    store.write(target, [{ table: TABLE, key: JSON.stringify({ id }), position: at(n), values }]);

  beforeAll(async () => {
    const l = await freshDatabase('toastrules_legacy');
    const t = await freshDatabase('toastrules_v2');
    await withClient(l.url, async (c) => {
      await c.query('CREATE TABLE docs (id int PRIMARY KEY, body text, note varchar(20), n int)');
      await c.query("INSERT INTO docs VALUES (1, $1, 'short', 1)", [IN_LEGACY]);
    });
    legacy = new LegacyRows(l.url, silentLogger());
    store = new ToastImages(legacy);
    await store.prepare([TABLE]);
    target = new pg.Client({ connectionString: t.url });
    await target.connect();
    await ensureReplicatorSchema(target);
  });
  afterAll(async () => {
    await target?.end();
    await legacy?.end();
  });
  const reset = () => target.query('TRUNCATE replicator.toast_images');

  it('reads the TOAST-able columns from the legacy catalog', () => {
    expect([...legacy.table(TABLE)!.columns.keys()]).toEqual(['body', 'note']);
    expect(legacy.table(TABLE)!.identity).toBe('default');
  });

  it('completes from a stored image that is older than the event and not older than the lineage', async () => {
    await reset();
    await put(2, { body: B(2) });
    const r = await store.resolve(target, [change(3, { id: 1, n: 3 }, ['body'])], new Map([lineageAt(2)]));
    expect(r.completions.get(0)).toEqual({ body: B(2) });
    expect(r.refetched.size).toBe(0);
    await store.write(target, r.writes);
    expect(await images()).toEqual([
      { source_key: '{"id":1}', commit_lsn: '0/12C', seq: 0, columns: JSON.stringify({ body: B(2) }) },
    ]);
  });

  it('never completes an older event from a newer image: a replay is skipped, the image stays', async () => {
    await reset();
    await put(5, { body: B(5) });
    for (const lineage of [lineageAt(5), lineageAt(2)]) {
      const r = await store.resolve(target, [change(3, { id: 1, n: 3 }, ['body'])], new Map([lineage]));
      expect(r.completions.get(0)).toBe('skip');
      expect(r.refetched.size).toBe(0);
      await store.write(target, r.writes);
    }
    expect((await images())[0]).toMatchObject({
      commit_lsn: '0/1F4',
      columns: JSON.stringify({ body: B(5) }),
    });
  });

  it('an image the event itself wrote completes it again (a replay of the same position)', async () => {
    await reset();
    await put(3, { body: B(3) });
    const r = await store.resolve(target, [change(3, { id: 1, n: 3 }, ['body'])], new Map([lineageAt(2)]));
    expect(r.completions.get(0)).toEqual({ body: B(3) });
  });

  it('does not trust an image older than the lineage (a change was applied without it): re-reads legacy', async () => {
    await reset();
    await put(2, { body: B(2) });
    const r = await store.resolve(target, [change(5, { id: 1, n: 5 }, ['body'])], new Map([lineageAt(4)]));
    expect(r.completions.get(0)).toEqual({ body: IN_LEGACY });
    expect([...r.refetched]).toEqual([[TABLE, 1]]);
    await store.write(target, r.writes);
    expect((await images())[0]).toMatchObject({
      commit_lsn: '0/1F4',
      columns: JSON.stringify({ body: IN_LEGACY }),
    });
  });

  it('without an image: skips what the lineage covers, re-reads the rest, skips a row gone from legacy', async () => {
    await reset();
    const covered = await store.resolve(
      target,
      [change(3, { id: 1, n: 3 }, ['body'])],
      new Map([lineageAt(4)]),
    );
    expect(covered.completions.get(0)).toBe('skip');
    expect(covered.refetched.size).toBe(0);
    const r = await store.resolve(
      target,
      [change(5, { id: 1, n: 5 }, ['body', 'note']), change(5, { id: 2, n: 5 }, ['body'], 2)],
      new Map(),
    );
    expect(r.completions.get(0)).toEqual({ body: IN_LEGACY, note: 'short' });
    expect(r.completions.get(1)).toBe('skip');
    expect([...r.refetched]).toEqual([[TABLE, 2]]);
  });

  it('within a batch each change completes from the one before it; one image is written, at the last', async () => {
    await reset();
    await put(1, { body: B(1) });
    const r = await store.resolve(
      target,
      [
        change(2, { id: 1, n: 2 }, ['body']),
        change(3, { id: 1, body: B(3), note: null, n: 3 }),
        change(4, { id: 1, n: 4 }, ['body']),
        change(5, { id: 1, n: 5 }, ['body']),
      ],
      new Map([lineageAt(1)]),
    );
    expect(r.completions.get(0)).toEqual({ body: B(1) });
    expect(r.completions.get(2)).toEqual({ body: B(3) });
    expect(r.completions.get(3)).toEqual({ body: B(3) });
    expect(r.writes).toEqual([{ table: TABLE, key: '{"id":1}', position: at(5), values: { body: B(3) } }]);
  });

  it('a delete and a truncate remove images; short text and NULLs are never stored', async () => {
    await reset();
    await put(1, { body: B(1) });
    await put(1, { body: B(1) }, 2);
    const r = await store.resolve(
      target,
      [change(2, null), change(3, { id: 2, body: 'tiny', note: null, n: 1 }, undefined, 2)],
      new Map(),
    );
    // Neither row can hold an out-of-line value now: no image for either.
    expect(r.writes.map((w) => [w.key, w.values])).toEqual([
      ['{"id":1}', null],
      ['{"id":2}', null],
    ]);
    await store.write(target, r.writes);
    expect(await images()).toEqual([]);
    const t = await store.resolve(
      target,
      [change(4, { id: 1, body: 'x'.repeat(100), n: 1 }), { truncate: { table: TABLE, position: at(5) } }],
      new Map(),
    );
    expect(t.writes).toEqual([{ table: TABLE, key: '{"id":1}', position: at(5), values: null }]);
  });

  it('writes only forward: an older upsert or delete leaves a newer image', async () => {
    await reset();
    await put(5, { body: B(5) });
    await put(3, { body: B(3) });
    await store.write(target, [{ table: TABLE, key: '{"id":1}', position: at(4), values: null }]);
    expect((await images())[0]).toMatchObject({
      commit_lsn: '0/1F4',
      columns: JSON.stringify({ body: B(5) }),
    });
    await store.write(target, [{ table: TABLE, key: '{"id":1}', position: at(6), values: null }]);
    expect(await images()).toEqual([]);
  });

  it('finalize drops the store (dropToastImages); a sink started again creates it empty', async () => {
    await put(5, { body: B(5) });
    await dropToastImages(target);
    expect((await target.query("SELECT to_regclass('replicator.toast_images') AS t")).rows[0].t).toBeNull();
    await ensureReplicatorSchema(target);
    expect(await images()).toEqual([]);
  });
});
