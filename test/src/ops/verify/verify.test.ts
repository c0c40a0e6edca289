import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JsonRow, V2Entity } from '../../../../src/contracts/transform-api.js';
import { EXIT_CODES } from '../../../../src/core/errors.js';
import { silentLogger } from '../../../../src/core/logger.js';
import { renderVerifyReport } from '../../../../src/ops/verify/render-verify-report.js';
import { sinkAppliedWaiter } from '../../../../src/ops/verify/sink-applied-waiter.js';
import {
  runVerify,
  sinkOf,
  type VerifyOptions,
  type VerifyReport,
} from '../../../../src/ops/verify/verify.js';
import { lastVerifyRun } from '../../../../src/ops/verify/verify-store.js';
import { LegacyWorkload } from '../../../../src/workload/legacy-workload.js';
import {
  compareTarget,
  freshPipeline,
  startPipeline,
  summary,
  waitForConvergence,
} from '../../../helpers/pipeline-harness.js';
import { dropSlot, testKafka, withClient } from '../../../helpers/resources.js';
import { isClean } from '../../../helpers/v2-oracle.js';

const run = promisify(execFile);
const kafka = testKafka();
const workload = new LegacyWorkload({
  seed: 7,
  customers: 60,
  shops: 3,
  invalidShare: 0.03,
  bigNotesBytes: 5000,
});
let env: Awaited<ReturnType<typeof freshPipeline>>;
let pipeline: ReturnType<typeof startPipeline>;

function verify(extra: Partial<VerifyOptions> = {}): Promise<VerifyReport> {
  return runVerify({
    legacyUrl: env.legacyUrl,
    targetUrl: env.targetUrl,
    recheck: { sink: sinkOf(env.config, kafka), timeoutMs: 30_000 },
    logger: silentLogger(),
    ...extra,
  });
}

async function target<T = JsonRow>(sql: string, params: unknown[] = []): Promise<T[]> {
  return withClient(env.targetUrl, async (c) => (await c.query(sql, params)).rows as T[]);
}

async function converged() {
  const diff = await waitForConvergence(env.legacyUrl, env.targetUrl);
  expect(isClean(diff), summary(diff)).toBe(true);
}

const drift = (r: VerifyReport) => r.entities.flatMap((e) => e.samples);
const find = (r: VerifyReport, entity: V2Entity, kind: string, key: JsonRow) =>
  drift(r).find(
    (d) => d.entity === entity && d.kind === kind && JSON.stringify(d.key) === JSON.stringify(key),
  );

beforeAll(async () => {
  env = await freshPipeline('verify');
  // Rows before the start arrive through the snapshot, the rest through the stream.
  await withClient(env.legacyUrl, async (c) => {
    for (const w of workload.seed(250)) await c.query(w.sql, w.params);
  });
  pipeline = startPipeline(env.config);
  await withClient(env.legacyUrl, async (c) => {
    for (let i = 0; i < 150; i++) {
      const w = workload.next();
      await c.query(w.sql, w.params);
    }
  });
  await converged();
});

afterAll(async () => {
  await pipeline?.stop();
  if (env) await dropSlot(env.legacyUrl, env.config.source.slot);
});

