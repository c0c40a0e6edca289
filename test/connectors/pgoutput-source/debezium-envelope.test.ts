import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { fencePrefix, heartbeatPrefix } from '../../../src/contracts/topics.js';
import {
  DEBEZIUM_ENVELOPE_FIELDS,
  DEBEZIUM_SOURCE_FIELDS,
  OWN_SOURCE_FIELDS,
} from '../../helpers/debezium-envelope.js';
import { type ReadMessage, readTopics } from '../../helpers/kafka-read.js';
import { dropSlot, freshDatabase, testKafka, withClient } from '../../helpers/resources.js';
import { sourceConfig, startSource, topicOf } from '../../helpers/source-harness.js';

/**
 * What a consumer written for Debezium's PostgreSQL connector (JSON, schemas off) reads from every change topic
 * of a workload that makes every op: the snapshot's `r`, c, u, d with its tombstone, a key change, a truncate, an
 * unchanged TOASTed value — while heartbeats and a fence record are written too. Each message must be a Debezium
 * envelope, field for field in Debezium's order, or a tombstone right after its delete; control traffic must be on
 * its own topics.
 */

const kafka = testKafka();
let db: { name: string; url: string };

beforeAll(async () => {
  db = await freshDatabase('debezium');
});

const int = z.number().int().nonnegative();
const decimalText = z.string().regex(/^\d+$/);
const row = z.record(z.string(), z.unknown());

function envelopeSchema(prefix: string, database: string) {
  const source = z
    .object({
      version: z.string().min(1),
      connector: z.literal('postgresql'),
      name: z.literal(prefix),
      ts_ms: int,
      snapshot: z.enum([
        'true',
        'first',
        'first_in_data_collection',
        'last_in_data_collection',
        'last',
        'false',
      ]),
      db: z.literal(database),
      sequence: z.string().refine((s) => {
        const pair: unknown = JSON.parse(s);
        return (
          Array.isArray(pair) &&
          pair.length === 2 &&
          (pair[0] === null || decimalText.safeParse(pair[0]).success) &&
          decimalText.safeParse(pair[1]).success
        );
      }, 'Debezium sequence: [lastCommitLsn|null, lsn] as decimal strings'),
      ts_us: int,
      ts_ns: z.number().positive(), // beyond 2^53: its digits are checked in the text
      schema: z.literal('public'),
      table: z.string(),
      txId: int.nullable(),
      lsn: int,
      xmin: z.null(),
      origin: z.null(),
      origin_lsn: z.null(),
      commitLsn: z.string().regex(/^[0-9A-F]+\/[0-9A-F]+$/),
      seq: int,
      commitTs: z.string().nullable(),
      unchangedToast: z.array(z.string()).optional(),
    })
    .strict();
  return z
    .object({
      before: row.nullable(),
      after: row.nullable(),
      source,
      transaction: z.null(),
      op: z.enum(['r', 'c', 'u', 'd', 't']),
      ts_ms: int,
      ts_us: int,
      ts_ns: z.number().positive(), // beyond 2^53: its digits are checked in the text
    })
    .strict()
    .superRefine((e, ctx) => {
      const shape: Record<string, [boolean, boolean]> = {
        r: [false, true],
        c: [false, true],
        u: [true, true],
        d: [true, false],
        t: [false, false],
      };
      const [hasBefore, hasAfter] = shape[e.op]!;
      // An update's before is null unless the table has REPLICA IDENTITY FULL (as in Debezium).
      if ((e.before !== null) !== hasBefore && e.op !== 'u')
        ctx.addIssue({ code: 'custom', message: `${e.op}: before` });
      if ((e.after !== null) !== hasAfter) ctx.addIssue({ code: 'custom', message: `${e.op}: after` });
      if ((e.op === 'r') !== (e.source.snapshot !== 'false'))
        ctx.addIssue({ code: 'custom', message: `${e.op} with snapshot ${e.source.snapshot}` });
      if (e.op !== 'r' && (e.source.txId === null || e.source.commitTs === null))
        ctx.addIssue({ code: 'custom', message: 'a streamed change names its transaction' });
      if (Math.floor(e.ts_us / 1000) !== e.ts_ms || Math.floor(e.source.ts_us / 1000) !== e.source.ts_ms)
        ctx.addIssue({ code: 'custom', message: 'ts_us agrees with ts_ms' });
    });
}

