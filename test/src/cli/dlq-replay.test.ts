import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresSink } from '../../../connectors/postgres-sink/index.js';
import { REPLAY_MARKER } from '../../../src/contracts/dead-letter.js';
import { changeTopic, dlqTopic } from '../../../src/contracts/topics.js';
import {
  type TransformModule,
  TransformRejection,
  type V2Entity,
} from '../../../src/contracts/transform-api.js';
import { silentLogger } from '../../../src/core/logger.js';
import { type DeadLetter, listDeadLetters } from '../../../src/ops/dlq/dead-letters.js';
import { sinkOptions } from '../../../src/pipeline/stage-options.js';
import { bookingsModule } from '../../../transforms/bookings.js';
import { transformModules } from '../../../transforms/index.js';
import { v2Model } from '../../../transforms/v2-model.js';
import { runCli, waitFor } from '../../helpers/daemon.js';
import { readTopics } from '../../helpers/kafka-read.js';
import {
  compareTarget,
  freshPipeline,
  startPipeline,
  summary,
  waitForConvergence,
} from '../../helpers/pipeline-harness.js';
import { dropSlot, testKafka, withClient } from '../../helpers/resources.js';
import { isClean } from '../../helpers/v2-oracle.js';

/**
 * `replicator dlq replay` end to end. Three bookings are dead-lettered for three causes, each then fixed:
 * - VIP-1: a transform bug (the deployed bookings module rejects VIP bookings); the module is corrected.
 * - HUGE-1: the target refuses it (a CHECK constraint); the constraint is dropped.
 * - LOST-1: invalid data (an unknown status); the legacy row is repaired, which streams by itself.
 * After the fixes, `dlq replay` re-publishes the three letters: VIP-1 and HUGE-1 reach V2 exactly once; LOST-1's
 * old version does not overwrite the repaired row and is not dead-lettered again; the three letters are marked
 * replayed (`dlq list` no longer shows them, `--all` does) and a second replay sends nothing.
 */

const kafka = testKafka();
let env: Awaited<ReturnType<typeof freshPipeline>>;
let source: ReturnType<typeof startPipeline> | undefined;
let sink: { stop: () => Promise<void> } | undefined;
let configFile: string;

/** The bookings module as deployed before the fix: it rejects VIP bookings (the bug). */
const buggyBookings: TransformModule = {
  ...bookingsModule,
  transform: (change) => {
    const reference = change.after?.bookingReference;
    if (typeof reference === 'string' && reference.startsWith('VIP-')) {
      return {
        ok: false,
        rejection: new TransformRejection(
          'BOOKING_VIP_UNSUPPORTED',
          `booking ${reference}: VIP not supported`,
        ),
      };
    }
    return bookingsModule.transform(change);
  },
};

/** The sink stage in this process, with these transform modules. */
function startSink(modules: readonly TransformModule[]) {
  const controller = new AbortController();
  const logger = silentLogger();
  const s = new PostgresSink(sinkOptions(env.config, { modules, model: v2Model, kafka, logger }));
  const running = s.run(controller.signal);
  running.catch(() => {});
  return {
    stop: async () => {
      controller.abort();
      await running;
    },
  };
}

const contact = (email: string) =>
  JSON.stringify({ email, firstName: 'Ada', lastName: 'Lovelace', phone: '+44 1', company: 'Engines' });

async function legacy(sql: string, params: unknown[] = []) {
  await withClient(env.legacyUrl, (c) => c.query(sql, params));
}

async function target<T>(sql: string, params: unknown[] = []): Promise<T[]> {
  return withClient(env.targetUrl, async (c) => (await c.query(sql, params)).rows as T[]);
}

const bookingIds = {
  vip: '00000000-0000-4000-8000-00000000d001',
  huge: '00000000-0000-4000-8000-00000000d002',
  lost: '00000000-0000-4000-8000-00000000d003',
  ok: '00000000-0000-4000-8000-00000000d004',
};

/** V2 rows (bookings and payments) of a legacy booking id. */
async function v2Rows(id: string) {
  return {
    bookings: (await target<{ n: number }>('SELECT count(*)::int AS n FROM bookings WHERE id = $1', [id]))[0]!
      .n,
    payments: (
      await target<{ n: number }>('SELECT count(*)::int AS n FROM payments WHERE booking_id = $1', [id])
    )[0]!.n,
  };
}

