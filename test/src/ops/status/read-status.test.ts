import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ensureReplicatorSchema } from '../../../../connectors/postgres-sink/target-schema.js';
import { silentLogger } from '../../../../src/core/logger.js';
import { readStatus } from '../../../../src/ops/status/read-status.js';
import { progressBar, renderStatus } from '../../../../src/ops/status/render-status.js';
import { parseConfig } from '../../../../src/pipeline/config/load-config.js';
import { runCli } from '../../../helpers/daemon.js';
import { freshDatabase, freshName, kafkaBrokers, withClient } from '../../../helpers/resources.js';

/** `status` against a legacy database no replicator has touched: unhealthy, and it changes nothing. */

async function legacyDatabase() {
  const db = await freshDatabase('status');
  await withClient(db.url, (c) => c.query('CREATE TABLE t (id int PRIMARY KEY, v text)'));
  return db;
}

function configInput(url: string, createPublication: boolean) {
  return {
    source: {
      url,
      tables: ['public.t'],
      slot: freshName('slot'),
      publication: freshName('pub'),
      createPublication,
    },
    kafka: { brokers: [kafkaBrokers()], topicPrefix: freshName('raw') },
    sink: { groupId: freshName('sgroup') },
  };
}

const publicationExists = (url: string, name: string) =>
  withClient(
    url,
    async (c) => (await c.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [name])).rowCount === 1,
  );

describe('replicator status', () => {
  it('exits 1 and names the problems when no replicator has run, without creating the publication', async () => {
    const db = await legacyDatabase();
    const input = configInput(db.url, true);
    const dir = mkdtempSync(join(tmpdir(), 'replicator-status-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify(input));

    const json = await runCli(['status', '--json', '--config', file]);
    expect(json.code, json.stderr).toBe(1);
    const report = JSON.parse(json.stdout) as Awaited<ReturnType<typeof readStatus>>;
    expect(report.healthy).toBe(false);
    expect(report.problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/slot .* does not exist/),
        expect.stringMatching(/no source holds the leader lock/),
      ]),
    );
    expect(report.preflight).toContainEqual(
      expect.objectContaining({
        check: 'publication',
        level: 'warn',
        message: expect.stringMatching(/does not exist yet/),
      }),
    );
    expect(report.preflight).toContainEqual(expect.objectContaining({ check: 'wal_level', level: 'ok' }));
    expect(report.snapshot.state).toBe('not started');
    expect(report.kafka.reachable).toBe(true);
    expect(report.kafka.groups.map((g) => [g.stage, g.members])).toEqual([['sink', 0]]);
    expect(report.kafka.dlq.messages).toBe(0);
    expect(report.kafka.publishedChanges).toBe(0);
    expect(report.warnings).toContainEqual(expect.stringMatching(/no target configured/));
    // Read-only: the source would create the publication; status only says so.
    expect(await publicationExists(db.url, input.source.publication)).toBe(false);

    const text = await runCli(['status', '--config', file]);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/^replicator status: UNHEALTHY \(2 problems\)/);
    expect(text.stdout).toMatch(/leader: none/);
    expect(text.stdout).toMatch(/WARN publication .* does not exist yet/);
  });

  it('reports a missing publication as an error with its fix when the source may not create it', async () => {
    const db = await legacyDatabase();
    const input = configInput(db.url, false);
    const report = await readStatus(parseConfig(input, {}), { maxLagSeconds: 300 }, silentLogger());
    const finding = report.preflight.find((f) => f.check === 'publication');
    expect(finding).toMatchObject({ level: 'error', fix: expect.stringMatching(/^CREATE PUBLICATION/) });
    expect(report.problems).toContainEqual(expect.stringMatching(/publication .* does not exist/));
    expect(await publicationExists(db.url, input.source.publication)).toBe(false);
  });

  it('reports an unreachable database as a problem, naming host:port/db only', async () => {
    const input = configInput('postgres://someone:hunter2@127.0.0.1:1/nowhere', true);
    const report = await readStatus(parseConfig(input, {}), { maxLagSeconds: 300 }, silentLogger());
    expect(report.healthy).toBe(false);
    expect(report.problems[0]).toMatch(/^legacy database 127\.0\.0\.1:1\/nowhere is unreachable/);
    const text = renderStatus(report, { tty: false });
    expect(text).toMatch(/UNREACHABLE/);
    expect(text).not.toMatch(/hunter2/);
  });

  it('reads lag from replicator.applied and the cutover state from replicator.cutovers in the target', async () => {
    const db = await legacyDatabase();
    const target = await freshDatabase('status_v2');
    const input = { ...configInput(db.url, true), target: { url: target.url } };
    const config = parseConfig(input, {});
    const before = await readStatus(config, { maxLagSeconds: 300 }, silentLogger());
    expect(before.target).toMatchObject({
      reachable: true,
      appliedCommitTs: null,
      lagSeconds: null,
      appliedChanges: 0,
    });
    expect(before.cutover).toEqual({ state: 'none' });
    expect(before.warnings).toContainEqual(expect.stringMatching(/has applied nothing yet/));

    await withClient(target.url, async (c) => {
      await ensureReplicatorSchema(c);
      await c.query(
        "INSERT INTO replicator.applied (group_id, commit_ts) VALUES ($1, now() - interval '10 minutes')",
        [config.sink.groupId],
      );
      await c.query("INSERT INTO replicator.cutovers (id, shop, phase) VALUES ('c1', NULL, 'draining')");
      // The sink's offsets: the change topic's count, the heartbeat topic's not.
      await c.query(
        `INSERT INTO replicator.sink_offsets (group_id, topic, partition, next_offset) VALUES
           ($1, $2, 0, 7), ($1, $2, 1, 5), ($1, $3, 0, 100), ('another group', $2, 0, 9)`,
        [config.sink.groupId, `${input.kafka.topicPrefix}.public.t`, `${input.kafka.topicPrefix}.heartbeat`],
      );
    });
    const after = await readStatus(config, { maxLagSeconds: 300 }, silentLogger());
    expect(after.target?.lagSeconds).toBeGreaterThanOrEqual(600);
    expect(after.target?.appliedChanges).toBe(12);
    expect(after.problems).toContainEqual(
      expect.stringMatching(/^replication lag is \d+\.\d s, above 300 s/),
    );
    expect(after.cutover).toMatchObject({
      state: 'present',
      rows: [expect.objectContaining({ id: 'c1', phase: 'draining' })],
    });
    const text = renderStatus(after, { tty: false });
    expect(text).toMatch(/^cutover {4}draining, id c1, started /m);
    expect(text).toMatch(/^target {5}\S+ {2}lag \d+\.\d s/m);
  });

  it('draws a progress bar on a terminal only', () => {
    expect(progressBar(0.5, true, 10)).toBe('[#####-----] 50%');
    expect(progressBar(0.5, false)).toBe('50%');
    expect(progressBar(1.7, true, 4)).toBe('[####] 100%');
  });
});
