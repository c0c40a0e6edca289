import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { z } from 'zod';
import { waitFor } from '../helpers/daemon.js';
import { summary, waitForConvergence } from '../helpers/pipeline-harness.js';
import { dropSlot, freshDatabase, freshName, kafkaBrokers, withClient } from '../helpers/resources.js';
import { isClean } from '../helpers/v2-oracle.js';

/**
 * `docker compose up` as shipped, without Docker: the compose file's own commands (replicator-init's script, the
 * replicator's command) and its example config run as processes against the local stack. Only what the compose
 * network provides is translated — the services' addresses become fresh local databases and the local broker — and
 * the example's slot, publication, topic prefix and group get unique names (slots are per cluster; tests share it).
 */

const run = promisify(execFile);
const root = new URL('../../', import.meta.url).pathname;
const read = (path: string) => readFileSync(join(root, path), 'utf8');

const service = z.looseObject({
  command: z.union([z.string(), z.array(z.string())]).optional(),
  environment: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
  volumes: z
    .array(z.union([z.string(), z.looseObject({ source: z.string(), target: z.string() })]))
    .optional(),
});
const compose = z
  .looseObject({ services: z.record(z.string(), service) })
  .parse(parseYaml(read('docker-compose.yml')));
const init = compose.services['replicator-init']!;
const replicator = compose.services.replicator!;

const children: ChildProcess[] = [];
const slots: { url: string; slot: string }[] = [];
afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  for (const s of slots) await dropSlot(s.url, s.slot);
});

describe('docker compose up, as shipped', () => {
  it('replicator-init seeds legacy and creates V2 (and leaves both as they are the next time); the replicator then replicates with the example config', async () => {
    const legacy = await freshDatabase('compose_legacy');
    const target = await freshDatabase('compose_v2');
    // The compose network's addresses → the local stack.
    const translate = (value: string) =>
      value
        .replace('postgres://postgres:postgres@legacy-postgres:5432/legacy', legacy.url)
        .replace('postgres://postgres:postgres@v2-postgres:5432/v2', target.url)
        .replace(/^kafka:9092$/, kafkaBrokers());
    const envOf = (s: z.infer<typeof service>) =>
      Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, translate(String(v))]));

    // The mounted config: the file the volume's default names, with names unique to this test.
    const mount = (replicator.volumes ?? []).find((v) => typeof v !== 'string' && v.target.endsWith('.yaml'));
    expect(mount).toBeDefined();
    const { source: mountSource, target: mountTarget } = mount as { source: string; target: string };
    const example = /^\$\{REPLICATOR_CONFIG:-(.+)\}$/.exec(mountSource)?.[1] ?? mountSource;
    const shipped = parseYaml(read(example)) as {
      source: Record<string, unknown>;
      kafka: Record<string, unknown>;
      sink: Record<string, unknown>;
    };
    const names = { slot: freshName('slot'), publication: freshName('pub') };
    slots.push({ url: legacy.url, slot: names.slot });
    const configFile = join(mkdtempSync(join(tmpdir(), 'compose-')), 'config.yaml');
    writeFileSync(
      configFile,
      stringifyYaml({
        ...shipped,
        source: { ...shipped.source, ...names },
        kafka: { ...shipped.kafka, topicPrefix: freshName('legacy') },
        sink: { ...shipped.sink, groupId: freshName('sink') },
      }),
    );
    const argvOf = (command: string | string[] | undefined) =>
      (typeof command === 'string' ? command.split(/\s+/) : (command ?? [])).map((a) =>
        // Compose turns `$$` into `$` before the shell sees it.
        a.replaceAll('$$', '$').replaceAll(mountTarget, configFile),
      );

    // replicator-init, twice: a second `up` runs it again and must leave both databases as they are.
    const [shell, ...shellArgs] = argvOf(init.command);
    for (let i = 0; i < 2; i++) {
      const { stdout } = await run(shell!, shellArgs, { cwd: root, env: { ...process.env, ...envOf(init) } });
      expect(stdout).toMatch(i === 0 ? /"bookings":2000/ : /already holds bookings: left as it is/);
      expect(stdout).toMatch(/V2 tables and replicator schema ready/);
    }
    const seeded = await withClient(legacy.url, async (c) =>
      Number((await c.query<{ n: string }>('SELECT count(*)::text AS n FROM bookings')).rows[0]!.n),
    );
    expect(seeded).toBe(2000);

    // The replicator's command: it snapshots the seeded tables and streams what is written after.
    const [node, ...args] = argvOf(replicator.command);
    expect(node).toBe('node');
    const child = spawn(process.execPath, args, {
      cwd: root,
      env: {
        ...process.env,
        ...envOf(replicator),
        REPLICATOR_METRICS_HOST: '127.0.0.1',
        REPLICATOR_METRICS_PORT: '0',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let log = '';
    child.stdout?.on('data', (d: Buffer) => (log += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    await waitFor(
      'the replicator streaming',
      async () => (/"msg":"streaming"/.test(log) ? true : undefined),
      120_000,
    );
    await withClient(legacy.url, (c) =>
      c.query(
        `INSERT INTO bookings ("bookingReference", "contactDetails", status, "finalAmount")
         VALUES ('COMPOSE-1', '{"email":"compose@example.com"}', 'PAID', 42)`,
      ),
    );
    const diff = await waitForConvergence(legacy.url, target.url, 180_000);
    expect(isClean(diff), `${summary(diff)}\n${log.slice(-3000)}`).toBe(true);
    expect(child.exitCode).toBe(null);
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    expect(code, log.slice(-3000)).toBe(0);
  }, 300_000);
});
