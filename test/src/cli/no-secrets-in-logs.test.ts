import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { quoteIdent, quoteLiteral } from '../../../src/core/sql.js';
import type { ReplicatorConfig } from '../../../src/pipeline/config/load-config.js';
import { applyWrites, LegacyWorkload } from '../../../src/workload/legacy-workload.js';
import { ChildReplicator } from '../../helpers/child-source.js';
import { ANY_PORT, daemonUrl, runCli, waitReady } from '../../helpers/daemon.js';
import { freshPipeline, summary, waitForConvergence } from '../../helpers/pipeline-harness.js';
import { dropSlot, freshName, withAdmin, withClient } from '../../helpers/resources.js';
import { isClean } from '../../helpers/v2-oracle.js';

/**
 * The daemon runs with connection URLs that carry a password, at debug level, through a snapshot, streaming, dead
 * letters and a graceful stop; `status` runs with them too, once with an unreachable target. Neither the password
 * (in any encoding) nor a full URL may appear in any line they print. Then every command runs with the PostgreSQL
 * password, a Kafka SASL password and a Schema Registry password (in its URL), on the paths that work and on the
 * paths that fail (the broker refuses the SASL handshake, the registry is unreachable): none of them may appear.
 */

const role = freshName('pwrole');
// Characters that URL encoding changes, so the encoded form is checked as well.
const password = `pw-${randomBytes(8).toString('hex')}-s3cr3t/@:`;
let env: Awaited<ReturnType<typeof freshPipeline>>;
let child: ChildReplicator | undefined;

function withPassword(url: string, port?: number): string {
  const u = new URL(url);
  u.username = role;
  u.password = password;
  if (port !== undefined) u.port = String(port);
  return u.toString();
}

afterAll(async () => {
  await child?.kill9();
  if (env) {
    await dropSlot(env.legacyUrl, env.config.source.slot);
    // What the role created (the publication, the sink's schema) goes to the admin so the role can go.
    for (const url of [env.legacyUrl, env.targetUrl]) {
      await withClient(url, (c) => c.query(`REASSIGN OWNED BY ${quoteIdent(role)} TO CURRENT_USER`));
      await withClient(url, (c) => c.query(`DROP OWNED BY ${quoteIdent(role)}`));
    }
  }
  await withAdmin((c) => c.query(`DROP ROLE IF EXISTS ${quoteIdent(role)}`));
});

function expectNoSecret(output: string, urls: string[], passwords: string[] = []) {
  const forms = [
    ...[password, ...passwords].flatMap((p) => [p, encodeURIComponent(p), Buffer.from(p).toString('base64')]),
    ...urls,
    ...urls.map(encodeURIComponent),
  ];
  for (const line of output.split('\n')) {
    for (const secret of forms)
      expect(line.includes(secret), `a line contains a secret: ${line}`).toBe(false);
  }
}

const workloadBin = new URL('../../../bin/replicator-workload.js', import.meta.url).pathname;

