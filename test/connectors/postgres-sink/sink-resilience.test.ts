import { afterAll, describe, expect, it } from 'vitest';
import { isClean } from '../../../src/ops/verify/diff-states.js';
import { LegacyWorkload } from '../../../src/workload/legacy-workload.js';
import { ChildReplicator } from '../../helpers/child-source.js';
import { freshPipeline, startPipeline, summary, waitForConvergence } from '../../helpers/pipeline-harness.js';
import { dropSlot, testKafka, withClient } from '../../helpers/resources.js';

const children: ChildReplicator[] = [];
const stops: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of children) await c.kill9();
  for (const s of stops) await s();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `writes` live writes against the legacy database, calling `during(i)` between them. */
async function workload(
  url: string,
  seed: number,
  seedRows: number,
  writes: number,
  during?: (i: number) => Promise<void>,
) {
  const w = new LegacyWorkload({ seed, customers: 25, shops: 2, invalidShare: 0.02, bigNotesBytes: 5000 });
  await withClient(url, async (c) => {
    for (const write of w.seed(seedRows)) await c.query(write.sql, write.params);
    for (let i = 0; i < writes; i++) {
      const write = w.next();
      await c.query(write.sql, write.params);
      await during?.(i);
    }
  });
}

async function snapshotTarget(url: string) {
  return withClient(url, async (c) => {
    const out: Record<string, unknown[]> = {};
    for (const t of [
      'users',
      'customer_profiles',
      'bookings',
      'payments',
      'bundles',
      'bundle_components',
      'bundle_discounts',
    ]) {
      out[t] = (await c.query(`SELECT to_jsonb(x)::text AS j FROM ${t} x ORDER BY 1`)).rows.map((r) => r.j);
    }
    out.lineage = (
      await c.query(
        'SELECT source_table, source_key, commit_lsn::text, seq, outputs::text FROM replicator.lineage ORDER BY 1, 2',
      )
    ).rows;
    return out;
  });
}

describe('sink resilience', () => {
  it('kill -9 of the sink mid-batch, five times during a workload: V2 exactly as expected after the drain; consuming everything again changes nothing', async () => {
    const env = await freshPipeline('sinkkill');
    const upstream = startPipeline(env.config, 'source');
    const transform = startPipeline(env.config, 'transform');
    stops.push(upstream.stop, transform.stop);
    let sink = new ChildReplicator(env.config, 'sink');
    children.push(sink);
    sink.start();
    try {
      const writes = workload(env.legacyUrl, 7, 200, 4000);
      // Five kills, each while the sink is applying: after it started and had a moment to take batches.
      for (let k = 0; k < 5; k++) {
        await sink.waitForLog(/sink starting/);
        await sleep(300 + ((k * 397) % 900));
        await sink.kill9();
        sink = new ChildReplicator(env.config, 'sink');
        children.push(sink);
        sink.start();
      }
      await writes;
      const diff = await waitForConvergence(env.legacyUrl, env.targetUrl, 120_000);
      expect(isClean(diff), summary(diff)).toBe(true);
      expect(children.filter((c) => c.log().includes('sink starting')).length).toBeGreaterThanOrEqual(6);

      // Offsets reset: the target's own and the group's. Every unit is applied again; nothing may change.
      expect(await sink.stop()).toBe(0);
      const before = await snapshotTarget(env.targetUrl);
      await withClient(env.targetUrl, (c) => c.query('DELETE FROM replicator.sink_offsets'));
      const admin = testKafka().admin();
      await admin.connect();
      for (const topic of ['bookings', 'customer_profiles', 'bundles', 'heartbeat']) {
        await admin.resetOffsets({
          groupId: env.config.sink.groupId,
          topic: `${env.config.transform.topicPrefix}.${topic}`,
          earliest: true,
        });
      }
      await admin.disconnect();
      sink = new ChildReplicator(env.config, 'sink');
      children.push(sink);
      sink.start();
      // Wait until the replay reached the end: the stored offsets are back.
      for (let i = 0; i < 300; i++) {
        const n = await withClient(
          env.targetUrl,
          async (c) => (await c.query('SELECT count(*)::int AS n FROM replicator.sink_offsets')).rows[0].n,
        );
        if (n > 0 && (await waitForConvergence(env.legacyUrl, env.targetUrl, 1).then(isClean))) break;
        await sleep(200);
      }
      await sleep(2000);
      expect(await snapshotTarget(env.targetUrl)).toEqual(before);
      expect(await sink.stop()).toBe(0);
    } finally {
      await sink.kill9();
      await upstream.stop();
      await transform.stop();
      await dropSlot(env.legacyUrl, env.config.source.slot);
    }
  }, 300_000);

  it('two sink instances in one group during a workload of shared-email bookings: totals exact', async () => {
    const env = await freshPipeline('twosinks');
    const upstream = startPipeline(env.config, 'source');
    const transform = startPipeline(env.config, 'transform');
    stops.push(upstream.stop, transform.stop);
    const a = new ChildReplicator(env.config, 'sink');
    const b = new ChildReplicator(env.config, 'sink');
    children.push(a, b);
    a.start();
    b.start();
    try {
      // 25 customers shared by thousands of bookings: every batch touches users the other instance touches too.
      await workload(env.legacyUrl, 11, 300, 3000);
      const diff = await waitForConvergence(env.legacyUrl, env.targetUrl, 120_000);
      expect(isClean(diff), summary(diff)).toBe(true);
      expect(a.log()).toMatch(/sink starting/);
      expect(b.log()).toMatch(/sink starting/);
      expect(await a.stop()).toBe(0);
      expect(await b.stop()).toBe(0);
    } finally {
      await a.kill9();
      await b.kill9();
      await upstream.stop();
      await transform.stop();
      await dropSlot(env.legacyUrl, env.config.source.slot);
    }
  }, 300_000);
});
