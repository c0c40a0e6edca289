import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JsonRow } from '../../../../src/contracts/transform-api.js';
import { silentLogger } from '../../../../src/core/logger.js';
import { finalVerify, startFinalVerify } from '../../../../src/ops/cutover/final-verify.js';
import { runDeltaVerify, startDeltaVerify } from '../../../../src/ops/verify/delta-verify.js';
import { runVerify, sinkOf } from '../../../../src/ops/verify/verify.js';
import { lastCleanFullRun } from '../../../../src/ops/verify/verify-store.js';
import { LegacyWorkload } from '../../../../src/workload/legacy-workload.js';
import {
  freshPipeline,
  startPipeline,
  summary,
  waitForConvergence,
} from '../../../helpers/pipeline-harness.js';
import { dropSlot, testKafka, withClient } from '../../../helpers/resources.js';
import { isClean } from '../../../helpers/v2-oracle.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const workload = new LegacyWorkload({ seed: 11, customers: 40, shops: 2, invalidShare: 0, bigNotesBytes: 0 });
let env: Awaited<ReturnType<typeof freshPipeline>>;
let pipeline: ReturnType<typeof startPipeline>;

const legacy = (sql: string, params: unknown[] = []) =>
  withClient(env.legacyUrl, async (c) => (await c.query(sql, params)).rows as JsonRow[]);
const target = (sql: string, params: unknown[] = []) =>
  withClient(env.targetUrl, async (c) => (await c.query(sql, params)).rows as JsonRow[]);

async function converged() {
  const diff = await waitForConvergence(env.legacyUrl, env.targetUrl);
  expect(isClean(diff), summary(diff)).toBe(true);
}

const fullVerify = () =>
  runVerify({
    legacyUrl: env.legacyUrl,
    targetUrl: env.targetUrl,
    recheck: { sink: sinkOf(env.config, testKafka()), timeoutMs: 30_000 },
    logger: silentLogger(),
  });

beforeAll(async () => {
  env = await freshPipeline('delta');
  await withClient(env.legacyUrl, async (c) => {
    for (const w of workload.seed(200)) await c.query(w.sql, w.params);
  });
  pipeline = startPipeline(env.config);
  await converged();
});

afterAll(async () => {
  await pipeline?.stop();
  if (env) await dropSlot(env.legacyUrl, env.config.source.slot);
});