/** `replicator-workload <args>` to completion: its exit code and output. */
function runWorkloadCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [workloadBin, ...args], { maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('no secret in any log line', () => {
  it('the daemon at debug level and `status` never print the password or a full connection URL', async () => {
    env = await freshPipeline('secrets');
    await withAdmin(async (c) => {
      await c.query(`CREATE ROLE ${quoteIdent(role)} LOGIN SUPERUSER`);
      await c.query(`ALTER ROLE ${quoteIdent(role)} PASSWORD ${quoteLiteral(password)}`);
    });
    const sourceUrl = withPassword(env.legacyUrl);
    const targetUrl = withPassword(env.targetUrl);
    const urls = [sourceUrl, targetUrl];
    // Connect with it, to prove the URL carries a working credential.
    expect(
      await withClient(sourceUrl, async (c) => (await c.query('SELECT current_user AS u')).rows[0].u),
    ).toBe(role);

    const workload = new LegacyWorkload({
      seed: 5,
      customers: 10,
      shops: 2,
      invalidShare: 0.2,
      bigNotesBytes: 5000,
    });
    await withClient(env.legacyUrl, (c) => applyWrites(c, workload.seed(20)));
    // The source URL comes from the environment, the target URL from the config file.
    const config: ReplicatorConfig = { ...env.config, target: { url: targetUrl } };
    const envVars = { ...ANY_PORT, REPLICATOR_SOURCE_URL: sourceUrl, REPLICATOR_LOG_LEVEL: 'debug' };
    child = new ChildReplicator(config, 'all', envVars);
    child.start();
    await waitReady(await daemonUrl(child), 'leader');
    await child.waitForLog(/"msg":"streaming"/, 60_000);
    await withClient(env.legacyUrl, async (c) => {
      for (let i = 0; i < 40; i++) await applyWrites(c, [workload.next()]);
    });
    const diff = await waitForConvergence(env.legacyUrl, env.targetUrl);
    expect(isClean(diff), summary(diff)).toBe(true);

    const status = await runCli(['status', '--config', child.configFile], envVars);
    expect(status.stdout).toMatch(/replicator status: HEALTHY/);
    const unreachable = await runCli(['status', '--json', '--config', child.configFile], {
      ...envVars,
      REPLICATOR_TARGET_URL: withPassword(env.targetUrl, 1),
    });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stdout).toMatch(/target database 127\.0\.0\.1:1\/\S+ is unreachable/);

    expect(await child.stop()).toBe(0);
    const log = child.log();
    // Debug lines were written: the check covers what debug logging prints.
    expect(log).toMatch(/"level":20,.*"msg":"configuration"/);
    expect(log).toMatch(/"msg":"stopped"/);
    expectNoSecret(log, [...urls, withPassword(env.targetUrl, 1)]);
    for (const run of [status, unreachable]) {
      expectNoSecret(`${run.stdout}\n${run.stderr}`, [...urls, withPassword(env.targetUrl, 1)]);
    }
  }, 240_000);

  it('every command, with the PostgreSQL password, a Kafka SASL password and a Schema Registry password, on paths that work and paths that fail, prints none of them', async () => {
    expect(env, 'the first test sets up the databases and the role').toBeDefined();
    const saslPassword = `sasl-${randomBytes(8).toString('hex')}-p@ss:/`;
    const registryPassword = `reg-${randomBytes(8).toString('hex')}-p@ss:/`;
    const registryUrl = `http://registry-user:${encodeURIComponent(registryPassword)}@127.0.0.1:1`;
    const sourceUrl = withPassword(env.legacyUrl);
    const targetUrl = withPassword(env.targetUrl);
    const urls = [sourceUrl, targetUrl, registryUrl];
    const c = env.config;
    const base = {
      source: {
        url: sourceUrl,
        tables: c.source.tables.map((t) => `${t.schema}.${t.table}`),
        slot: c.source.slot,
        publication: c.source.publication,
      },
      target: { url: targetUrl },
      kafka: { brokers: c.kafka.brokers, topicPrefix: c.kafka.topicPrefix, partitions: c.kafka.partitions },
      sink: { groupId: c.sink.groupId },
    };
    const dir = mkdtempSync(join(tmpdir(), 'no-secrets-'));
    const file = (name: string, config: unknown) => {
      const path = join(dir, `${name}.json`);
      writeFileSync(path, JSON.stringify(config));
      return path;
    };
    // Kafka works; PostgreSQL URLs carry the password.
    const working = file('working', base);
    // The broker refuses the SASL handshake (its listener is PLAINTEXT): every Kafka path fails.
    const sasl = file('sasl', {
      ...base,
      kafka: { ...base.kafka, sasl: { mechanism: 'plain', username: 'replicator', password: saslPassword } },
      schemaRegistry: { url: registryUrl },
    });
    // Kafka works, the registry (with credentials in its URL) is unreachable: the Avro paths fail.
    const registry = file('registry', { ...base, schemaRegistry: { url: registryUrl } });

    const workload = new LegacyWorkload({
      seed: 6,
      customers: 10,
      shops: 2,
      invalidShare: 0,
      bigNotesBytes: 0,
    });
    const outputs: { what: string; code: number; out: string }[] = [];
    const run = async (what: string, args: string[], config: string) => {
      const r = await runCli([...args, '--config', config], { REPLICATOR_LOG_LEVEL: 'debug' });
      outputs.push({ what, code: r.code, out: `${r.stdout}\n${r.stderr}` });
      return r;
    };

    // Every command, on the working config (its normal output) and on the failing ones.
    for (const [name, config] of [
      ['working', working],
      ['sasl', sasl],
      ['registry', registry],
    ] as const) {
      await run(`status ${name}`, ['status'], config);
      await run(`status --json ${name}`, ['status', '--json'], config);
      await run(`verify ${name}`, ['verify', '--wait', '5'], config);
      await run(`verify --json --repair ${name}`, ['verify', '--json', '--repair', '--wait', '5'], config);
      await run(`cutover --dry-run ${name}`, ['cutover', '--dry-run', '--allow-dlq'], config);
      await run(`dlq list ${name}`, ['dlq', 'list', '--all'], config);
      await run(`dlq list --json ${name}`, ['dlq', 'list', '--json'], config);
      await run(`dlq replay ${name}`, ['dlq', 'replay'], config);
      await run(`init-target ${name}`, ['init-target'], config);
      await run(`rollback ${name}`, ['rollback'], config);
    }
    // The daemon, each way, at debug level, until it has met the failure, then stopped.
    const daemonConfig = (extra: { kafka?: object; schemaRegistry?: { url: string } }): ReplicatorConfig =>
      ({
        ...env.config,
        source: { ...env.config.source, url: sourceUrl },
        target: { url: targetUrl },
        kafka: { ...env.config.kafka, ...extra.kafka },
        ...(extra.schemaRegistry ? { schemaRegistry: extra.schemaRegistry } : {}),
      }) as ReplicatorConfig;
    for (const [name, config, until, write] of [
      [
        'start (SASL refused)',
        daemonConfig({
          kafka: { sasl: { mechanism: 'plain', username: 'replicator', password: saslPassword } },
          schemaRegistry: { url: registryUrl },
        }),
        /SASL/,
        false,
      ],
      [
        'start (registry unreachable)',
        daemonConfig({ schemaRegistry: { url: registryUrl } }),
        /ECONNREFUSED/,
        true,
      ],
    ] as const) {
      const daemon = new ChildReplicator(config, 'all', { ...ANY_PORT, REPLICATOR_LOG_LEVEL: 'debug' });
      try {
        daemon.start();
        if (write) {
          // A change makes the source encode (Avro: the schema goes to the registry).
          await daemon.waitForLog(/"msg":"streaming"/, 60_000);
          await withClient(env.legacyUrl, (c) => applyWrites(c, [workload.next()]));
        }
        await daemon.waitForLog(until, 60_000);
      } finally {
        await daemon.stop();
        await daemon.kill9();
      }
      outputs.push({ what: name, code: 0, out: daemon.log() });
    }
    const live = await runWorkloadCli([
      'run',
      '--url',
      sourceUrl,
      '--rate',
      '20',
      '--duration',
      '1s',
      '--seed',
      '3',
    ]);
    outputs.push({ what: 'replicator-workload run', code: live.code, out: `${live.stdout}\n${live.stderr}` });
    // Last: it drops the slot and the publication.
    await run('finalize', ['finalize'], working);

    // The commands did run: the working ones succeeded where nothing is wrong (status is unhealthy: no daemon
    // runs), the SASL ones met the refusal.
    const code = (what: string) => outputs.find((o) => o.what === what)?.code;
    const ok = ['verify working', 'dlq list working', 'dlq replay working', 'init-target working'];
    expect(ok.map((w) => [w, code(w)])).toEqual(ok.map((w) => [w, 0]));
    expect(outputs.find((o) => o.what === 'dlq list working')?.out).toMatch(/dead letter\(s\)/);
    expect(outputs.find((o) => o.what === 'verify working')?.out).toMatch(/ CLEAN$/m);
    for (const w of ['dlq list sasl', 'dlq replay sasl']) {
      expect(code(w), w).not.toBe(0);
      expect(outputs.find((o) => o.what === w)?.out, w).toMatch(/SASL/);
    }
    expect(code('replicator-workload run')).toBe(0);
    // The daemons met their failures: the broker's SASL refusal, the registry's refused connection.
    expect(outputs.find((o) => o.what === 'start (SASL refused)')?.out).toMatch(/SASL/);
    expect(outputs.find((o) => o.what === 'start (registry unreachable)')?.out).toMatch(/ECONNREFUSED/);
    for (const o of outputs) {
      // (After the working replay every letter is marked replayed: `dlq list --json` then rightly prints nothing.)
      if (o.what !== 'dlq list --json registry')
        expect(o.out.trim().length, `${o.what} printed nothing`).toBeGreaterThan(0);
      expectNoSecret(o.out, urls, [saslPassword, registryPassword]);
    }
  }, 600_000);
});
