import { afterAll, describe, expect, it } from 'vitest';
import { LegacyWorkload } from '../../../src/workload/legacy-workload.js';
import { freshPipeline, startPipeline, summary, waitForConvergence } from '../../helpers/pipeline-harness.js';
import { dropSlot, withClient } from '../../helpers/resources.js';
import { isClean } from '../../helpers/v2-oracle.js';

let env: Awaited<ReturnType<typeof freshPipeline>> | undefined;
let run: ReturnType<typeof startPipeline> | undefined;

afterAll(async () => {
  await run?.stop();
  if (env) await dropSlot(env.legacyUrl, env.config.source.slot);
});

describe('the sink under a byte budget far below its backlog', () => {
  it('pauses and resumes its partitions all along, and V2 ends exactly as the legacy rows say', async () => {
    env = await freshPipeline('qbudget');
    const workload = new LegacyWorkload({
      seed: 31,
      customers: 400,
      shops: 3,
      invalidShare: 0,
      bigNotesBytes: 2000,
    });
    await withClient(env.legacyUrl, async (c) => {
      await c.query('BEGIN');
      for (const w of workload.seed(3_000)) await c.query(w.sql, w.params);
      await c.query('COMMIT');
    });
    // ~20 KB: a few dozen changes held at a time, so nearly every fetch pauses a partition and every apply resumes it.
    run = startPipeline({ ...env.config, sink: { ...env.config.sink, maxQueuedMb: 0.02 } });
    await withClient(env.legacyUrl, async (c) => {
      for (let i = 0; i < 1_000; i++) {
        const w = workload.next();
        await c.query(w.sql, w.params);
      }
    });
    const diff = await waitForConvergence(env.legacyUrl, env.targetUrl, 180_000);
    expect(isClean(diff), summary(diff)).toBe(true);
  });
});
