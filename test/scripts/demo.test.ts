import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { stackSettings } from '../../src/stack/stack.js';
import {
  dropSlot,
  freshName,
  pgAdminUrl,
  testKafka,
  trackDatabase,
  urlFor,
  withAdmin,
  withClient,
} from '../helpers/resources.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
// Fresh names under this file's prefix: leak-check fails the file if a connection or the slot stays, and drops
// the databases and topics.
const prefix = freshName('demo');
const legacyDb = `${prefix}_legacy`;
const targetDb = `${prefix}_v2`;
trackDatabase(legacyDb);
trackDatabase(targetDb);
const slot = `${prefix}_slot`;

afterAll(async () => {
  await dropSlot(pgAdminUrl(), slot);
  rmSync(join(dirname(stackSettings().kafka.dir), prefix), { recursive: true, force: true });
  // leak-check deletes the topics; the (empty) consumer groups go here.
  const admin = testKafka().admin();
  await admin.connect();
  try {
    await admin.deleteGroups([`${prefix}.transform`, `${prefix}.sink`]).catch(() => []);
  } finally {
    await admin.disconnect();
  }
});

function demo(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', join(root, 'scripts', 'demo.ts'), ...args],
      { cwd: root, timeout: 150_000, killSignal: 'SIGTERM', maxBuffer: 32 << 20 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, out: `${stdout}\n${stderr}` });
      },
    );
  });
}

describe('npm run demo', () => {
  it('seeds, replicates a live load, verifies clean, cuts over and prints the summary', async () => {
    const { code, out } = await demo([
      '--seconds',
      '10',
      '--rate',
      '50',
      '--bookings',
      '200',
      '--prefix',
      prefix,
      '--metrics-port',
      '0',
      '--no-prometheus',
    ]);
    expect(code, out).toBe(0);
    expect(out).toMatch(/^verify: CLEAN/m);
    expect(out).toMatch(/^cutover: flipped .*write-blocked window \d+ ms/m);
    expect(out).toMatch(/^dead-letter queue: \d+ message/m);
    expect(out).toMatch(/^live load: [\d,]+ writes at/m);
    expect(out).toMatch(/^\s+\[\s*5 s\] writes \d+\/s .* \| V2 users \d+/m);
    // The summary's chart of the run: one sparkline per quantity (src/ops/status/sparkline.ts).
    expect(out).toMatch(/^over time: the load, then the catch-up \(\d+ s, one bar per \d+ s\):$/m);
    expect(out).toMatch(/^ {2}writes\/s +[▁▂▃▄▅▆▇█ ]*[▁▂▃▄▅▆▇█] {2}peak \d+\/s$/m);
    expect(out).toMatch(/^ {2}sink msgs\/s +[▁▂▃▄▅▆▇█ ]*[▁▂▃▄▅▆▇█] {2}peak \d+\/s$/m);
    expect(out).toMatch(/^ {2}lag +[▁▂▃▄▅▆▇█ ]*[▁▂▃▄▅▆▇█] {2}peak \d+\.\d s$/m);

    await withClient(urlFor(targetDb), async (c) => {
      const counts = (
        await c.query<{ bookings: number; users: number; bundles: number }>(
          'SELECT (SELECT count(*) FROM bookings)::int AS bookings, (SELECT count(*) FROM users)::int AS users, (SELECT count(*) FROM bundles)::int AS bundles',
        )
      ).rows[0]!;
      expect(counts.bookings).toBeGreaterThan(150);
      expect(counts.users).toBeGreaterThan(0);
      expect(counts.bundles).toBeGreaterThan(0);
      const flag = await c.query("SELECT enabled FROM feature_flags WHERE name = 'V2_BUNDLE_ENGINE'");
      expect(flag.rows[0]?.enabled).toBe(true);
      const phase = await c.query("SELECT phase FROM replicator.cutovers WHERE phase = 'finalized'");
      expect(phase.rowCount).toBe(1);
    });
    await withClient(urlFor(legacyDb), async (c) => {
      // The seeded notes > 4 kB went out of line.
      const toast = await c.query<{ n: string }>(
        "SELECT pg_relation_size(reltoastrelid)::text AS n FROM pg_class WHERE oid = 'bookings'::regclass",
      );
      expect(Number(toast.rows[0]!.n)).toBeGreaterThan(0);
    });
    // finalize dropped the slot.
    const slots = await withAdmin((c) =>
      c.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot]),
    );
    expect(slots.rowCount).toBe(0);
  }, 170_000);
});
