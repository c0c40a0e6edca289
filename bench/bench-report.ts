import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { KAFKA_VERSION } from '../src/stack/local-kafka.js';

/** Median, min and max of several runs: benchmarks report all three, never one run. */
export function stats(values: number[]): { median: number; min: number; max: number; runs: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, runs: sorted.length };
}

/** `--name N` from the command line, or the default. */
export function numberArg(name: string, dflt: number): number {
  const args = process.argv.slice(2);
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
}

export const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits });

function machine(pgVersion: string): string {
  const commit = (() => {
    try {
      return execFileSync('git', ['rev-parse', '--short', 'HEAD']).toString().trim();
    } catch {
      return 'unknown';
    }
  })();
  const cpu = cpus()[0]?.model ?? 'unknown cpu';
  return `commit ${commit}; ${cpus().length} × ${cpu}; ${Math.round(totalmem() / 2 ** 30)} GiB; Node ${process.version}; PostgreSQL ${pgVersion}; Kafka ${KAFKA_VERSION} (local, single node)`;
}

/** Prints the table and appends it, dated, with the command and machine facts, to BENCHMARKS.md. */
export function report(o: {
  title: string;
  command: string;
  table: string[][];
  notes?: string[];
  pgVersion: string;
}) {
  const [head, ...rows] = o.table;
  const md = [
    `| ${head!.join(' | ')} |`,
    `|${head!.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
  const section = [
    `### ${o.title} — ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    '',
    `Command: \`${o.command}\`  `,
    `Machine: ${machine(o.pgVersion)}`,
    '',
    md,
    '',
    ...(o.notes ?? []).map((n) => `- ${n}`),
    '',
  ].join('\n');
  console.log(`\n${md}\n`);
  const file = new URL('../BENCHMARKS.md', import.meta.url);
  if (!existsSync(file)) {
    writeFileSync(
      file,
      '# Benchmarks\n\nAppended by `npm run bench` (and its parts); newest last. Each figure is the median of several runs with the spread (min–max) beside it.\n\n',
    );
  }
  appendFileSync(file, `${section}\n`);
}
