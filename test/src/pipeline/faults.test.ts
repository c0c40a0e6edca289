import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/pipeline/config/load-config.js';
import { LegacyWorkload } from '../../../src/workload/legacy-workload.js';
import { LEGACY_DDL } from '../../../transforms/legacy-schema.js';
import { V2_DDL } from '../../../transforms/v2-schema.js';
import type { ChildReplicator } from '../../helpers/child-source.js';
import { getJson, runCli, scrape, waitReady } from '../../helpers/daemon.js';
import { startFaultDaemon } from '../../helpers/fault-daemon.js';
import { startLiveWriter } from '../../helpers/live-writer.js';
import { LEGACY_TABLES, summary, waitForConvergence } from '../../helpers/pipeline-harness.js';
import { type PrivateKafka, startPrivateKafka } from '../../helpers/private-kafka.js';
import { type PrivatePostgres, startPrivatePostgres } from '../../helpers/private-postgres.js';
import { freshName, withClient } from '../../helpers/resources.js';
import { testSeed, withSeed } from '../../helpers/seed.js';
import { isClean } from '../../helpers/v2-oracle.js';

/**
 * A production day's infrastructure faults, one after another, under live legacy writes, against one daemon
 * (`start --role all`) that must never exit: the legacy server restarted, the target server restarted, the target
 * refusing connections for 60 s, the broker stopped for 75 s (long enough for `/readyz` to report the stalled
 * source) and then restarted three times in a row. The legacy and
 * target databases live on clusters of their own and the broker is private (the shared ones serve other files).
 * After the last fault V2 equals what the legacy rows make (the test's own oracle) and `replicator verify` is clean.
 */

const { seed, tag } = testSeed('FAULTS_SEED');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let legacyPg: PrivatePostgres;
let targetPg: PrivatePostgres;
let broker: PrivateKafka;
const children: ChildReplicator[] = [];
beforeAll(async () => {
  [legacyPg, targetPg, broker] = await Promise.all([
    startPrivatePostgres(),
    startPrivatePostgres(),
    startPrivateKafka(),
  ]);
});
afterAll(async () => {
  for (const c of children) await c.kill9();
  await Promise.all([legacyPg?.destroy(), targetPg?.destroy(), broker?.destroy()]);
});

describe('infrastructure faults under live writes', () => {
  it(
    `PostgreSQL restarts, the target down 60 s, the broker down 75 s (readyz: stalled) and restarted three times: one process throughout, V2 exact, verify clean (${tag})`,
    () =>
      withSeed(tag, async () => {
        const legacyUrl = legacyPg.url();
        const targetUrl = targetPg.url();
        await withClient(legacyUrl, (c) => c.query(LEGACY_DDL));
        await withClient(targetUrl, (c) => c.query(V2_DDL));
        const config = parseConfig(
          {
            source: {
              url: legacyUrl,
              tables: LEGACY_TABLES.map((t) => `${t.schema}.${t.table}`),
              slot: freshName('slot'),
              publication: freshName('pub'),
              statusIntervalMs: 200,
              heartbeatIntervalMs: 1000,
            },
            target: { url: targetUrl },
            kafka: { brokers: [broker.brokers], topicPrefix: freshName('raw'), partitions: 3 },
            sink: { groupId: freshName('sgroup'), sessionTimeoutMs: 6000 },
          },
          {},
        );
        const workload = new LegacyWorkload({
          seed,
          customers: 20,
          shops: 2,
          invalidShare: 0.02,
          bigNotesBytes: 3000,
        });
        const { daemon, pid, base, alive } = await startFaultDaemon(config, legacyUrl, workload, children);
        const writer = startLiveWriter(legacyUrl, workload, { pauseMs: 3, survive: true });
        try {
          await writer.advance(150);

          await legacyPg.restart();
          await writer.advance(150);
          alive('legacy restarted');

          await targetPg.restart();
          await writer.advance(150);
          alive('target restarted');

          await targetPg.stop();
          await sleep(60_000);
          alive('target down 60 s');
          await targetPg.start();
          await writer.advance(150);

          await broker.stop();
          await sleep(75_000);
          alive('broker down 75 s');
          // Writes went on, so changes have waited for Kafka over a minute: the daemon says it is stalled.
          const stalled = await getJson(`${base}/readyz`);
          expect(stalled.status).toBe(503);
          expect(stalled.body.stages).toMatchObject({ source: 'stalled' });
          expect(
            await scrape(base, 'replicator_source_kafka_wait_seconds', `slot="${config.source.slot}"`),
          ).toBeGreaterThan(60);
          await broker.start();
          await waitReady(base, 'leader', 120_000);
          for (let i = 0; i < 3; i++) {
            await writer.advance(100);
            await broker.stop();
            await broker.start();
          }
          await writer.advance(150);
          await writer.stop();

          const diff = await waitForConvergence(legacyUrl, targetUrl, 180_000);
          expect(isClean(diff), summary(diff)).toBe(true);
          const verify = await runCli(['verify', '--json', '--config', daemon.configFile], {
            REPLICATOR_LOG_LEVEL: 'error',
          });
          expect(verify.code, verify.stderr).toBe(0);
          expect((JSON.parse(verify.stdout) as { clean: boolean }).clean).toBe(true);
          // One process throughout: never exited, never replaced.
          alive('after the faults');
          expect(daemon.pid).toBe(pid);
          expect(writer.written()).toBeGreaterThan(1000);
          expect(await daemon.stop()).toBe(0);
        } finally {
          await writer.stop();
        }
      }),
    900_000,
  );
});
