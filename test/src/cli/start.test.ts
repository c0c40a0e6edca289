import { afterAll, describe, expect, it } from 'vitest';
import { applyWrites, LegacyWorkload } from '../../../src/workload/legacy-workload.js';
import { ChildReplicator } from '../../helpers/child-source.js';
import { ANY_PORT, daemonUrl, getJson, waitReady } from '../../helpers/daemon.js';
import { startLiveWriter } from '../../helpers/live-writer.js';
import { freshPipeline, summary, waitForConvergence } from '../../helpers/pipeline-harness.js';
import { dropSlot, withClient } from '../../helpers/resources.js';
import { isClean } from '../../helpers/v2-oracle.js';

const children: ChildReplicator[] = [];
const slots: { url: string; slot: string }[] = [];

afterAll(async () => {
  for (const c of children) await c.kill9();
  for (const s of slots) await dropSlot(s.url, s.slot);
});

function daemon(config: ConstructorParameters<typeof ChildReplicator>[0]): ChildReplicator {
  const child = new ChildReplicator(config, 'all', ANY_PORT);
  children.push(child);
  child.start();
  return child;
}

describe('replicator start', () => {
  it('SIGTERM during a workload exits 0 within the grace period; a restart continues with nothing lost or duplicated', async () => {
    const env = await freshPipeline('sigterm');
    slots.push({ url: env.legacyUrl, slot: env.config.source.slot });
    const workload = new LegacyWorkload({
      seed: 11,
      customers: 15,
      shops: 2,
      invalidShare: 0.05,
      bigNotesBytes: 5000,
    });
    await withClient(env.legacyUrl, (c) => applyWrites(c, workload.seed(40)));

    const first = daemon(env.config);
    const base = await daemonUrl(first);
    expect((await getJson(`${base}/healthz`)).status).toBe(200);
    await waitReady(base, 'leader');
    await first.waitForLog(/"msg":"streaming"/, 60_000);

    // Writes keep coming while the daemon stops and while it is down.
    const writer = startLiveWriter(env.legacyUrl, workload);
    try {
      await writer.advance(150);
      // Exit code 0 means the daemon finished its graceful stop itself: past the grace period it exits 1.
      expect(await first.stop(), first.log().slice(-3000)).toBe(0);
      expect(first.log()).toMatch(/"msg":"stopped"/);
      await writer.advance(100);

      const second = daemon(env.config);
      await waitReady(await daemonUrl(second), 'leader');
      await second.waitForLog(/"msg":"streaming"/, 60_000);
      await writer.advance(150);
    } finally {
      await writer.stop();
    }
    const diff = await waitForConvergence(env.legacyUrl, env.targetUrl, 120_000);
    expect(isClean(diff), summary(diff)).toBe(true);
    expect(await children.at(-1)!.stop()).toBe(0);
  }, 300_000);

  it('a second signal during the graceful stop exits at once (130)', async () => {
    const env = await freshPipeline('twosignals');
    slots.push({ url: env.legacyUrl, slot: env.config.source.slot });
    const child = daemon(env.config);
    await waitReady(await daemonUrl(child), 'leader');
    await child.waitForLog(/"msg":"streaming"/, 60_000);
    // Both signals arrive before the stop (Kafka consumers leaving their groups) can complete.
    process.kill(child.pid!, 'SIGTERM');
    process.kill(child.pid!, 'SIGINT');
    expect(await child.stop()).toBe(130);
    expect(child.log()).toMatch(/"msg":"second signal: exiting now"/);
  }, 120_000);
});
