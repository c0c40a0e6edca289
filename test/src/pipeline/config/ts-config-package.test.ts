import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { freshDatabase, kafkaBrokers, withClient } from '../../../helpers/resources.js';

const run = promisify(execFile);
const checkout = new URL('../../../../', import.meta.url).pathname;

/**
 * A user's `replicator.config.ts` outside the checkout, importing `defineConfig` and the config type from the
 * package by its name, loads with the *built* package — no tsx, no checkout on the path — the way an installed
 * package or the Docker image runs it.
 */
const dir = mkdtempSync(join(tmpdir(), 'ts-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('a .ts config outside the checkout loads with the built package (defineConfig from the package name)', async () => {
  // The package as npm would install it: package.json, bin/, dist/ (built here), its dependencies.
  const pkg = join(dir, 'node_modules', 'pg-v2-replicator');
  mkdirSync(pkg, { recursive: true });
  cpSync(join(checkout, 'package.json'), join(pkg, 'package.json'));
  cpSync(join(checkout, 'bin'), join(pkg, 'bin'), { recursive: true });
  symlinkSync(join(checkout, 'node_modules'), join(pkg, 'node_modules'));
  await run(
    process.execPath,
    [
      join(checkout, 'node_modules/typescript/bin/tsc'),
      '-p',
      join(checkout, 'tsconfig.build.json'),
      '--outDir',
      join(pkg, 'dist'),
    ],
    { cwd: checkout },
  );

  const target = await freshDatabase('tsconfig_v2');
  const configPath = join(dir, 'replicator.config.ts');
  writeFileSync(
    configPath,
    [
      "import { type ConfigInput, defineConfig } from 'pg-v2-replicator';",
      '',
      "const tables: string[] = ['public.bookings'];",
      'const config: ConfigInput = {',
      `  source: { url: ${JSON.stringify(target.url)}, tables },`,
      `  target: { url: ${JSON.stringify(target.url)} },`,
      `  kafka: { brokers: [${JSON.stringify(kafkaBrokers())}] },`,
      '};',
      'export default defineConfig(config);',
      '',
    ].join('\n'),
  );

  const { stdout } = await run(
    process.execPath,
    [join(pkg, 'bin/replicator.js'), 'init-target', '--config', configPath],
    { cwd: dir, env: { ...process.env, NODE_OPTIONS: '' } },
  );
  expect(stdout).toMatch(/V2 tables and replicator schema ready/);
  // The target named only in the .ts file now holds the V2 tables.
  const tables = await withClient(target.url, async (c) =>
    (
      await c.query<{ t: string }>(
        "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
      )
    ).rows.map((r) => r.t),
  );
  expect(tables).toEqual(
    expect.arrayContaining(['bookings', 'bundles', 'customer_profiles', 'payments', 'users']),
  );
}, 180_000);
