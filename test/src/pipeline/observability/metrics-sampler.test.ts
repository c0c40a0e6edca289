import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { ensureReplicatorSchema } from '../../../../connectors/postgres-sink/index.js';
import { silentLogger } from '../../../../src/core/logger.js';
import { createMetrics } from '../../../../src/pipeline/observability/metrics.js';
import { MetricsSampler } from '../../../../src/pipeline/observability/metrics-sampler.js';
import { freshDatabase, withClient } from '../../../helpers/resources.js';

const phase = async (metrics: ReturnType<typeof createMetrics>) =>
  (await metrics.cutoverPhase.get()).values[0]?.value;

describe('metrics sampler', () => {
  it('reports the latest full cutover’s phase from the target (a cutover runs in its own process)', async () => {
    const target = await freshDatabase('sampler');
    await withClient(target.url, (c) => ensureReplicatorSchema(c));
    const metrics = createMetrics(new Registry());
    const sampler = new MetricsSampler({
      metrics,
      logger: silentLogger(),
      intervalMs: 60_000,
      sink: { url: target.url, groupId: 'g' },
    });
    try {
      await sampler.sampleOnce();
      expect(await phase(metrics)).toBe(0);
      await withClient(target.url, (c) =>
        c.query(
          `INSERT INTO replicator.cutovers (id, shop, phase, started_at) VALUES
             ('old', NULL, 'aborted', now() - interval '1 hour'),
             ('shop', 'shop-1', 'flipped', now()),
             ('now', NULL, 'draining', now() - interval '1 minute')`,
        ),
      );
      await sampler.sampleOnce();
      expect(await phase(metrics)).toBe(3);
      await withClient(target.url, (c) =>
        c.query(
          "UPDATE replicator.cutovers SET phase = 'flipped', write_blocked_ms = 812.5 WHERE id = 'now'",
        ),
      );
      expect((await metrics.cutoverWriteBlockedSeconds.get()).values[0]?.value).toBe(0);
      await sampler.sampleOnce();
      expect(await phase(metrics)).toBe(8);
      // The window it blocked writes for, exported as the running cutover recorded it.
      expect((await metrics.cutoverWriteBlockedSeconds.get()).values[0]?.value).toBe(0.8125);
    } finally {
      await sampler.close();
    }
  });
});
