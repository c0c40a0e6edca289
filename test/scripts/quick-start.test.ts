import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { LegacyWorkload } from '../../src/workload/legacy-workload.js';
import { seedLegacy } from '../../src/workload/workload-db.js';
import { waitFor } from '../helpers/daemon.js';
import { summary, waitForConvergence } from '../helpers/pipeline-harness.js';
import { dropSlot, freshDatabase, freshName, kafkaBrokers } from '../helpers/resources.js';
import { isClean } from '../helpers/v2-oracle.js';

/**
 * The README's quick start, run line by line as a user would type it, in an empty directory: `cp` the example
 * config, `export` the connection settings, then the five `npx replicator` commands. What the user's world provides
 * is stood in for: their legacy database (a fresh one, seeded), their V2 database, the local broker — and, as the
 * user edits their copy of the config, the slot, publication, topic prefix and group get names of their own.
 */

const root = new URL('../../', import.meta.url).pathname;
const bin = join(root, 'bin/replicator.js');

/** The commands between the README's quick-start markers, comments removed. */
function quickStart(): string[] {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const block = /<!-- quick-start -->\s*```sh\n([\s\S]*?)```\s*<!-- \/quick-start -->/.exec(readme)?.[1];
  if (!block) throw new Error('README.md has no quick-start block');
  return block
    .split('\n')
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter((l) => l !== '');
}

/** What each command must print (the README's comment says the same). */
const PRINTS: Record<string, RegExp> = {
  'init-target': /V2 tables and replicator schema ready/,
  status: /^replicator status: HEALTHY/m,
  verify: /^verify \S+ +snapshot \S+ +CLEAN$/m,
  cutover: /dry run: would fence/,
};

const children: ChildProcess[] = [];
const slots: { url: string; slot: string }[] = [];
afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  for (const s of slots) await dropSlot(s.url, s.slot);
});

function runCommand(
  args: string[],
  cwd: string,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { cwd, env }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, out: `${stdout}${stderr}` });
    });
  });
}

describe('README quick start', () => {
  it('cp, export, init-target, start, status, verify, cutover --dry-run: each does and prints what the README says', async () => {
    const legacy = await freshDatabase('quickstart_legacy');
    const target = await freshDatabase('quickstart_v2');
    await seedLegacy(
      legacy.url,
      new LegacyWorkload({ seed: 9, customers: 30, shops: 2, invalidShare: 0, bigNotesBytes: 0 }),
      300,
    );
    const stand = {
      REPLICATOR_SOURCE_URL: legacy.url,
      REPLICATOR_TARGET_URL: target.url,
      REPLICATOR_KAFKA_BROKERS: kafkaBrokers(),
    } as Record<string, string>;
    const dir = mkdtempSync(join(tmpdir(), 'quick-start-'));
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      REPLICATOR_LOG_LEVEL: 'info',
      // Any free port for /metrics: other daemons run at once in this suite.
      REPLICATOR_METRICS_PORT: '0',
    };
    const names = { slot: freshName('slot'), publication: freshName('pub') };
    slots.push({ url: legacy.url, slot: names.slot });

    const commands = quickStart();
    expect(commands.filter((c) => c.startsWith('npx replicator')).length).toBe(5);
    let log = '';
    for (const line of commands) {
      if (line.startsWith('cp ')) {
        const [, from, to] = line.split(/\s+/);
        copyFileSync(join(root, from!), join(dir, to!));
        // The user's edit: names of their own.
        const config = parseYaml(readFileSync(join(dir, to!), 'utf8')) as Record<
          string,
          Record<string, unknown>
        >;
        config.source = { ...config.source, ...names };
        config.kafka = { ...config.kafka, topicPrefix: freshName('legacy') };
        config.sink = { ...config.sink, groupId: freshName('sink') };
        writeFileSync(join(dir, to!), stringifyYaml(config));
        continue;
      }
      const exported = /^export (\w+)=/.exec(line);
      if (exported) {
        const name = exported[1]!;
        expect(stand[name], `a stand-in for ${name}`).toBeDefined();
        env[name] = stand[name];
        continue;
      }
      const m = /^npx replicator (.+?)( &)?$/.exec(line);
      expect(m, `a command the test knows: ${line}`).not.toBeNull();
      const args = m![1]!.split(/\s+/);
      if (m![2]) {
        // In the background, as `&` puts it: the daemon. It snapshots the seeded rows, then streams.
        const child = spawn(process.execPath, [bin, ...args], {
          cwd: dir,
          env,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        children.push(child);
        child.stdout?.on('data', (d: Buffer) => (log += d.toString()));
        child.stderr?.on('data', (d: Buffer) => (log += d.toString()));
        await waitFor(
          'the daemon streaming',
          async () => (/"msg":"streaming"/.test(log) ? true : undefined),
          120_000,
        );
        const diff = await waitForConvergence(legacy.url, target.url, 120_000);
        expect(isClean(diff), `${summary(diff)}\n${log.slice(-2000)}`).toBe(true);
        continue;
      }
      const { code, out } = await runCommand(args, dir, env);
      expect(code, `${line}\n${out}`).toBe(0);
      expect(out, line).toMatch(PRINTS[args[0]!]!);
    }
    const daemon = children.at(-1)!;
    expect(daemon.exitCode, log.slice(-2000)).toBe(null);
    daemon.kill('SIGTERM');
    expect(await new Promise((r) => daemon.on('exit', (c) => r(c)))).toBe(0);
  }, 300_000);
});
