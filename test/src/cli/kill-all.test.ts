import { afterAll, describe, expect, it } from 'vitest';
import { dlqTopic } from '../../../src/contracts/topics.js';
import { listDeadLetters } from '../../../src/ops/dlq/dead-letters.js';
import { applyWrites, LegacyWorkload, prng } from '../../../src/workload/legacy-workload.js';
import { ChildReplicator } from '../../helpers/child-source.js';
import { startLiveWriter } from '../../helpers/live-writer.js';
import { freshPipeline, summary, waitForConvergence } from '../../helpers/pipeline-harness.js';
import { dropSlot, testKafka, withClient } from '../../helpers/resources.js';
import { testSeed, withSeed } from '../../helpers/seed.js';
import { expectedLetters, waitForOpenApplyTransaction } from '../../helpers/sink-probes.js';
import { isClean } from '../../helpers/v2-oracle.js';

const KILLS = 5;
// The workload and how long each daemon lives come from this seed; every failure message names it.
const { seed, tag } = testSeed('KILL_ALL_SEED');
const children: ChildReplicator[] = [];

afterAll(async () => {
  for (const c of children) await c.kill9();
});

describe('the whole daemon killed', () => {
  it(
    `kill -9 of \`--role all\` ${KILLS} times under a live workload, each inside an apply transaction while the source streams: V2 exact after the drain, the dead letters those of a crash-free run (${tag})`,
    () =>
      withSeed(tag, async () => {
        const random = prng(seed);
        const env = await freshPipeline('killall');
        const workload = new LegacyWorkload({
          seed,
          customers: 30,
          shops: 2,
          invalidShare: 0.03,
          bigNotesBytes: 5000,
        });
        await withClient(env.legacyUrl, (c) => applyWrites(c, workload.seed(200)));
        // Each apply transaction is held open 300 ms before COMMIT, so a kill can be shown to land inside one.
        const hold = { REPLICATOR_FAULT_HOLD_APPLY_MS: '300' };
        const spawn = (faults: Record<string, string>) => {
          const child = new ChildReplicator(env.config, 'all', { REPLICATOR_METRICS_PORT: '0', ...faults });
          children.push(child);
          child.start();
          return child;
        };
        let daemon = spawn(hold);
        await daemon.waitForLog(/"msg":"streaming"/, 60_000);

        // One writer, writing without pause from here to the end of the kills.
        const writer = startLiveWriter(env.legacyUrl, workload);
        const landings: { writes: number; streamed: boolean }[] = [];
        try {
          for (let k = 0; k < KILLS; k++) {
            // This incarnation streams, and writes reach it for a while (50–250 of them, drawn from the seed).
            await daemon.waitForLog(/"msg":"streaming"/, 60_000);
            await writer.advance(50 + Math.floor(random() * 200));
            // Where the kill lands: the sink holds an open apply transaction; the source is streaming.
            await waitForOpenApplyTransaction(env.targetUrl);
            await daemon.kill9();
            landings.push({ writes: writer.written(), streamed: /"msg":"streaming"/.test(daemon.log()) });
            daemon = spawn(k < KILLS - 1 ? hold : {});
          }
          await daemon.waitForLog(/"msg":"streaming"/, 60_000);
          await writer.advance(100);
        } finally {
          await writer.stop();
        }
        try {
          expect(landings.map((l) => l.streamed)).toEqual(Array(KILLS).fill(true));
          const diff = await waitForConvergence(env.legacyUrl, env.targetUrl, 180_000);
          expect(isClean(diff), summary(diff)).toBe(true);
          // Six daemons ran; the last one stops cleanly.
          expect(
            children.filter((c) => c.log().includes('"msg":"sink starting"')).length,
          ).toBeGreaterThanOrEqual(KILLS + 1);
          expect(await daemon.stop()).toBe(0);
          // The dead letters (by origin and reason) are exactly those of a crash-free run, though five sinks died
          // with letters in flight.
          const expected = await expectedLetters(env.config);
          expect(expected.length).toBeGreaterThan(0);
          const letters = await listDeadLetters(testKafka(), dlqTopic(env.config.kafka.topicPrefix));
          expect(
            letters.map((d) => `${d.sourceTopic}/${d.sourcePartition}/${d.sourceOffset}/${d.code}`).sort(),
          ).toEqual(expected);
        } finally {
          await daemon.kill9();
          await dropSlot(env.legacyUrl, env.config.source.slot);
        }
      }),
    300_000,
  );
});
