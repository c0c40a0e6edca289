import { afterAll, describe, expect, it } from 'vitest';
import { readSlot } from '../../../connectors/pgoutput-source/preflight.js';
import { parseLsn } from '../../../src/core/lsn.js';
import { prng } from '../../../src/workload/legacy-workload.js';
import { ChildReplicator } from '../../helpers/child-source.js';
import { events, readTopics } from '../../helpers/kafka-read.js';
import { dropSlot, freshDatabase, testKafka, withClient } from '../../helpers/resources.js';
import { testSeed, withSeed } from '../../helpers/seed.js';
import { sourceConfig, topicOf } from '../../helpers/source-harness.js';

const KEYS = 200;
const CHANGES = 100_000;
const PER_TX = 5;
const KILLS = 5;
// Kill moments and the workload's keys come from this seed; every failure message names it.
const { seed, tag } = testSeed('CRASH_SEED');

const kafka = testKafka();
const children: ChildReplicator[] = [];

afterAll(async () => {
  for (const c of children) await c.kill9();
});

describe('source crash safety', () => {
  it(
    `kill -9 at ${KILLS} random moments of a ${CHANGES}-change workload loses nothing, keeps per-key commit order, and never confirms an undelivered commit (${tag})`,
    () =>
      withSeed(tag, async () => {
        const random = prng(seed);
        const db = await freshDatabase('crash');
        await withClient(db.url, async (c) => {
          await c.query('CREATE TABLE counters (id int PRIMARY KEY, v bigint NOT NULL)');
          await c.query('INSERT INTO counters SELECT g, 0 FROM generate_series(1, $1) g', [KEYS]);
        });
        const config = sourceConfig(db.url, ['public.counters'], { statusIntervalMs: 100 });
        const topic = topicOf(config, 'counters');

        const committed = new Map<number, number>(Array.from({ length: KEYS }, (_, i) => [i + 1, 0]));
        let changes = 0;
        // Progress points (share of the workload) at which the reader is killed, each jittered at random.
        const killAt = Array.from({ length: KILLS }, (_, i) =>
          Math.floor(CHANGES * ((i + 1) / (KILLS + 1) + (random() - 0.5) / 10)),
        );

        const kills: { confirmed: bigint; offsets: Map<number, number> }[] = [];
        let child = new ChildReplicator(config);
        children.push(child);
        child.start();
        // Changes before the slot exists reach Kafka only as the snapshot's rows; the workload starts after it.
        await child.waitForLog(/"msg":"streaming"/);
        const workload = withClient(db.url, async (c) => {
          while (changes < CHANGES) {
            const ids = new Set<number>();
            while (ids.size < PER_TX) ids.add(1 + Math.floor(random() * KEYS));
            // One statement per row, in one transaction: each key's new value is its previous + 1.
            const sql = [
              'BEGIN',
              ...[...ids].map((id) => `UPDATE counters SET v = v + 1 WHERE id = ${id}`),
              'COMMIT',
            ].join(';');
            await c.query(sql);
            for (const id of ids) committed.set(id, committed.get(id)! + 1);
            changes += PER_TX;
          }
        });
        const admin = kafka.admin();
        await admin.connect();
        try {
          for (const at of killAt) {
            while (changes < at) await new Promise((r) => setTimeout(r, 20));
            await child.kill9();
            // The dead reader's walsender goes away; then its slot position is final for this incarnation.
            const confirmed = await withClient(db.url, async (c) => {
              for (let i = 0; i < 100; i++) {
                const s = await readSlot(c, config.source.slot);
                if (s.exists && !s.active) return s.confirmedFlushLsn ? parseLsn(s.confirmedFlushLsn) : 0n;
                await new Promise((r) => setTimeout(r, 50));
              }
              throw new Error('slot still active after the reader was killed');
            });
            const offsets = new Map<number, number>();
            for (const p of await admin.fetchTopicOffsets(topic).catch(() => []))
              offsets.set(p.partition, Number(p.high));
            kills.push({ confirmed, offsets });
            child = new ChildReplicator(config);
            children.push(child);
            child.start();
            // The next kill comes only once this reader streams and has moved the slot (a kill during start-up proves
            // little), at a random moment after that.
            await child.waitForLog(/"msg":"streaming"/, 60_000);
            await withClient(db.url, async (c) => {
              for (let i = 0; i < 600; i++) {
                const s = await readSlot(c, config.source.slot);
                if (s.confirmedFlushLsn && parseLsn(s.confirmedFlushLsn) > confirmed) return;
                await new Promise((r) => setTimeout(r, 50));
              }
              throw new Error('the restarted reader never acknowledged anything');
            });
            await new Promise((r) => setTimeout(r, Math.floor(random() * 400)));
          }
          await workload;

          // Everything committed arrives: per key, the highest value seen equals the committed count.
          const all = events(
            await readTopics(
              kafka,
              [topic],
              (msgs) => {
                const max = new Map<number, number>();
                for (const m of msgs) {
                  const after = m.value
                    ? (JSON.parse(m.value).after as { id: number; v: string } | null)
                    : null;
                  if (after) max.set(after.id, Math.max(max.get(after.id) ?? 0, Number(after.v)));
                }
                return [...committed].every(([id, v]) => (max.get(id) ?? -1) >= v);
              },
              120_000,
            ),
          );
          expect(await child.stop()).toBe(0);

          // Per key, in partition order: each value is the previous + 1, or a replay (≤ previous) after a restart.
          // A jump (> previous + 1) would be a lost change; every committed value must appear.
          const perKey = new Map<number, number[]>();
          for (const e of all) {
            const after = e.event.after as { id: number; v: string };
            let list = perKey.get(after.id);
            if (!list) {
              list = [];
              perKey.set(after.id, list);
            }
            list.push(Number(after.v));
          }
          for (const [id, final] of committed) {
            const seq = perKey.get(id) ?? [];
            for (let i = 1; i < seq.length; i++) {
              if (seq[i]! > seq[i - 1]! + 1)
                throw new Error(`key ${id}: ${seq[i - 1]} then ${seq[i]} — a change was lost`);
            }
            expect(new Set(seq)).toEqual(new Set(Array.from({ length: final + 1 }, (_, v) => v)));
          }

          // confirmed_flush_lsn never passed an undelivered commit: every transaction committed before the slot's
          // position at a kill was already in Kafka (below the offsets of that moment).
          for (const k of kills) {
            const delivered = new Set(
              all
                .filter((e) => e.offset < (k.offsets.get(e.partition) ?? 0))
                .map((e) => `${e.event.source.commitLsn}:${e.key}`),
            );
            for (const e of all) {
              if (e.event.source.snapshot !== 'false') continue;
              if (parseLsn(e.event.source.commitLsn) < k.confirmed) {
                expect(
                  delivered.has(`${e.event.source.commitLsn}:${e.key}`),
                  `${e.event.source.commitLsn} ${e.key}`,
                ).toBe(true);
              }
            }
          }
          expect(kills).toHaveLength(KILLS);
          // The slot did move between kills (so the check above was not vacuous) and never moved back.
          for (let i = 1; i < kills.length; i++)
            expect(kills[i]!.confirmed).toBeGreaterThanOrEqual(kills[i - 1]!.confirmed);
          expect(kills[KILLS - 1]!.confirmed).toBeGreaterThan(kills[0]!.confirmed);
        } finally {
          await admin.disconnect();
          await child.kill9();
          await dropSlot(db.url, config.source.slot);
        }
      }),
    300_000,
  );
});