describe('replicator verify', () => {
  it('a converged target is clean: per-entity, per-shop and unmigrated-row counts, the run recorded', async () => {
    const report = await verify();
    expect(report.clean, JSON.stringify(drift(report))).toBe(true);
    for (const e of report.entities) {
      expect(e.actual, e.entity).toBe(e.expected);
      expect(e.missing + e.extra + e.different, e.entity).toBe(0);
      // The target's SQL hash text and the expected side's agree on real pipeline data: no chunk needed its rows.
      expect(e.mismatchedChunks, e.entity).toBe(0);
    }
    expect(report.entities.map((e) => e.entity)).toEqual([
      'users',
      'customer_profiles',
      'bookings',
      'payments',
      'bundles',
      'bundle_components',
      'bundle_discounts',
    ]);
    expect(report.entities.find((e) => e.entity === 'bookings')!.expected).toBeGreaterThan(200);
    // The seeds' validation queries: counts per shop and the rows that do not migrate, by reason.
    expect(report.shops.map((s) => s.shop)).toEqual(['shop-0', 'shop-1', 'shop-2']);
    for (const s of report.shops) {
      expect(s.bundles.actual).toBe(s.bundles.expected);
      expect(s.components.actual).toBe(s.components.expected);
      expect(s.discounts.actual).toBe(s.discounts.expected);
    }
    const bookings = report.legacy.find((t) => t.table === 'public.bookings')!;
    expect(
      bookings.migrated + bookings.skipped + Object.values(bookings.rejected).reduce((a, b) => a + b, 0),
    ).toBe(bookings.rows);
    expect(Object.keys(bookings.rejected).length).toBeGreaterThan(0);
    const last = await withClient(env.targetUrl, (c) => lastVerifyRun(c));
    expect(last).toMatchObject({ id: report.runId, clean: true, queue: [] });
  });

  it('finds every drift injected into V2 — missing, extra, changed, a nested JSON value, a numeric off by 0.01 — and the CLI exits non-zero', async () => {
    const [b1, b2] = await target<{ id: string }>('SELECT id FROM bookings ORDER BY id LIMIT 2');
    const [p1, p2] = await target<{ id: string }>(
      'SELECT p.id FROM payments p WHERE p.booking_id NOT IN ($1, $2) ORDER BY p.id LIMIT 2',
      [b1!.id, b2!.id],
    );
    const [u1] = await target<{ id: string }>(
      'SELECT id FROM users WHERE total_spent > 0 ORDER BY id LIMIT 1',
    );
    await withClient(env.targetUrl, async (c) => {
      await c.query('DELETE FROM payments WHERE id = $1', [p1!.id]);
      await c.query(
        `INSERT INTO customer_profiles (customer_id, email, created_at) VALUES ('injected-1', 'nobody@example.com', now())`,
      );
      await c.query(
        `UPDATE bookings SET status = CASE WHEN status = 'PENDING' THEN 'PAID' ELSE 'PENDING' END WHERE id = $1`,
        [b1!.id],
      );
      await c.query(
        `UPDATE bookings SET contact = jsonb_set(contact, '{firstName}', '"Mallory"') WHERE id = $1`,
        [b2!.id],
      );
      await c.query('UPDATE payments SET amount = amount + 0.01 WHERE id = $1', [p2!.id]);
      await c.query('UPDATE users SET total_spent = total_spent - 0.01 WHERE id = $1', [u1!.id]);
    });

    const report = await verify();
    expect(report.clean).toBe(false);
    expect(find(report, 'payments', 'missing', { id: p1!.id })).toBeDefined();
    expect(find(report, 'customer_profiles', 'extra', { customer_id: 'injected-1' })).toBeDefined();
    expect(find(report, 'bookings', 'different', { id: b1!.id })?.columns).toEqual(['status']);
    const nested = find(report, 'bookings', 'different', { id: b2!.id });
    expect(nested?.columns).toEqual(['contact']);
    expect((nested?.actual?.contact as JsonRow | undefined)?.firstName).toBe('Mallory');
    // The text report names the nested path.
    expect(renderVerifyReport(report)).toMatch(/contact\.firstName: expected "[^"]*", actual "Mallory"/);
    const amount = find(report, 'payments', 'different', { id: p2!.id });
    expect(amount?.columns).toEqual(['amount']);
    expect(Number(amount?.actual?.amount) - Number(amount?.expected?.amount)).toBeCloseTo(0.01, 6);
    expect(find(report, 'users', 'different', { id: u1!.id })?.columns).toEqual(['total_spent']);
    // Exactly those: nothing else is reported.
    expect(report.entities.reduce((n, e) => n + e.missing + e.extra + e.different, 0)).toBe(6);
    // Each comes with the legacy row it derives from (what --repair re-emits).
    expect(find(report, 'payments', 'missing', { id: p1!.id })?.sources[0]?.table).toBe('public.bookings');
    const recorded = await withClient(env.targetUrl, (c) => lastVerifyRun(c));
    expect(recorded?.clean).toBe(false);
    expect(recorded?.queue).toEqual(
      expect.arrayContaining([
        { entity: 'payments', key: { id: p1!.id }, status: 'drift' },
        { entity: 'customer_profiles', key: { customer_id: 'injected-1' }, status: 'drift' },
      ]),
    );

    // The CLI: the same run, as JSON on stdout, exit code of VERIFY_DRIFT.
    const dir = mkdtempSync(join(tmpdir(), 'verify-cli-'));
    const configFile = join(dir, 'config.json');
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
    const cli = await run(
      process.execPath,
      [
        'bin/replicator.js',
        'verify',
        '--config',
        configFile,
        '--json',
        '--entity',
        'payments,customer_profiles',
      ],
      { env: { ...process.env, REPLICATOR_LOG_LEVEL: 'error' } },
    ).then(
      () => ({ code: 0, stdout: '' }),
      (e: { code: number; stdout: string }) => e,
    );
    expect(cli.code).toBe(EXIT_CODES.VERIFY_DRIFT);
    const json = JSON.parse(cli.stdout) as VerifyReport;
    expect(json.entities.map((e) => [e.entity, e.missing, e.extra, e.different])).toEqual([
      ['customer_profiles', 0, 1, 0],
      ['payments', 1, 0, 1],
    ]);
  });

  it('--repair re-emits the drifted legacy rows through the pipeline; after it the target is clean', async () => {
    const report = await verify({ repair: { kafka, topicPrefix: env.config.kafka.topicPrefix } });
    // The injected profile has no legacy row: nothing in the pipeline can remove it, and it is reported as such.
    expect(report.repair).toMatchObject({ keys: 6, unrepairable: 1, fixed: 5 });
    expect(report.repair!.reads).toBeGreaterThan(0);
    expect(report.clean).toBe(false);
    expect(drift(report).map((d) => [d.entity, d.kind])).toEqual([['customer_profiles', 'extra']]);
    await target("DELETE FROM customer_profiles WHERE customer_id = 'injected-1'");
    await converged();
    const after = await verify();
    expect(after.clean, JSON.stringify(drift(after))).toBe(true);
  });

  it('--shop verifies one shop’s bundles, components and discounts only', async () => {
    const [other] = await target<{ id: string; shop: string }>(
      "SELECT b.id, b.shop FROM bundles b JOIN bundle_components c ON c.bundle_id = b.id WHERE b.shop = 'shop-2' ORDER BY b.id LIMIT 1",
    );
    await target(
      'UPDATE bundle_components SET quantity = quantity + 1 WHERE bundle_id = $1 AND position = 0',
      [other!.id],
    );
    const shop0 = await verify({ shop: 'shop-0' });
    expect(shop0.clean).toBe(true);
    expect(shop0.entities.map((e) => e.entity)).toEqual(['bundles', 'bundle_components', 'bundle_discounts']);
    expect(shop0.shops.map((s) => s.shop)).toEqual(['shop-0']);
    const all = await target<{ n: number }>("SELECT count(*)::int AS n FROM bundles WHERE shop = 'shop-0'");
    expect(shop0.entities[0]!.actual).toBe(all[0]!.n);
    expect(shop0.legacy.map((t) => t.table).sort()).toEqual([
      'public.ai_fbt_bundles',
      'public.bundle_discount_id',
    ]);

    const shop2 = await verify({ shop: 'shop-2' });
    expect(shop2.clean).toBe(false);
    expect(
      find(shop2, 'bundle_components', 'different', { bundle_id: other!.id, position: 0 })?.columns,
    ).toEqual(['quantity']);
    expect(shop2.shops).toEqual([expect.objectContaining({ shop: 'shop-2', drift: 1 })]);
    await expect(verify({ shop: 'shop-0', entities: ['bookings'] })).rejects.toThrow(/--shop applies to/);
    await target(
      'UPDATE bundle_components SET quantity = quantity - 1 WHERE bundle_id = $1 AND position = 0',
      [other!.id],
    );
  });

  it('compares values inside JSON exactly: a jsonb number beyond a double, timestamp-shaped strings re-spelt — each one drift', async () => {
    // Legacy values that put the JSON in place through the pipeline: a bundle's confidence 0.613, and a booking's
    // contactDetails with a timestamp-shaped string at the top and one nested in an array.
    const [bundle] = await target<{ id: string; legacy: string }>(
      "SELECT id, metadata->>'ai_bundle_id' AS legacy FROM bundles WHERE source = 'AI' ORDER BY id LIMIT 1",
    );
    const [booking] = await target<{ id: string }>('SELECT id FROM bookings ORDER BY id DESC LIMIT 1');
    await withClient(env.legacyUrl, async (c) => {
      await c.query('UPDATE ai_fbt_bundles SET "confidenceScore" = 0.613 WHERE id = $1', [bundle!.legacy]);
      await c.query(`UPDATE bookings SET "contactDetails" = "contactDetails" || $2::jsonb WHERE id = $1`, [
        booking!.id,
        JSON.stringify({ lastContactAt: '2024-01-02T03:04:05Z', history: [{ at: '2024-01-02T03:04:05Z' }] }),
      ]);
    });
    await converged();
    const [before] = await target<{ confidence: string; last: string; at: string }>(
      `SELECT (SELECT metadata->'confidence' FROM bundles WHERE id = $1)::text AS confidence,
              (SELECT contact->'lastContactAt' FROM bookings WHERE id = $2)::text AS last,
              (SELECT contact#>'{history,0,at}' FROM bookings WHERE id = $2)::text AS at`,
      [bundle!.id, booking!.id],
    );
    expect(before).toEqual({
      confidence: '0.613',
      last: '"2024-01-02T03:04:05Z"',
      at: '"2024-01-02T03:04:05Z"',
    });

    const drifts = [
      {
        what: 'a jsonb number changed beyond a double’s precision',
        entity: 'bundles' as const,
        id: bundle!.id,
        column: 'metadata',
        set: `jsonb_set(metadata, '{confidence}', '0.61300000000000000001')`,
        check: `SELECT (metadata->'confidence')::text AS v, metadata = $2::jsonb AS same FROM bundles WHERE id = $1`,
        stored: '0.61300000000000000001',
        path: 'metadata.confidence: expected 0.613, actual "0.61300000000000000001"',
      },
      {
        what: 'a timestamp-shaped string re-spelt',
        entity: 'bookings' as const,
        id: booking!.id,
        column: 'contact',
        set: `jsonb_set(contact, '{lastContactAt}', '"2024-01-02 03:04:05+00"')`,
        check: `SELECT (contact->'lastContactAt')::text AS v, contact = $2::jsonb AS same FROM bookings WHERE id = $1`,
        stored: '"2024-01-02 03:04:05+00"',
        path: 'contact.lastContactAt: expected "2024-01-02T03:04:05Z", actual "2024-01-02 03:04:05+00"',
      },
      {
        what: 'a timestamp-shaped string inside an array re-spelt',
        entity: 'bookings' as const,
        id: booking!.id,
        column: 'contact',
        set: `jsonb_set(contact, '{history,0,at}', '"2024-01-02 03:04:05+00"')`,
        check: `SELECT (contact#>'{history,0,at}')::text AS v, contact = $2::jsonb AS same FROM bookings WHERE id = $1`,
        stored: '"2024-01-02 03:04:05+00"',
        path: 'contact.history[0].at: expected "2024-01-02T03:04:05Z", actual "2024-01-02 03:04:05+00"',
      },
    ];
    for (const d of drifts) {
      const table = d.entity;
      const [orig] = await target<{ text: string }>(
        `SELECT ${d.column}::text AS text FROM ${table} WHERE id = $1`,
        [d.id],
      );
      await target(`UPDATE ${table} SET ${d.column} = ${d.set} WHERE id = $1`, [d.id]);
      try {
        // The target holds the changed value, which jsonb keeps distinct from the original.
        const [stored] = await target<{ v: string; same: boolean }>(d.check, [d.id, orig!.text]);
        expect(stored, d.what).toEqual({ v: d.stored, same: false });
        const report = await verify();
        expect(report.clean, d.what).toBe(false);
        expect(
          drift(report).map((x) => [x.entity, x.kind, x.key, x.columns]),
          d.what,
        ).toEqual([[d.entity, 'different', { id: d.id }, [d.column]]]);
        expect(
          report.entities.reduce((n, e) => n + e.missing + e.extra + e.different, 0),
          d.what,
        ).toBe(1);
        expect(renderVerifyReport(report), d.what).toContain(d.path);
      } finally {
        await target(`UPDATE ${table} SET ${d.column} = $2::jsonb WHERE id = $1`, [d.id, orig!.text]);
      }
    }
    const after = await verify();
    expect(after.clean, JSON.stringify(drift(after))).toBe(true);
  });

  it('re-checks what the first pass finds behind: with the sink stopped every changed row differs, then the sink catches up and the re-check resolves each', async () => {
    await pipeline.stop();
    await withClient(env.legacyUrl, async (c) => {
      for (let i = 0; i < 100; i++) {
        const w = workload.next();
        await c.query(w.sql, w.params);
      }
    });
    // What the target lacks now, by the independent oracle: the first pass must find exactly these.
    const behind = await compareTarget(env.legacyUrl, env.targetUrl);
    const lag = Object.fromEntries(
      behind.map((d) => [d.entity, d.missing.length + d.extra.length + d.different.length]),
    );
    const total = Object.values(lag).reduce((a, b) => a + b, 0);
    expect(total, summary(behind)).toBeGreaterThan(0);
    // The sink starts when the first re-check waits for it, after the first pass has compared.
    let waits = 0;
    const applied = sinkAppliedWaiter({
      legacyUrl: env.legacyUrl,
      targetUrl: env.targetUrl,
      ...sinkOf(env.config, kafka),
      timeoutMs: 60_000,
      logger: silentLogger(),
    });
    const report = await verify({
      recheck: {
        waitForApplied: (lsn) => {
          if (waits++ === 0) pipeline = startPipeline(env.config);
          return applied(lsn);
        },
      },
    });
    expect(report.clean, JSON.stringify(drift(report).slice(0, 3))).toBe(true);
    expect(Object.fromEntries(report.entities.map((e) => [e.entity, e.firstPass]))).toEqual(lag);
    expect(report.recheck).toMatchObject({ queued: total, resolved: total, inFlux: 0, timedOut: false });
    expect(report.recheck.rounds.map((r) => [r.round, r.applied, r.keys, r.resolved, r.confirmed])).toEqual([
      [1, true, total, total, 0],
    ]);
    expect(waits).toBe(1);
    await converged();
  });

  it('reports no drift on a clean target under live writes: what differs because of lag is re-checked, not reported', async () => {
    let stop = false;
    let writes = 0;
    const load = withClient(env.legacyUrl, async (c) => {
      while (!stop) {
        const w = workload.next();
        await c.query(w.sql, w.params);
        writes++;
      }
    });
    try {
      // Let the load get going, so the first pass sees the target behind.
      while (writes < 200) await new Promise((r) => setTimeout(r, 20));
      const report = await verify();
      expect(report.clean, JSON.stringify(drift(report).slice(0, 3))).toBe(true);
      expect(writes).toBeGreaterThan(200);
    } finally {
      stop = true;
      await load;
    }
    await converged();
  });
});
