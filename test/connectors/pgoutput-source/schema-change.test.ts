import { describe, expect, it } from 'vitest';
import { readSlot } from '../../../connectors/pgoutput-source/preflight.js';
import { parseLsn } from '../../../src/core/lsn.js';
import { events, type ReadMessage, readTopics } from '../../helpers/kafka-read.js';
import { dropSlot, freshDatabase, testKafka, withClient } from '../../helpers/resources.js';
import { sourceConfig, startSource, topicOf } from '../../helpers/source-harness.js';

const kafka = testKafka();

/** Waits until streaming: the slot exists and a walsender holds it. */
async function waitForActiveSlot(url: string, slot: string) {
  await withClient(url, async (c) => {
    for (let i = 0; i < 100; i++) {
      const s = await readSlot(c, slot);
      if (s.exists && s.active) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`slot ${slot} never became active`);
  });
}

/** Change events in commit order (then order within the transaction), across the topic's partitions. */
function inCommitOrder(messages: ReadMessage[]) {
  return events(messages)
    .map((e) => e.event)
    .sort((x, y) => {
      const a = parseLsn(x.source.commitLsn);
      const b = parseLsn(y.source.commitLsn);
      return a < b ? -1 : a > b ? 1 : x.source.seq - y.source.seq;
    })
    .map((e) => ({
      op: e.op,
      before: e.before,
      after: e.after,
      commitLsn: e.source.commitLsn,
      seq: e.source.seq,
    }));
}