async function cli(...args: string[]) {
  const r = await runCli([...args, '--config', configFile], { REPLICATOR_LOG_LEVEL: 'error' });
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
}

beforeAll(async () => {
  env = await freshPipeline('dlqreplay');
  const dir = mkdtempSync(join(tmpdir(), 'dlq-replay-'));
  configFile = join(dir, 'config.json');
  const c = env.config;
  writeFileSync(
    configFile,
    JSON.stringify({
      source: {
        url: c.source.url,
        tables: c.source.tables.map((t) => `${t.schema}.${t.table}`),
        slot: c.source.slot,
        publication: c.source.publication,
      },
      target: { url: env.targetUrl },
      kafka: { brokers: c.kafka.brokers, topicPrefix: c.kafka.topicPrefix, partitions: c.kafka.partitions },
      sink: { groupId: c.sink.groupId },
    }),
  );
  source = startPipeline(env.config, 'source');
});

afterAll(async () => {
  await sink?.stop();
  await source?.stop();
  if (env) await dropSlot(env.legacyUrl, env.config.source.slot);
});

describe('replicator dlq replay', () => {
  it('after each cause is fixed, a replayed letter reaches V2 exactly once, a superseded one changes nothing, and each is marked replayed', async () => {
    sink = startSink([buggyBookings, ...transformModules.filter((m) => m.name !== bookingsModule.name)]);
    await target('ALTER TABLE bookings ADD CONSTRAINT amount_cap CHECK (amount < 100000)');
    await legacy(
      `INSERT INTO bookings (id, "bookingReference", "contactDetails", status, "finalAmount", "paymentDate", "paymentMethod", "createdAt", "updatedAt") VALUES
       ($1, 'VIP-1', $5, 'PAID', 42.00, '2024-03-01T10:00:00Z', 'card', '2024-03-01T09:00:00Z', '2024-03-01T10:00:00Z'),
       ($2, 'HUGE-1', $6, 'PENDING', 200000, NULL, NULL, '2024-03-02T09:00:00Z', '2024-03-02T09:00:00Z'),
       ($3, 'LOST-1', $7, 'LOST', 12.00, NULL, NULL, '2024-03-03T09:00:00Z', '2024-03-03T09:00:00Z'),
       ($4, 'OK-1', $7, 'PENDING', 7.00, NULL, NULL, '2024-03-04T09:00:00Z', '2024-03-04T09:00:00Z')`,
      [
        bookingIds.vip,
        bookingIds.huge,
        bookingIds.lost,
        bookingIds.ok,
        contact('vip@example.com'),
        contact('huge@example.com'),
        contact('lost@example.com'),
      ],
    );
    const dlq = dlqTopic(env.config.kafka.topicPrefix);
    const first = await waitFor('three dead letters', async () => {
      const letters = await listDeadLetters(kafka, dlq, { idleMs: 500 });
      return letters.length >= 3 ? letters : undefined;
    });
    const byRef = (letters: DeadLetter[]) =>
      Object.fromEntries(
        letters.map((d) => [
          (JSON.parse(d.value!.toString()) as { after: { bookingReference: string } }).after.bookingReference,
          d,
        ]),
      );
    expect(
      Object.entries(byRef(first))
        .map(([ref, d]) => [ref, d.code])
        .sort(),
    ).toEqual([
      ['HUGE-1', '23514'],
      ['LOST-1', 'BOOKING_UNKNOWN_STATUS'],
      ['VIP-1', 'BOOKING_VIP_UNSUPPORTED'],
    ]);
    await waitFor('OK-1 in V2', async () =>
      (await v2Rows(bookingIds.ok)).bookings === 1 ? true : undefined,
    );

    // The fixes: the corrected module deployed (the sink restarted with it), the constraint dropped, the legacy
    // row repaired (that change streams by itself).
    await sink.stop();
    sink = startSink(transformModules);
    await target('ALTER TABLE bookings DROP CONSTRAINT amount_cap');
    await legacy(
      `UPDATE bookings SET status = 'PAID', "paymentDate" = "createdAt", "paymentMethod" = 'card' WHERE id = $1`,
      [bookingIds.lost],
    );
    await waitFor('the repaired LOST-1 in V2', async () =>
      (await v2Rows(bookingIds.lost)).payments === 1 ? true : undefined,
    );
    // Before the replay, V2 lacks exactly the two rows only a replay can bring.
    const before = await compareTarget(env.legacyUrl, env.targetUrl);
    expect(before.find((d) => d.entity === 'bookings')?.missing.sort(), summary(before)).toEqual(
      [bookingIds.vip, bookingIds.huge].map((id) => JSON.stringify([id])).sort(),
    );
    expect(await cli('dlq', 'list')).toMatch(/^3 dead letter\(s\)$/m);

    // The replay, through the CLI.
    const replayed = await cli('dlq', 'replay');
    expect(replayed).toMatch(/^replayed 3 dead letter\(s\)$/m);
    const diff = await waitForConvergence(env.legacyUrl, env.targetUrl, 60_000);
    expect(isClean(diff), summary(diff)).toBe(true);
    // Exactly once: one booking and one payment each (VIP-1 is paid; HUGE-1 pending has none).
    expect(await v2Rows(bookingIds.vip)).toEqual({ bookings: 1, payments: 1 });
    expect(await v2Rows(bookingIds.huge)).toEqual({ bookings: 1, payments: 0 });
    expect(await v2Rows(bookingIds.lost)).toEqual({ bookings: 1, payments: 1 });
    const [vipUser] = await target<{ total_bookings: number; total_spent: string }>(
      "SELECT total_bookings, total_spent FROM users WHERE email = 'vip@example.com'",
    );
    expect(vipUser).toEqual({ total_bookings: 1, total_spent: '42.00' });
    const [lost] = await target<{ status: string }>('SELECT status FROM bookings WHERE id = $1', [
      bookingIds.lost,
    ]);
    expect(lost?.status).toBe('PAID');

    // Every replayed change consumed: the sink's stored offsets reached the end of the bookings topic.
    const bookingsTopic = changeTopic(env.config.kafka.topicPrefix, 'public', 'bookings');
    await waitFor('the sink at the end of the bookings topic', async () => {
      const admin = kafka.admin();
      await admin.connect();
      try {
        const ends = (await admin.fetchTopicOffsets(bookingsTopic)).filter((p) => Number(p.high) > 0);
        const stored = await target<{ partition: number; n: string }>(
          'SELECT partition, next_offset::text AS n FROM replicator.sink_offsets WHERE group_id = $1 AND topic = $2',
          [env.config.sink.groupId, bookingsTopic],
        );
        const at = new Map(stored.map((r) => [r.partition, r.n]));
        return ends.every((p) => at.get(p.partition) === p.high) ? true : undefined;
      } finally {
        await admin.disconnect();
      }
    });
    // Marked replayed: hidden from `dlq list`, shown by `--all` with where each went; no letter is new (LOST-1's
    // replayed old version, superseded by the repair, is not dead-lettered again).
    expect(await cli('dlq', 'list')).toMatch(/^0 dead letter\(s\)$/m);
    const all = (await cli('dlq', 'list', '--all', '--json'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as DeadLetter & { value: string });
    expect(all.map((d) => d.id).sort()).toEqual(first.map((d) => d.id).sort());
    for (const d of all) expect(d.replayed?.to, d.id).toMatch(new RegExp(`^${d.sourceTopic}/\\d+@\\d+$`));
    const records = await readTopics(kafka, [dlq], (m) => m.length >= 6, 30_000, 1_000);
    expect(
      records
        .filter((m) => m.headers[REPLAY_MARKER.of])
        .map((m) => m.headers[REPLAY_MARKER.of])
        .sort(),
    ).toEqual(first.map((d) => d.id).sort());
    expect(records).toHaveLength(6);

    // A second replay sends nothing: every letter is marked.
    expect(await cli('dlq', 'replay')).toMatch(/^replayed 0 dead letter\(s\)$/m);
    const entities: V2Entity[] = ['bookings', 'payments', 'users'];
    const after = await compareTarget(env.legacyUrl, env.targetUrl);
    expect(isClean(after.filter((d) => entities.includes(d.entity))), summary(after)).toBe(true);
  }, 180_000);
});
