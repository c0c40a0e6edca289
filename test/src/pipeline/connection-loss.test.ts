import { afterAll, describe, expect, it } from 'vitest';
import { applyWrites, LegacyWorkload } from '../../../src/workload/legacy-workload.js';
import { ChildReplicator } from '../../helpers/child-source.js';
import { runCli } from '../../helpers/daemon.js';
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Terminates the daemon's sessions named `application` in `url`'s database; returns how many there were. */
async function terminate(url: string, application: string): Promise<number> {
  return withClient(url, async (c) => {
    const { rows } = await c.query<{ ok: boolean }>(
      `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = $1 AND pid <> pg_backend_pid()`,
      [application],
    );
    return rows.filter((r) => r.ok).length;
  });
}

describe('connection loss', () => {
  it('pg_terminate_backend of every replicator connection in turn, under live writes: the process stays up and V2 converges exactly', async () => {
    const env = await freshPipeline('connloss');
    slots.push({ url: env.legacyUrl, slot: env.config.source.slot });
    const seed = 23;
    const workload = new LegacyWorkload({
      seed,
      customers: 20,
      shops: 2,
      invalidShare: 0.02,
      bigNotesBytes: 3000,
    });
    await withClient(env.legacyUrl, (c) => applyWrites(c, workload.seed(100)));
    const daemon = new ChildReplicator(env.config, 'all');
    children.push(daemon);
    daemon.start();
    await daemon.waitForLog(/"msg":"streaming"/, 60_000);

    const writer = startLiveWriter(env.legacyUrl, workload, { pauseMs: 3 });
    try {
      // Each kind of connection in turn: the sink's pooled target connections, then the source's (leader lock,
      // admin and walsender). Each time at least one was there to terminate, and writes went on in between.
      const killed: Record<string, number> = {};
      for (const [name, url, app] of [
        ['sink', env.targetUrl, 'replicator-sink'],
        ['source', env.legacyUrl, 'replicator-source'],
        ['sink again', env.targetUrl, 'replicator-sink'],
      ] as const) {
        await writer.advance(150);
        for (let i = 0; i < 100 && !killed[name]; i++) {
          killed[name] = await terminate(url, app);
          if (!killed[name]) await sleep(100);
        }
      }
      expect(
        Object.values(killed).every((n) => n > 0),
        `seed ${seed}: ${JSON.stringify(killed)}`,
      ).toBe(true);
      await writer.advance(150);
      await writer.stop();
      const diff = await waitForConvergence(env.legacyUrl, env.targetUrl, 120_000);
      expect(isClean(diff), `seed ${seed}: ${summary(diff)}`).toBe(true);
      const verify = await runCli(['verify', '--json', '--config', daemon.configFile], {
        REPLICATOR_LOG_LEVEL: 'error',
      });
      expect(verify.code, verify.stderr).toBe(0);
      expect((JSON.parse(verify.stdout) as { clean: boolean }).clean).toBe(true);
      // Still the same process: it never exited, and it said what it did.
      expect(daemon.exitCode, daemon.log().slice(-3000)).toBe(null);
      expect(daemon.log()).toMatch(/target connection lost|sink retrying|sink session ended/);
      expect(daemon.log()).toMatch(/source session ended; reconnecting/);
      expect(await daemon.stop()).toBe(0);
    } finally {
      await writer.stop().catch(() => {});
    }
  }, 300_000);
});
