import { spawnSync } from 'node:child_process';

/**
 * `npm run bench`: every benchmark, one after the other (never two at once on this 2-core machine), each
 * appending its table to BENCHMARKS.md and ending with one JSON line; this prints the JSON lines together last.
 */
const benches = [
  ['capture', []],
  ['e2e', []],
  ['verify', []],
  ['cutover', []],
] as const;
const figures: Record<string, unknown> = {};
let failed = false;
for (const [name, args] of benches) {
  console.log(`\n=== bench:${name} ===`);
  const r = spawnSync('npx', ['tsx', `bench/${name}.ts`, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  });
  process.stdout.write(r.stdout);
  const last = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status !== 0) {
    failed = true;
    console.error(`bench:${name} failed (exit ${r.status})`);
    continue;
  }
  try {
    figures[name] = JSON.parse(last);
  } catch {
    figures[name] = null;
  }
}
console.log(JSON.stringify(figures));
process.exit(failed ? 1 : 0);
