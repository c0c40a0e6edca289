import { describe, expect, it } from 'vitest';
import { readSlot } from '../../../connectors/pgoutput-source/preflight.js';
import { EMIT_HEARTBEAT_SQL, heartbeatPrefix } from '../../../src/contracts/topics.js';
import { parseLsn } from '../../../src/core/lsn.js';
import { events, readTopics } from '../../helpers/kafka-read.js';
import { startPrivateKafka } from '../../helpers/private-kafka.js';
import { startPrivatePostgres } from '../../helpers/private-postgres.js';
import { dropSlot, freshDatabase, testKafka, withClient } from '../../helpers/resources.js';
import { sourceConfig, startSource, topicOf } from '../../helpers/source-harness.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const kafka = testKafka();

async function slotOf(url: string, slot: string) {
  return withClient(url, (c) => readSlot(c, slot));
}

// Streaming, not merely active: the slot is also active while the source creates it on another connection, and
// between that and START_REPLICATION it is briefly inactive. Returns the streaming walsender's pid.
async function waitStreaming(url: string, slot: string): Promise<number> {
  for (let i = 0; i < 300; i++) {
    const pid = await withClient(url, async (c) => {
      const r = await c.query<{ pid: number }>(
        `SELECT r.pid FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid
          WHERE s.slot_name = $1 AND r.state = 'streaming'`,
        [slot],
      );
      return r.rows[0]?.pid;
    });
    if (pid !== undefined) return pid;
    await sleep(100);
  }
  throw new Error(`slot ${slot} never streamed`);
}