describe('delta verify (the cutover final verify of what changed since the last clean full verify)', () => {
  it('compares only the rows of changed legacy rows — a moved email’s old user and a deleted row’s V2 rows included — and finds drift in them', async () => {
    const full = await fullVerify();
    expect(full.clean).toBe(true);
    const base = await withClient(env.targetUrl, (c) => lastCleanFullRun(c));
    expect(base?.id).toBe(full.runId);

    // Three legacy changes after it: an email moved to a new user, a booking deleted, a status changed.
    const [moved, deleted, updated, untouched] = (await target(
      `SELECT b.id, u.email FROM bookings b JOIN users u ON u.id = b.user_id
        WHERE (SELECT count(*) FROM bookings o WHERE o.user_id = b.user_id) >= 2
        ORDER BY b.id LIMIT 4`,
    )) as { id: string; email: string }[];
    const deletedRow = (await target('SELECT * FROM bookings WHERE id = $1', [deleted!.id]))[0]!;
    await legacy(
      `UPDATE bookings SET "contactDetails" = jsonb_set("contactDetails", '{email}', '"delta-moved@example.com"') WHERE id = $1`,
      [moved!.id],
    );
    await legacy('DELETE FROM bookings WHERE id = $1', [deleted!.id]);
    await legacy(
      `UPDATE bookings SET status = CASE WHEN status = 'CANCELLED' THEN 'PAID' ELSE 'CANCELLED' END WHERE id = $1`,
      [updated!.id],
    );
    await converged();

    const clean = await runDeltaVerify({
      legacyUrl: env.legacyUrl,
      targetUrl: env.targetUrl,
      since: base!.settledLsn,
      logger: silentLogger(),
    });
    expect(clean.clean, JSON.stringify(clean.drift.map((d) => d.diff))).toBe(true);
    expect(clean.legacyRows).toBe(3);
    const v2Rows = Number((await target('SELECT count(*)::int AS n FROM bookings'))[0]!.n);
    // Each changed booking: itself, its payment, its users (the moved one: old and new), a few more at most.
    expect(clean.keys).toBeGreaterThanOrEqual(8);
    expect(clean.keys).toBeLessThan(20);
    expect(v2Rows).toBeGreaterThan(150);

    // The cutover's choice (cutover.finalVerify: auto): the delta while it reads few of the rows the full verify
    // counted (3 changed rows and their users' others, of ~225 legacy rows), else the full one.
    const auto = await finalVerify(env.config);
    expect(auto.summary).toMatch(
      /^delta since .*: 3 legacy row\(s\) changed, \d+ V2 row\(s\) compared \(0 by value\) in [\d.]+ s \([\d.]+ s after the drain: early \d+ ms, lineage \d+ ms, drained \d+ ms, rows \d+ ms, compare \d+ ms\), all match$/,
    );
    expect(auto.clean).toBe(true);
    expect((await finalVerify(env.config, { full: true })).summary).toMatch(
      /^full \(asked for\): \d+ rows match \([\d.]+ s after the drain: legacy side \d+ ms, target hashes \d+ ms, compare \d+ ms\)$/,
    );

    // Drift in what changed is found; a row nothing changed is the next full verify's.
    await target('UPDATE users SET total_bookings = total_bookings + 7 WHERE email = $1', [moved!.email]);
    await target('INSERT INTO bookings SELECT * FROM json_populate_record(NULL::bookings, $1)', [
      JSON.stringify(deletedRow),
    ]);
    await target('UPDATE bookings SET amount = amount + 1 WHERE id = ANY($1)', [
      [updated!.id, untouched!.id],
    ]);
    const drifted = await runDeltaVerify({
      legacyUrl: env.legacyUrl,
      targetUrl: env.targetUrl,
      since: base!.settledLsn,
      logger: silentLogger(),
    });
    const found = drifted.drift.map((d) => `${d.entity} ${d.diff.kind} ${JSON.stringify(d.diff.key)}`).sort();
    const userId = (await target('SELECT id FROM users WHERE email = $1', [moved!.email]))[0]!.id;
    expect(found).toEqual(
      [
        `bookings different {"id":"${updated!.id}"}`,
        `bookings extra {"id":"${deleted!.id}"}`,
        `users different {"id":"${userId}"}`,
      ].sort(),
    );
    const after = await fullVerify();
    const differing = after.entities.flatMap((e) =>
      e.samples.map((s) => `${s.entity} ${s.kind} ${s.key.id}`),
    );
    expect(differing).toContain(`bookings different ${untouched!.id}`);

    // Tampering undone: the next test starts from a clean target.
    await target('UPDATE users SET total_bookings = total_bookings - 7 WHERE email = $1', [moved!.email]);
    await target('DELETE FROM bookings WHERE id = $1', [deleted!.id]);
    await target('UPDATE bookings SET amount = amount - 1 WHERE id = ANY($1)', [
      [updated!.id, untouched!.id],
    ]);
  }, 120_000);

  it('begun before the drain ends (the cutover begins it at the fence): what the sink applies after it began is compared too', async () => {
    const full = await fullVerify();
    expect(full.clean).toBe(true);
    const since = (await withClient(env.targetUrl, (c) => lastCleanFullRun(c)))!.settledLsn;
    const [early, late, gone] = (await target(
      `SELECT b.id, u.email FROM bookings b JOIN users u ON u.id = b.user_id
        WHERE (SELECT count(*) FROM bookings o WHERE o.user_id = b.user_id) >= 2
        ORDER BY b.id DESC LIMIT 3`,
    )) as { id: string; email: string }[];
    // Applied before the verify begins.
    await legacy(
      `UPDATE bookings SET status = CASE WHEN status = 'CANCELLED' THEN 'PAID' ELSE 'CANCELLED' END WHERE id = $1`,
      [early!.id],
    );
    await converged();
    const goneRow = (await target('SELECT * FROM bookings WHERE id = $1', [gone!.id]))[0]!;

    // Committed in legacy but applied only after the verify began: a booking moving to the email of a user it
    // already looked up, and a deletion.
    await pipeline.stop();
    await legacy(
      `UPDATE bookings SET "contactDetails" = jsonb_set("contactDetails", '{email}', to_jsonb($2::text)) WHERE id = $1`,
      [late!.id, early!.email],
    );
    await legacy('DELETE FROM bookings WHERE id = $1', [gone!.id]);
    const run = startDeltaVerify({
      legacyUrl: env.legacyUrl,
      targetUrl: env.targetUrl,
      since,
      logger: silentLogger(),
    });
    await run.ready;
    pipeline = startPipeline(env.config);
    await converged();
    // V2 tampered with after the drain: the deleted booking back, and the user the moved booking joined.
    await target('INSERT INTO bookings SELECT * FROM json_populate_record(NULL::bookings, $1)', [
      JSON.stringify(goneRow),
    ]);
    await target('UPDATE users SET total_bookings = total_bookings + 7 WHERE email = $1', [early!.email]);
    const report = await run.finish();
    expect(report.legacyRows).toBe(3);
    const found = report.drift.map((d) => `${d.entity} ${d.diff.kind} ${JSON.stringify(d.diff.key)}`).sort();
    const userId = (await target('SELECT id FROM users WHERE email = $1', [early!.email]))[0]!.id;
    expect(found).toEqual(
      [`bookings extra {"id":"${gone!.id}"}`, `users different {"id":"${userId}"}`].sort(),
    );

    // Tampering undone: the next test starts from a clean target.
    await target('DELETE FROM bookings WHERE id = $1', [gone!.id]);
    await target('UPDATE users SET total_bookings = total_bookings - 7 WHERE email = $1', [early!.email]);
  }, 120_000);

  it('prepared before the fence (the cutover reads what changed so far outside the window): a row read then and changed before the fence is read again once fenced', async () => {
    const full = await fullVerify();
    expect(full.clean).toBe(true);
    const since = (await withClient(env.targetUrl, (c) => lastCleanFullRun(c)))!.settledLsn;
    const [row, other] = (await target('SELECT id FROM bookings ORDER BY id LIMIT 2')) as { id: string }[];
    const flip = `UPDATE bookings SET status = CASE WHEN status = 'CANCELLED' THEN 'PAID' ELSE 'CANCELLED' END WHERE id = $1`;
    await legacy(flip, [row!.id]);
    await converged();
    let fenceTaken = () => {};
    const fenced = new Promise<void>((resolve) => {
      fenceTaken = resolve;
    });
    const run = startDeltaVerify({
      legacyUrl: env.legacyUrl,
      targetUrl: env.targetUrl,
      since,
      fenced,
      logger: silentLogger(),
    });
    // Read a first time; legacy still takes writes: the row changes again, another one for the first time, and
    // the sink applies both.
    await run.prepared;
    await legacy(flip, [row!.id]);
    await legacy(flip, [other!.id]);
    await converged();
    fenceTaken();
    await run.ready;
    // V2 tampered with for the row changed after the first read.
    await target('UPDATE bookings SET amount = amount + 1 WHERE id = $1', [other!.id]);
    const report = await run.finish();
    expect(report.legacyRows).toBe(2);
    // The first row as it is now, not as it was when first read: only the tampered row differs.
    expect(report.drift.map((d) => `${d.entity} ${d.diff.kind} ${JSON.stringify(d.diff.key)}`)).toEqual([
      `bookings different {"id":"${other!.id}"}`,
    ]);
    await target('UPDATE bookings SET amount = amount - 1 WHERE id = $1', [other!.id]);
  }, 120_000);

  it('prepared before the fence: a row read then, changed before the fence but applied only by the drain, is read again at the end', async () => {
    const full = await fullVerify();
    expect(full.clean).toBe(true);
    const since = (await withClient(env.targetUrl, (c) => lastCleanFullRun(c)))!.settledLsn;
    const [row] = (await target('SELECT id FROM bookings ORDER BY id DESC LIMIT 1')) as { id: string }[];
    const flip = `UPDATE bookings SET status = CASE WHEN status = 'CANCELLED' THEN 'PAID' ELSE 'CANCELLED' END WHERE id = $1`;
    await legacy(flip, [row!.id]);
    await converged();
    let fenceTaken = () => {};
    const fenced = new Promise<void>((resolve) => {
      fenceTaken = resolve;
    });
    const run = startDeltaVerify({
      legacyUrl: env.legacyUrl,
      targetUrl: env.targetUrl,
      since,
      fenced,
      logger: silentLogger(),
    });
    await run.prepared;
    // Changed after its first read, before the fence; the sink applies it only once the fenced read is done.
    await pipeline.stop();
    await legacy(flip, [row!.id]);
    fenceTaken();
    await run.ready;
    pipeline = startPipeline(env.config);
    await converged();
    const report = await run.finish();
    expect(report.legacyRows).toBe(1);
    // Compared with the row as the fence left it, not as first read: no drift.
    expect(report.drift.map((d) => `${d.entity} ${d.diff.kind} ${JSON.stringify(d.diff.key)}`)).toEqual([]);
  }, 120_000);

  it('abandoned before the fence: it stops waiting and closes its connections', async () => {
    const run = startDeltaVerify({
      legacyUrl: env.legacyUrl,
      targetUrl: env.targetUrl,
      since: '0/0',
      fenced: new Promise<void>(() => {}),
      logger: silentLogger(),
    });
    await sleep(300);
    await run.abandon();
    await expect(run.finish()).rejects.toThrow(/abandoned/);
  }, 60_000);

  it('the full final verify reads legacy from the fence on (while the drain runs) and the target once the drain is exact', async () => {
    const [first, second] = (await target('SELECT id FROM bookings ORDER BY id LIMIT 2')) as { id: string }[];
    const flip = `UPDATE bookings SET status = CASE WHEN status = 'CANCELLED' THEN 'PAID' ELSE 'CANCELLED' END WHERE id = $1`;
    await pipeline.stop();
    // Committed before the verify begins and applied only by the drain: compared as the drain left V2.
    await legacy(flip, [first!.id]);
    let fenceTaken = () => {};
    const fenced = new Promise<void>((resolve) => {
      fenceTaken = resolve;
    });
    const run = startFinalVerify(env.config, { full: true, fenced });
    // Connected and its catalogs read, not yet fenced: legacy still changes, and its snapshot is the fence's.
    await run.prepared;
    await legacy(flip, [second!.id]);
    fenceTaken();
    pipeline = startPipeline(env.config);
    await converged();
    const outcome = await run.drained();
    expect(outcome.summary).toMatch(
      /^full \(asked for\): \d+ rows match \([\d.]+ s after the drain: legacy side \d+ ms, target hashes \d+ ms, compare \d+ ms\)$/,
    );
    expect(outcome.clean).toBe(true);

    // Chosen at the start as the delta (nothing changed since a clean full verify); then legacy takes writes while
    // the cutover waits for a lull: at the fence it is the full one.
    expect((await fullVerify()).clean).toBe(true);
    let fenceNow = () => {};
    const late = startFinalVerify(env.config, {
      fenced: new Promise<void>((resolve) => {
        fenceNow = resolve;
      }),
    });
    await late.prepared;
    for (const b of (await target('SELECT id FROM bookings ORDER BY id LIMIT 30')) as { id: string }[])
      await legacy(flip, [b.id]);
    await converged();
    await late.fencing?.();
    fenceNow();
    const switched = await late.drained();
    expect(switched.summary).toMatch(
      /^full \(30 of ~\d+ legacy rows changed since the last verify, ~\d+ per user: the full verify is the quicker, by the fence\): \d+ rows match/,
    );
    expect(switched.clean).toBe(true);

    // Abandoned at the fence (the attempt aborted): it neither waits for a drain nor reads on.
    const aborted = startFinalVerify(env.config, { full: true, fenced: Promise.resolve() });
    await aborted.prepared;
    await aborted.abandon();
    await expect(aborted.drained()).rejects.toThrow(/abandoned/);
  }, 120_000);
});