describe('pgoutput source: schema changes', () => {
  it('ADD COLUMN (with a default) and DROP COLUMN while streaming: later events carry the new shape, earlier ones the old', async () => {
    const db = await freshDatabase('ddl_live');
    await withClient(db.url, (c) => c.query('CREATE TABLE t (id int PRIMARY KEY, a text, b int)'));
    const config = sourceConfig(db.url, ['public.t'], { snapshot: 'never' });
    const topic = topicOf(config, 't');
    const run = startSource(config, kafka);
    try {
      await waitForActiveSlot(db.url, config.source.slot);
      await withClient(db.url, async (c) => {
        await c.query("INSERT INTO t VALUES (1, 'one', 10)");
        await c.query("ALTER TABLE t ADD COLUMN c text NOT NULL DEFAULT 'dflt'");
        await c.query("INSERT INTO t VALUES (2, 'two', 20, 'x')");
        await c.query("INSERT INTO t (id, a, b) VALUES (3, 'three', 30)");
        // A row written before the ALTER: the update's new tuple has the default.
        await c.query("UPDATE t SET a = 'uno' WHERE id = 1");
        await c.query('ALTER TABLE t DROP COLUMN b');
        await c.query("INSERT INTO t VALUES (4, 'four', 'y')");
        await c.query("UPDATE t SET c = 'z' WHERE id = 2");
        await c.query('DELETE FROM t WHERE id = 3');
        // New columns of a type the source has never seen (created after it started), and an exact-valued array.
        await c.query("CREATE TYPE level AS ENUM ('low', 'high')");
        await c.query(
          "ALTER TABLE t ADD COLUMN lv level DEFAULT 'high', ADD COLUMN tags int8[] DEFAULT '{1,9223372036854775807}'",
        );
        await c.query("UPDATE t SET a = 'one again' WHERE id = 1");
        await c.query("INSERT INTO t (id, a, c, lv, tags) VALUES (5, 'five', 'w', 'low', '{}')");
      });
      const got = inCommitOrder(await readTopics(kafka, [topic], (m) => m.length >= 9));
      expect(got.map(({ op, before, after }) => ({ op, before, after }))).toStrictEqual([
        // Before the ADD: no `c`.
        { op: 'c', before: null, after: { id: 1, a: 'one', b: 10 } },
        // After the ADD: `c` present (explicit, defaulted, and on an old row's update).
        { op: 'c', before: null, after: { id: 2, a: 'two', b: 20, c: 'x' } },
        { op: 'c', before: null, after: { id: 3, a: 'three', b: 30, c: 'dflt' } },
        { op: 'u', before: null, after: { id: 1, a: 'uno', b: 10, c: 'dflt' } },
        // After the DROP: no `b`.
        { op: 'c', before: null, after: { id: 4, a: 'four', c: 'y' } },
        { op: 'u', before: null, after: { id: 2, a: 'two', c: 'z' } },
        { op: 'd', before: { id: 3 }, after: null },
        // After the second ADD: the enum label and the int8 array, exact.
        {
          op: 'u',
          before: null,
          after: { id: 1, a: 'one again', c: 'dflt', lv: 'high', tags: ['1', '9223372036854775807'] },
        },
        { op: 'c', before: null, after: { id: 5, a: 'five', c: 'w', lv: 'low', tags: [] } },
      ]);
    } finally {
      await run.stop();
      await dropSlot(db.url, config.source.slot);
    }
  });

  it('reads a backlog written across ADD/DROP COLUMN (also inside one transaction) in the shape each change had', async () => {
    const db = await freshDatabase('ddl_backlog');
    await withClient(db.url, (c) => c.query('CREATE TABLE t (id int PRIMARY KEY, a text, b int)'));
    const config = sourceConfig(db.url, ['public.t'], { snapshot: 'never' });
    const topic = topicOf(config, 't');

    // Stream once, then stop: everything below is written while no source runs, so by the time the source reads
    // it the catalog already has the final shape; each change must still come out in the shape it had.
    const first = startSource(config, kafka);
    try {
      await waitForActiveSlot(db.url, config.source.slot);
      // An event through to Kafka: the source is in its streaming loop (see the stop-while-starting test).
      await withClient(db.url, (c) => c.query("INSERT INTO t VALUES (0, 'zero', 0)"));
      await readTopics(kafka, [topic], (m) => m.length >= 1);
    } finally {
      await first.stop();
    }
    await withClient(db.url, async (c) => {
      await c.query("INSERT INTO t VALUES (1, 'one', 10)");
      await c.query('BEGIN');
      await c.query("INSERT INTO t VALUES (2, 'two', 20)");
      await c.query('ALTER TABLE t ADD COLUMN c int NOT NULL DEFAULT 7');
      await c.query("INSERT INTO t VALUES (3, 'three', 30, 8)");
      await c.query('ALTER TABLE t DROP COLUMN b');
      await c.query("INSERT INTO t VALUES (4, 'four', 9)");
      await c.query("UPDATE t SET a = 'uno' WHERE id = 1");
      await c.query('COMMIT');
      await c.query("INSERT INTO t (id, a) VALUES (5, 'five')");
    });

    const run = startSource(config, kafka);
    try {
      // Row 0 may come again after the restart (at least once); it is not what this test is about.
      const got = inCommitOrder(await readTopics(kafka, [topic], (m) => m.length >= 7)).filter(
        (e) => e.after?.id !== 0,
      );
      expect(got.map(({ op, before, after }) => ({ op, before, after }))).toStrictEqual([
        { op: 'c', before: null, after: { id: 1, a: 'one', b: 10 } },
        { op: 'c', before: null, after: { id: 2, a: 'two', b: 20 } },
        { op: 'c', before: null, after: { id: 3, a: 'three', b: 30, c: 8 } },
        { op: 'c', before: null, after: { id: 4, a: 'four', c: 9 } },
        { op: 'u', before: null, after: { id: 1, a: 'uno', c: 7 } },
        { op: 'c', before: null, after: { id: 5, a: 'five', c: 7 } },
      ]);
      // The DDL transaction is one transaction: one commit LSN, positions 0..3 across both ALTERs.
      const tx = got.slice(1, 5);
      expect(new Set(tx.map((e) => e.commitLsn)).size).toBe(1);
      expect(tx.map((e) => e.seq)).toEqual([0, 1, 2, 3]);
    } finally {
      await run.stop();
      await dropSlot(db.url, config.source.slot);
    }
  });

  // Found while writing the backlog test above (stopping a source as soon as its slot is active). Expected to
  // FAIL until pgoutput-source.ts closes its queue for an abort that came before stream() added its listener.
  it('stop() returns when it comes before streaming has begun', async () => {
    const db = await freshDatabase('ddl_stop');
    await withClient(db.url, (c) => c.query('CREATE TABLE t (id int PRIMARY KEY)'));
    const config = sourceConfig(db.url, ['public.t'], { snapshot: 'never' });
    const run = startSource(config, kafka);
    // Right after start: the abort lands while the session is still connecting (before the slot exists).
    const stopped = run.stop().then(() => true);
    let timer: NodeJS.Timeout | undefined;
    const inTime = await Promise.race([
      stopped,
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(false), 15_000);
      }),
    ]);
    clearTimeout(timer);
    try {
      expect(inTime, 'run.stop() had not returned after 15 s: the source kept streaming').toBe(true);
    } finally {
      if (!inTime) {
        // Unstick the source: end its walsender, so its stream fails and run() (aborted) returns.
        await withClient(db.url, async (c) => {
          for (let i = 0; i < 100; i++) {
            const r = await c.query<{ pid: number | null }>(
              'SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = $1',
              [config.source.slot],
            );
            const pid = r.rows[0]?.pid;
            if (pid) {
              await c.query('SELECT pg_terminate_backend($1)', [pid]);
              return;
            }
            await new Promise((res) => setTimeout(res, 100));
          }
        });
        await stopped;
      }
      await dropSlot(db.url, config.source.slot);
    }
  });
});