async function currentLsn(url: string): Promise<bigint> {
  return withClient(url, async (c) =>
    parseLsn((await c.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l),
  );
}

const idsIn = (msgs: Awaited<ReturnType<typeof readTopics>>) =>
  new Set(events(msgs).map((e) => (e.event.after as { id: number } | null)?.id));

describe('source under outages', () => {
  it('Kafka stopped for 20 s: retries with backoff, never advances the slot past undelivered changes, resumes by itself', async () => {
    const db = await freshDatabase('kafkadown');
    await withClient(db.url, (c) => c.query('CREATE TABLE t (id int PRIMARY KEY)'));
    const broker = await startPrivateKafka();
    const kafka = testKafka(undefined, { brokers: [broker.brokers] });
    const config = sourceConfig(
      db.url,
      ['public.t'],
      { snapshot: 'never', heartbeatIntervalMs: 0 },
      broker.brokers,
    );
    const topic = topicOf(config, 't');
    const source = startSource(config, kafka);
    try {
      await waitStreaming(db.url, config.source.slot);
      await withClient(db.url, (c) => c.query('INSERT INTO t VALUES (1)'));
      await readTopics(kafka, [topic], (m) => idsIn(m).has(1));

      const before = await currentLsn(db.url);
      await broker.stop();
      await withClient(db.url, (c) => c.query('INSERT INTO t SELECT g FROM generate_series(2, 11) g'));
      // The slot may move past WAL with nothing published (another session's transaction in this database, an
      // autoanalyze), never to the commit of the undelivered insert: that is checked against its commit LSN below.
      let confirmedWhileDown = 0n;
      for (let s = 0; s < 20; s++) {
        await sleep(1_000);
        const confirmed = parseLsn((await slotOf(db.url, config.source.slot)).confirmedFlushLsn!);
        if (confirmed > confirmedWhileDown) confirmedWhileDown = confirmed;
      }
      await broker.start();

      const after = await readTopics(
        kafka,
        [topic],
        (m) => [...Array(11).keys()].every((i) => idsIn(m).has(i + 1)),
        60_000,
      );
      expect([...idsIn(after)].sort((a, b) => a! - b!)).toEqual([...Array(11).keys()].map((i) => i + 1));
      const undelivered = events(after).find((e) => (e.event.after as { id: number } | null)?.id === 2)!;
      expect(confirmedWhileDown).toBeLessThan(parseLsn(undelivered.event.source.commitLsn));
      const inserted = await currentLsn(db.url);
      let confirmed = 0n;
      for (let i = 0; i < 100 && confirmed < inserted; i++) {
        await sleep(200);
        confirmed = parseLsn((await slotOf(db.url, config.source.slot)).confirmedFlushLsn!);
      }
      expect(confirmed).toBeGreaterThan(before);
    } finally {
      await broker.start();
      await source.stop();
      await dropSlot(db.url, config.source.slot);
      await broker.destroy();
    }
  }, 180_000);

  it('PostgreSQL restarted: the source reconnects and streams on', async () => {
    const cluster = await startPrivatePostgres();
    const db = { url: cluster.url() };
    await withClient(db.url, (c) => c.query('CREATE TABLE t (id int PRIMARY KEY)'));
    const config = sourceConfig(db.url, ['public.t'], { snapshot: 'never', heartbeatIntervalMs: 0 });
    const topic = topicOf(config, 't');
    const source = startSource(config, kafka);
    try {
      await waitStreaming(db.url, config.source.slot);
      await withClient(db.url, (c) => c.query('INSERT INTO t VALUES (1)'));
      await readTopics(kafka, [topic], (m) => idsIn(m).has(1));
      await cluster.restart();
      for (let i = 0; i < 100; i++) {
        try {
          await withClient(db.url, (c) => c.query('SELECT 1'));
          break;
        } catch {
          await sleep(200);
        }
      }
      await withClient(db.url, (c) => c.query('INSERT INTO t VALUES (2)'));
      const msgs = await readTopics(kafka, [topic], (m) => idsIn(m).has(2), 60_000);
      expect(idsIn(msgs).has(2)).toBe(true);
      expect(source.source.progress().role).toBe('leader');
    } finally {
      await source.stop();
      await cluster.destroy();
    }
  }, 120_000);

  it('with wal_sender_timeout=5s and 30 s of no traffic the stream stays up (keepalives answered)', async () => {
    const db = await freshDatabase('idle');
    await withClient(db.url, async (c) => {
      await c.query('CREATE TABLE t (id int PRIMARY KEY)');
      await c.query(`ALTER DATABASE ${db.name} SET wal_sender_timeout = '5s'`);
    });
    // No heartbeats and a status period far above the timeout: only answers to the server's keepalives keep it up.
    const config = sourceConfig(db.url, ['public.t'], {
      snapshot: 'never',
      heartbeatIntervalMs: 0,
      statusIntervalMs: 120_000,
    });
    const topic = topicOf(config, 't');
    const source = startSource(config, kafka);
    try {
      const pid = await waitStreaming(db.url, config.source.slot);
      const timeout = await withClient(db.url, async (c) => {
        const r = await c.query<{ t: string }>(
          "SELECT setting || unit AS t FROM pg_settings WHERE name = 'wal_sender_timeout'",
        );
        return r.rows[0]!.t;
      });
      expect(timeout).toBe('5000ms');
      await sleep(30_000);
      expect((await slotOf(db.url, config.source.slot)).activePid).toBe(pid);
      await withClient(db.url, (c) => c.query('INSERT INTO t VALUES (1)'));
      const msgs = await readTopics(kafka, [topic], (m) => idsIn(m).has(1));
      expect(idsIn(msgs).has(1)).toBe(true);
    } finally {
      await source.stop();
      await dropSlot(db.url, config.source.slot);
    }
  }, 120_000);

  it('heartbeats advance the slot while only an unpublished table is written', async () => {
    const db = await freshDatabase('heartbeat');
    await withClient(db.url, async (c) => {
      await c.query('CREATE TABLE t (id int PRIMARY KEY)');
      await c.query('CREATE TABLE other (id serial PRIMARY KEY, payload text)');
    });
    const config = sourceConfig(db.url, ['public.t'], { snapshot: 'never', heartbeatIntervalMs: 300 });
    const source = startSource(config, kafka);
    try {
      await waitStreaming(db.url, config.source.slot);
      const start = parseLsn((await slotOf(db.url, config.source.slot)).confirmedFlushLsn!);
      await withClient(db.url, (c) =>
        c.query("INSERT INTO other (payload) SELECT repeat('x', 500) FROM generate_series(1, 2000)"),
      );
      const written = await currentLsn(db.url);
      expect(written).toBeGreaterThan(start);
      let confirmed = start;
      for (let i = 0; i < 150 && confirmed < written; i++) {
        await sleep(200);
        confirmed = parseLsn((await slotOf(db.url, config.source.slot)).confirmedFlushLsn!);
      }
      expect(confirmed).toBeGreaterThanOrEqual(written);
      const beats = await readTopics(
        kafka,
        [heartbeatPrefix(config.kafka.topicPrefix)],
        (m) => m.length >= 2,
      );
      const beat = JSON.parse(beats[0]!.value!) as { lsn: string; sentAt: string };
      expect(beat.lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
      expect(Number.isNaN(Date.parse(beat.sentAt))).toBe(false);
      // Stamped by legacy's clock (microseconds, as EMIT_HEARTBEAT_SQL writes it), not the daemon's (milliseconds).
      expect(beat.sentAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
      // Transactional (it takes a transaction id), so its commit flushes the WAL: in the flushed WAL when it returns,
      // and with it a non-transactional message before it (the waiting fence's marker), not up to wal_writer_delay later.
      await withClient(db.url, async (c) => {
        await c.query('BEGIN');
        const { lsn } = (
          await c.query<{ lsn: string }>(EMIT_HEARTBEAT_SQL, [heartbeatPrefix(config.kafka.topicPrefix)])
        ).rows[0]!;
        const xid = await c.query('SELECT pg_current_xact_id_if_assigned() IS NOT NULL AS assigned');
        expect(xid.rows[0]!.assigned).toBe(true);
        await c.query('COMMIT');
        const flushed = await c.query('SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn AS ok', [lsn]);
        expect(flushed.rows[0]!.ok).toBe(true);
      });
    } finally {
      await source.stop();
      await dropSlot(db.url, config.source.slot);
    }
  }, 60_000);
});
