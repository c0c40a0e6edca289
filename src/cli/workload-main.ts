import { Command, InvalidArgumentError, Option } from 'commander';
import pg from 'pg';
import { exitCodeFor, isReplicatorError } from '../core/errors.js';
import { describePgUrl } from '../core/redact.js';
import {
  DEFAULT_WORKLOAD,
  LegacyWorkload,
  liveSeed,
  readWorkloadState,
  type WorkloadOptions,
} from '../workload/legacy-workload.js';
import { parseDuration } from '../workload/open-loop.js';
import { describeLoad, runLegacyLoad, seedLegacy, seedLegacyIfEmpty } from '../workload/workload-db.js';

/**
 * `replicator-workload`: the realistic legacy workload against a legacy database — `seed` (schema + history) and
 * `run` (an open-loop live load that reports commit latency). Deterministic from --seed.
 */
const program = new Command('replicator-workload').description(
  'realistic legacy writes: seed a legacy database, then apply a live open-loop load',
);
let exitCode = 0;

const positiveInt = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive integer');
  return n;
};
const nonNegativeInt = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be an integer >= 0');
  return n;
};
const share = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError('must be between 0 and 1');
  return n;
};
const positiveNumber = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number');
  return n;
};

const duration = (v: string): number => {
  try {
    return parseDuration(v);
  } catch (e) {
    throw new InvalidArgumentError(e instanceof Error ? e.message : String(e));
  }
};

interface ShapeOpts {
  url: string;
  seed: number;
  customers: number;
  shops: number;
  invalidShare: number;
  bigNotesBytes: number;
}

const withShape = (c: Command) =>
  c
    .requiredOption('--url <url>', 'legacy database (postgres://…)')
    .option(
      '--seed <n>',
      'PRNG seed: the same seed gives the same writes',
      nonNegativeInt,
      DEFAULT_WORKLOAD.seed,
    )
    .option(
      '--customers <n>',
      'distinct customers (emails shared by their bookings)',
      positiveInt,
      DEFAULT_WORKLOAD.customers,
    )
    .option('--shops <n>', 'shops the bundles belong to', positiveInt, DEFAULT_WORKLOAD.shops)
    .option(
      '--invalid-share <x>',
      'share of writes that leave an invalid row',
      share,
      DEFAULT_WORKLOAD.invalidShare,
    )
    .option(
      '--big-notes-bytes <n>',
      'size of the TOASTed contactDetails.notes of a tenth of the bookings (0: none)',
      nonNegativeInt,
      DEFAULT_WORKLOAD.bigNotesBytes,
    );

const shape = (o: ShapeOpts, seed: number): WorkloadOptions => ({
  seed,
  customers: o.customers,
  shops: o.shops,
  invalidShare: o.invalidShare,
  bigNotesBytes: o.bigNotesBytes,
});

withShape(
  program
    .command('seed')
    .description(
      'create the legacy schema if missing and seed bookings, profiles and bundles (an empty database)',
    ),
)
  .option('--bookings <n>', 'bookings to seed', positiveInt, 2000)
  .option(
    '--if-empty',
    'leave a database that already holds bookings as it is (an init step run on every start)',
  )
  .action(async (o: ShapeOpts & { bookings: number; ifEmpty?: boolean }) => {
    const workload = new LegacyWorkload(shape(o, o.seed));
    console.log(`seeding ${describePgUrl(o.url)}: ${o.bookings} bookings, seed ${o.seed}`);
    const r = o.ifEmpty
      ? await seedLegacyIfEmpty(o.url, workload, o.bookings)
      : await seedLegacy(o.url, workload, o.bookings);
    if (!r) {
      console.log('the legacy database already holds bookings: left as it is');
      return;
    }
    console.log(
      `${r.writes.toLocaleString('en-US')} writes in ${r.seconds.toFixed(1)} s (${Math.round(r.writes / r.seconds)}/s), ${r.invalid} invalid on purpose`,
    );
    console.log(
      `rows: ${Object.entries(r.rows)
        .map(([t, n]) => `${t} ${n}`)
        .join(', ')}`,
    );
    console.log(
      `${r.bigNotes} bookings with notes > 4 kB; bookings' TOAST table ${(r.toastBytes / 1024).toFixed(0)} kB`,
    );
    console.log(JSON.stringify({ seed: o.seed, bookings: o.bookings, ...r }));
  });

withShape(
  program
    .command('run')
    .description(
      'live writes at a target rate, open loop (each issued on schedule whatever earlier ones take), from a pool; prints the achieved rate and commit latency',
    ),
)
  .requiredOption('--rate <n>', 'writes per second offered', positiveNumber)
  .requiredOption('--duration <d>', 'how long: 60, 60s, 2m', duration)
  .option('--connections <n>', 'pool size', positiveInt, 8)
  .addOption(new Option('--interval <d>', 'a progress line every').argParser(duration).default(5_000, '5s'))
  .action(
    async (o: ShapeOpts & { rate: number; duration: number; connections: number; interval: number }) => {
      // Continue from what the database holds (bookings to move along, references not to reuse), on a stream
      // distinct from the seeding's.
      const workload = new LegacyWorkload(shape(o, liveSeed(o.seed)));
      const client = new pg.Client({ connectionString: o.url, application_name: 'replicator-workload' });
      await client.connect();
      try {
        workload.adopt(await readWorkloadState(client));
      } finally {
        await client.end();
      }
      console.log(
        `live load on ${describePgUrl(o.url)}: ${o.rate}/s for ${(o.duration / 1000).toFixed(0)} s, ${o.connections} connections, seed ${o.seed}`,
      );
      const controller = new AbortController();
      process.once('SIGINT', () => controller.abort());
      process.once('SIGTERM', () => controller.abort());
      const r = await runLegacyLoad(o.url, workload, {
        rate: o.rate,
        durationMs: o.duration,
        connections: o.connections,
        signal: controller.signal,
        intervalMs: o.interval,
        onInterval: (s) =>
          console.log(
            `[${s.elapsed.toFixed(0).padStart(4)} s] ${s.committed} committed, ${s.failed} failed, ${s.rate.toFixed(0)}/s, commit p50 ${s.p50.toFixed(1)} ms p99 ${s.p99.toFixed(1)} ms`,
          ),
      });
      for (const line of describeLoad(r)) console.log(line);
      console.log(JSON.stringify(r));
      if (r.failed > 0) exitCode = 1;
    },
  );

program.parseAsync(process.argv).then(
  () => process.exit(exitCode),
  (e: unknown) => {
    const code = isReplicatorError(e) ? e.code : 'UNEXPECTED';
    console.error(JSON.stringify({ level: 'error', code, msg: e instanceof Error ? e.message : String(e) }));
    process.exit(exitCodeFor(e));
  },
);
