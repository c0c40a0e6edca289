import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSlot } from '../../../connectors/pgoutput-source/preflight.js';
import { parseLsn } from '../../../src/core/lsn.js';
import { events, readTopics } from '../../helpers/kafka-read.js';
import { freshDatabase, testKafka, withClient } from '../../helpers/resources.js';
import { sourceConfig, startSource, topicOf } from '../../helpers/source-harness.js';

const kafka = testKafka();
let db: { name: string; url: string };

beforeAll(async () => {
  db = await freshDatabase('source');
});

async function dropSlot(slot: string) {
  await withClient(db.url, async (c) => {
    for (let i = 0; i < 50; i++) {
      const r = await c.query('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [slot]);
      if (r.rowCount === 0) return;
      if (!r.rows[0].active) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    await c.query('SELECT pg_drop_replication_slot($1)', [slot]);
  });
}

describe('pgoutput source', () => {
  afterAll(async () => {});

  it('snapshots existing rows as `r`, then streams c/u/d/t in commit order and acknowledges only what Kafka has', async () => {
    await withClient(db.url, async (c) => {
      await c.query('CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(12,2))');
      await c.query("INSERT INTO items SELECT g, 'item ' || g, g * 1.5 FROM generate_series(1, 25) g");
    });
    const config = sourceConfig(db.url, ['public.items'], { snapshotChunkRows: 10 });
    const topic = topicOf(config, 'items');
    const run = startSource(config, kafka);
    try {
      const snap = await readTopics(kafka, [topic], (m) => m.length >= 25);
      const snapEvents = events(snap);
      expect(snapEvents).toHaveLength(25);
      expect(snapEvents.every((e) => e.event.op === 'r' && e.event.source.snapshot !== 'false')).toBe(true);
      const byId = new Map(snapEvents.map((e) => [e.event.after?.id, e]));
      expect(byId.get(7)?.event.after).toEqual({ id: 7, name: 'item 7', price: '10.50' });
      expect(JSON.parse(byId.get(7)!.key!)).toEqual({ id: 7 });

      await withClient(db.url, async (c) => {
        await c.query('BEGIN');
        await c.query("INSERT INTO items VALUES (100, 'new', 1.00)");
        await c.query("UPDATE items SET name = 'renamed' WHERE id = 100");
        await c.query('COMMIT');
        await c.query('DELETE FROM items WHERE id = 1');
        await c.query('UPDATE items SET id = 200 WHERE id = 2');
        await c.query('TRUNCATE items');
      });
      // 3 partitions: the truncate goes to each of them. Read on for a second after: a duplicate would show.
      const all = events(await readTopics(kafka, [topic], (m) => m.length >= 25 + 5 + 3, 30_000, 1_000));
      expect(all).toHaveLength(25 + 5 + 3);
      const stream = all.filter((e) => e.event.source.snapshot === 'false');
      const position = (e: (typeof stream)[number]) =>
        [parseLsn(e.event.source.commitLsn), e.event.source.seq] as const;
      const byCommit = (a: (typeof stream)[number], b: (typeof stream)[number]) => {
        const [x, i] = position(a);
        const [y, j] = position(b);
        return x < y ? -1 : x > y ? 1 : i - j;
      };
      const label = (e: (typeof stream)[number]) => `${e.event.op}:${e.key}`;
      // Commit order (commit LSN, then the change's place in its transaction) is the order the writes were made.
      const inCommitOrder = [...stream].sort(byCommit);
      expect(inCommitOrder.map(label)).toEqual([
        'c:{"id":100}',
        'u:{"id":100}',
        'd:{"id":1}',
        'd:{"id":2}',
        'c:{"id":200}',
        't:null',
        't:null',
        't:null',
      ]);
      // One commit LSN per transaction, rising with each: [c, u], [d], [d, c], [t, t, t].
      const commits = inCommitOrder.map((e) => e.event.source.commitLsn);
      expect(new Set(commits).size).toBe(4);
      expect([commits[0] === commits[1], commits[3] === commits[4], new Set(commits.slice(5)).size]).toEqual([
        true,
        true,
        1,
      ]);
      // Each partition holds its events in commit order: what a consumer of one partition reads.
      for (const p of [0, 1, 2]) {
        const read = stream.filter((e) => e.partition === p);
        expect(read.map(label), `partition ${p}`).toEqual([...read].sort(byCommit).map(label));
      }
      const tx = stream.filter((e) => e.event.after?.id === 100 || e.event.before?.id === 100);
      expect(tx.map((e) => [e.event.op, e.event.source.seq])).toEqual([
        ['c', 0],
        ['u', 1],
      ]);
      expect(tx[0]!.event.source.commitLsn).toBe(tx[1]!.event.source.commitLsn);
      expect(tx[0]!.event.source.txId).toBeGreaterThan(0);
      expect(tx[0]!.event.source.commitTs).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
      const truncates = stream.filter((e) => e.event.op === 't');
      expect(new Set(truncates.map((e) => e.partition))).toEqual(new Set([0, 1, 2]));

      // The slot's confirmed position reaches the last commit once Kafka has it all.
      const lastCommit = parseLsn(truncates[0]!.event.source.commitLsn);
      let confirmed = 0n;
      for (let i = 0; i < 100 && confirmed <= lastCommit; i++) {
        confirmed = await withClient(db.url, async (c) =>
          parseLsn((await readSlot(c, config.source.slot)).confirmedFlushLsn!),
        );
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(confirmed).toBeGreaterThan(lastCommit);
    } finally {
      await run.stop();
      await dropSlot(config.source.slot);
    }
  });

  it('marks an unchanged TOASTed value instead of nulling it, and fills it from the old row with REPLICA IDENTITY FULL', async () => {
    await withClient(db.url, async (c) => {
      await c.query('CREATE TABLE docs (id int PRIMARY KEY, body jsonb NOT NULL, n int NOT NULL)');
      await c.query('CREATE TABLE docs_full (id int PRIMARY KEY, body jsonb NOT NULL, n int NOT NULL)');
      await c.query('ALTER TABLE docs_full REPLICA IDENTITY FULL');
    });
    const config = sourceConfig(db.url, ['public.docs', 'public.docs_full'], { snapshot: 'never' });
    const run = startSource(config, kafka);
    try {
      // Wait until streaming: the slot exists and is active.
      await withClient(db.url, async (c) => {
        for (let i = 0; i < 100; i++) {
          const s = await readSlot(c, config.source.slot);
          if (s.active) return;
          await new Promise((r) => setTimeout(r, 100));
        }
      });
      // ~8 KB of incompressible text: stored out of line (TOASTed).
      const big = JSON.stringify({
        notes: Array.from({ length: 400 }, (_, i) => `${i}:${Math.random().toString(36)}`).join(' '),
      });
      await withClient(db.url, async (c) => {
        for (const t of ['docs', 'docs_full']) {
          await c.query(`INSERT INTO ${t} VALUES (1, $1, 0)`, [big]);
          await c.query(`UPDATE ${t} SET n = 1 WHERE id = 1`);
        }
      });
      const docs = events(await readTopics(kafka, [topicOf(config, 'docs')], (m) => m.length >= 2));
      const update = docs.find((e) => e.event.op === 'u')!;
      expect(update.event.after).toEqual({ id: 1, n: 1 });
      expect(update.event.after).not.toHaveProperty('body');
      expect(update.event.source.unchangedToast).toEqual(['body']);

      const full = events(await readTopics(kafka, [topicOf(config, 'docs_full')], (m) => m.length >= 2));
      const fullUpdate = full.find((e) => e.event.op === 'u')!;
      expect(fullUpdate.event.source.unchangedToast).toBeUndefined();
      expect(fullUpdate.event.after?.body).toEqual(JSON.parse(big));
      expect(fullUpdate.event.before?.n).toBe(0);
    } finally {
      await run.stop();
      await dropSlot(config.source.slot);
    }
  });

  it('refuses a table with no primary key and no REPLICA IDENTITY FULL, naming the fix', async () => {
    await withClient(db.url, (c) => c.query('CREATE TABLE keyless (a int, b text)'));
    const config = sourceConfig(db.url, ['public.keyless']);
    const run = startSource(config, kafka);
    await expect(run.running).rejects.toMatchObject({
      code: 'PREFLIGHT_FAILED',
      message: expect.stringMatching(/public\.keyless has no primary key.*REPLICA IDENTITY FULL/s),
    });
    await expect(run.running).rejects.toThrow(/ALTER TABLE "public"\."keyless" ADD PRIMARY KEY/);
  });
});
