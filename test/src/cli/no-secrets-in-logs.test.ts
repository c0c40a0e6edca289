import { randomBytes } from 'node:crypto';
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
 * (in any encoding) nor a full URL may appear in any line they print.
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

function expectNoSecret(output: string, urls: string[]) {
  const forms = [password, encodeURIComponent(password), ...urls, ...urls.map(encodeURIComponent)];
  for (const line of output.split('\n')) {
    for (const secret of forms)
      expect(line.includes(secret), `a line contains a secret: ${line}`).toBe(false);
  }
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
});