/** Fields in order, and the ns fields exactly the µs digits and three zeros (JSON.parse would round them). */
function checkText(value: string, parsed: { ts_us: number; source: { ts_us: number } }) {
  const e = JSON.parse(value) as Record<string, unknown> & { source: Record<string, unknown> };
  expect(Object.keys(e)).toEqual(DEBEZIUM_ENVELOPE_FIELDS);
  const own = Object.keys(e.source).slice(DEBEZIUM_SOURCE_FIELDS.length);
  expect(Object.keys(e.source).slice(0, DEBEZIUM_SOURCE_FIELDS.length)).toEqual(DEBEZIUM_SOURCE_FIELDS);
  expect(own.every((f) => OWN_SOURCE_FIELDS.includes(f))).toBe(true);
  expect(value).toMatch(new RegExp(`"ts_ns":${parsed.source.ts_us}000,`));
  expect(value.endsWith(`"ts_ns":${parsed.ts_us}000}`)).toBe(true);
}

describe('raw change topics, as a Debezium consumer reads them', () => {
  let slot = '';
  afterAll(async () => {
    if (slot) await dropSlot(db.url, slot);
  });

  it('hold only Debezium change events and tombstones (every field, every op); heartbeats and fences are elsewhere', async () => {
    await withClient(db.url, async (c) => {
      await c.query(
        'CREATE TABLE accounts (id int PRIMARY KEY, email text NOT NULL, balance numeric(12,2), body text, born date)',
      );
      await c.query('CREATE TABLE notes (code text PRIMARY KEY, note jsonb)');
      await c.query(
        "INSERT INTO accounts SELECT g, 'a' || g || '@x.test', g * 1.25, NULL, '2000-01-01' FROM generate_series(1, 12) g",
      );
      await c.query(`INSERT INTO notes SELECT 'n' || g, '{"g": 1}' FROM generate_series(1, 5) g`);
    });
    const config = sourceConfig(db.url, ['public.accounts', 'public.notes'], {
      snapshotChunkRows: 5,
      heartbeatIntervalMs: 200,
    });
    slot = config.source.slot;
    const prefix = config.kafka.topicPrefix;
    const topics = [topicOf(config, 'accounts'), topicOf(config, 'notes')];
    const run = startSource(config, kafka);
    let messages: ReadMessage[];
    try {
      await readTopics(kafka, topics, (m) => m.length >= 17);
      await withClient(db.url, async (c) => {
        await c.query('BEGIN');
        // ~10 KB of random hex: stored out of line (TOASTed).
        await c.query(
          "INSERT INTO accounts SELECT 100, 'new@x.test', 1.00, string_agg(md5(random()::text), ''), NULL FROM generate_series(1, 300)",
        );
        await c.query("UPDATE accounts SET email = 'renamed@x.test' WHERE id = 100");
        await c.query("INSERT INTO notes VALUES ('n100', '{\"big\": 12345678901234567890}')");
        await c.query('COMMIT');
        // An unchanged TOASTed body: absent from `after`, listed in unchangedToast.
        await c.query('UPDATE accounts SET balance = 2.00 WHERE id = 100');
        await c.query('DELETE FROM accounts WHERE id = 1');
        await c.query('UPDATE accounts SET id = 200 WHERE id = 2');
        await c.query("DELETE FROM notes WHERE code = 'n1'");
        await c.query(`SELECT pg_logical_emit_message(true, '${fencePrefix(prefix)}', 'cutover-test')`);
        await c.query('TRUNCATE notes');
        await c.query("INSERT INTO notes VALUES ('after', NULL)");
      });
      // 17 snapshot rows; the transaction's 3 changes; the TOAST update; a delete and its tombstone; the key change
      // (d, tombstone, c); notes' delete and tombstone; a truncate on each of notes' 3 partitions; the last insert.
      const expected = 17 + 3 + 1 + 2 + 3 + 2 + 3 + 1;
      messages = await readTopics(kafka, topics, (m) => m.length >= expected, 30_000, 1_000);
      expect(messages).toHaveLength(expected);
      const fence = await readTopics(kafka, [fencePrefix(prefix)], (m) => m.length >= 1);
      expect(fence.map((m) => JSON.parse(m.value!))).toMatchObject([
        { marker: 'fence', cutoverId: 'cutover-test' },
      ]);
      const heartbeats = await readTopics(kafka, [heartbeatPrefix(prefix)], (m) => m.length >= 2);
      expect(heartbeats.length).toBeGreaterThanOrEqual(2);
    } finally {
      await run.stop();
    }

    const schema = envelopeSchema(prefix, db.name);
    const ops = new Map<string, number>();
    const marks: { table: string; seq: number; mark: string }[] = [];
    const byPartition = new Map<string, ReadMessage[]>();
    for (const m of messages) {
      const list = byPartition.get(`${m.topic}/${m.partition}`) ?? [];
      list.push(m);
      byPartition.set(`${m.topic}/${m.partition}`, list);
    }
    for (const list of byPartition.values()) {
      list.sort((a, b) => a.offset - b.offset);
      list.forEach((m, i) => {
        if (m.value === null) {
          // A tombstone: right after the delete of its key, on the same partition.
          const before = list[i - 1];
          expect(before?.value && JSON.parse(before.value).op).toBe('d');
          expect(m.key).toBe(before?.key);
          ops.set('tombstone', (ops.get('tombstone') ?? 0) + 1);
          return;
        }
        const parsed = schema.safeParse(JSON.parse(m.value));
        if (!parsed.success) throw new Error(`${m.topic}@${m.offset}: ${parsed.error.message}\n${m.value}`);
        const e = parsed.data;
        checkText(m.value, e);
        ops.set(e.op, (ops.get(e.op) ?? 0) + 1);
        if (e.op === 'r') marks.push({ table: e.source.table, seq: e.source.seq, mark: e.source.snapshot });
        if (e.op === 'd') expect(list[i + 1]?.value).toBeNull();
        // The key is the primary key's columns, as Debezium's.
        if (e.op !== 't') {
          const image = (e.after ?? e.before)!;
          const pk = e.source.table === 'accounts' ? { id: image.id } : { code: image.code };
          expect(JSON.parse(m.key!)).toEqual(pk);
        } else expect(m.key).toBeNull();
        if (e.op === 'u' && e.after!.id === 100 && e.after!.balance === '2.00') {
          expect(e.source.unchangedToast).toEqual(['body']);
          expect(Object.hasOwn(e.after!, 'body')).toBe(false);
        }
      });
    }
    expect(Object.fromEntries(ops)).toEqual({ r: 17, c: 4, u: 2, d: 3, tombstone: 3, t: 3 });

    // Snapshot marks: each table's first and last rows, and exactly one first and one last of the whole snapshot.
    for (const [table, rows] of [
      ['accounts', 12],
      ['notes', 5],
    ] as const) {
      const mine = marks.filter((m) => m.table === table).sort((a, b) => a.seq - b.seq);
      expect(mine).toHaveLength(rows);
      expect(['first', 'first_in_data_collection']).toContain(mine[0]!.mark);
      expect(['last', 'last_in_data_collection']).toContain(mine.at(-1)!.mark);
      expect(mine.slice(1, -1).every((m) => m.mark === 'true')).toBe(true);
    }
    expect(marks.filter((m) => m.mark === 'first')).toHaveLength(1);
    expect(marks.filter((m) => m.mark === 'last')).toHaveLength(1);
  });
});
