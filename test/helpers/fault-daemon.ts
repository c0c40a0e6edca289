import { expect } from 'vitest';
import type { ReplicatorConfig } from '../../src/pipeline/config/load-config.js';
import { applyWrites, type LegacyWorkload } from '../../src/workload/legacy-workload.js';
import { ChildReplicator } from './child-source.js';
import { daemonUrl } from './daemon.js';
import { withClient } from './resources.js';

/**
 * The fault suites' daemon: 100 seeded bookings, then one `start --role all` process, streaming. `alive(step)`
 * fails the test if the process has exited by then (with its log's tail); `pid` is checked at the end to show it
 * was never replaced.
 */
export async function startFaultDaemon(
  config: ReplicatorConfig,
  legacyUrl: string,
  workload: LegacyWorkload,
  children: ChildReplicator[],
) {
  await withClient(legacyUrl, (c) => applyWrites(c, workload.seed(100)));
  const daemon = new ChildReplicator(config, 'all');
  children.push(daemon);
  daemon.start();
  await daemon.waitForLog(/"msg":"streaming"/, 60_000);
  return {
    daemon,
    pid: daemon.pid,
    base: await daemonUrl(daemon),
    alive: (step: string) =>
      expect(daemon.exitCode, `${step}: the daemon exited\n${daemon.log().slice(-3000)}`).toBe(null),
  };
}
