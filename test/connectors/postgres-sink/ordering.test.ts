import fc from 'fast-check';
import type pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { changeTopics } from '../../../src/contracts/topics.js';
import type { JsonRow, LegacyChange } from '../../../src/contracts/transform-api.js';
import { quoteIdent } from '../../../src/core/sql.js';
import type { ReplicatorConfig } from '../../../src/pipeline/config/load-config.js';
import { waitFor } from '../../helpers/daemon.js';
import { compareTarget, freshPipeline, startPipeline, summary } from '../../helpers/pipeline-harness.js';
import { dropSlot, testKafka, withClient } from '../../helpers/resources.js';
import { testSeed, withSeed } from '../../helpers/seed.js';
import { isClean } from '../../helpers/v2-oracle.js';
import { interleave, keyHistoriesArb } from '../../transforms/arbitraries.js';

/**
 * The sink's ordering property against the real apply path (source → Kafka → apply → target, partitions applied
 * in parallel, users shared across partitions): per-key histories of every legacy table — creates, updates,
 * versions the transforms reject, deletes; shared emails — committed in a random interleaving and grouped into
 * random transactions end in the V2 state of the final rows alone. `test/transforms/index.test.ts` checks the same
 * property of the transforms' operations on an in-memory model; this one checks the sink that applies them.
 * Runs accumulate in one pipeline: a key drawn again continues its history, and the expectation is always the
 * whole legacy database through the transforms (the oracle in test/helpers/v2-oracle.ts).
 */

const { seed, tag } = testSeed('ORDERING_SEED');
const RUNS = 40;

let env: Awaited<ReturnType<typeof freshPipeline>>;
let pipeline: ReturnType<typeof startPipeline>;
beforeAll(async () => {
  env = await freshPipeline('ordering');
  pipeline = startPipeline(env.config);
  // Writes committed once the slot exists are streamed one event each (before it, they would be snapshot rows).
  await waitFor('the source to create its slot', () =>
    withClient(env.legacyUrl, async (c) =>
      (
        await c.query(
          'SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND confirmed_flush_lsn IS NOT NULL',
          [env.config.source.slot],
        )
      ).rowCount
        ? true
        : undefined,
    ),
  );
});
afterAll(async () => {
  await pipeline?.stop();
  if (env) await dropSlot(env.legacyUrl, env.config.source.slot);
});

const PRIMARY_KEY: Record<string, string> = {
  'public.bookings': 'id',
  'public.customers_kv': 'key',
  'public.bundle_discount_id': 'id',
  'public.ai_fbt_bundles': 'id',
};

/** The legacy write a change stands for; returns how many change events it produces (0 for a missing delete). */
async function write(c: pg.ClientBase, change: LegacyChange): Promise<number> {
  const [schema, table] = change.table.split('.') as [string, string];
  const name = `${quoteIdent(schema)}.${quoteIdent(table)}`;
  const pk = PRIMARY_KEY[change.table]!;
  if (change.op === 'd') {
    const r = await c.query(`DELETE FROM ${name} WHERE ${quoteIdent(pk)}::text = $1`, [
      String(change.key[pk]),
    ]);
    return r.rowCount ?? 0;
  }
  const row = change.after as JsonRow;
  const columns = Object.keys(row).map(quoteIdent);
  const r = await c.query(
    `INSERT INTO ${name} (${columns.join(', ')})
       SELECT ${columns.join(', ')} FROM json_populate_record(NULL::${name}, $1::json)
     ON CONFLICT (${quoteIdent(pk)}) DO UPDATE SET (${columns.join(', ')}) = ROW(${columns
       .map((col) => `EXCLUDED.${col}`)
       .join(', ')})`,
    [JSON.stringify(row)],
  );
  return r.rowCount ?? 0;
}

/** Sum of the change topics' end offsets. */
async function publishedEvents(config: ReplicatorConfig): Promise<number> {
  const admin = testKafka().admin();
  await admin.connect();
  try {
    let n = 0;
    for (const topic of changeTopics({ rawPrefix: config.kafka.topicPrefix, tables: config.source.tables })) {
      for (const p of await admin.fetchTopicOffsets(topic).catch(() => [])) n += Number(p.high);
    }
    return n;
  } finally {
    await admin.disconnect();
  }
}

/**
 * Until every event committed so far is applied: the change topics hold `events` messages (the source published
 * them all), the target's stored offsets reach every partition's end, and no derived key waits to be recomputed.
 */
async function waitApplied(config: ReplicatorConfig, targetUrl: string, events: number): Promise<void> {
  await waitFor(
    'the source to publish every change',
    async () => ((await publishedEvents(config)) >= events ? true : undefined),
    60_000,
  );
  const admin = testKafka().admin();
  await admin.connect();
  const ends = new Map<string, number>();
  try {
    for (const topic of changeTopics({ rawPrefix: config.kafka.topicPrefix, tables: config.source.tables })) {
      for (const p of await admin.fetchTopicOffsets(topic))
        ends.set(`${topic}/${p.partition}`, Number(p.high));
    }
  } finally {
    await admin.disconnect();
  }
  await waitFor(
    'the sink to apply every published change',
    () =>
      withClient(targetUrl, async (c) => {
        const stored = new Map(
          (
            await c.query<{ t: string; n: string }>(
              "SELECT topic || '/' || partition AS t, next_offset::text AS n FROM replicator.sink_offsets WHERE group_id = $1",
              [config.sink.groupId],
            )
          ).rows.map((r) => [r.t, Number(r.n)]),
        );
        const behind = [...ends].filter(([tp, end]) => (stored.get(tp) ?? 0) < end);
        const pending = Number(
          (await c.query<{ n: string }>('SELECT count(*) AS n FROM replicator.pending_derived')).rows[0]!.n,
        );
        return behind.length === 0 && pending === 0 ? true : undefined;
      }),
    60_000,
  );
}

it(`any interleaving of per-key histories, applied by the real sink, ends in the state of the final rows (${tag})`, async () => {
  await withSeed(tag, async () => {
    let events = await publishedEvents(env.config);
    await fc.assert(
      fc.asyncProperty(
        keyHistoriesArb.chain(([histories, choices]) => {
          const order = interleave(histories, choices);
          // How many changes each legacy transaction commits, so one transaction may touch several keys and tables.
          return fc.tuple(
            fc.constant(order),
            fc.array(fc.integer({ min: 1, max: 4 }), { minLength: order.length, maxLength: order.length }),
          );
        }),
        async ([order, sizes]) => {
          await withClient(env.legacyUrl, async (c) => {
            for (let i = 0, t = 0; i < order.length; t++) {
              await c.query('BEGIN');
              for (const change of order.slice(i, i + sizes[t]!)) events += await write(c, change);
              await c.query('COMMIT');
              i += sizes[t]!;
            }
          });
          await waitApplied(env.config, env.targetUrl, events);
          const diff = await compareTarget(env.legacyUrl, env.targetUrl);
          expect(isClean(diff), summary(diff)).toBe(true);
        },
      ),
      { seed, numRuns: RUNS, endOnFailure: true },
    );
  });
}, 600_000);
