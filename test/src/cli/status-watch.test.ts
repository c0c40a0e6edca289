import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { changeTopics } from '../../../src/contracts/topics.js';
import { CLEAR_SCREEN } from '../../../src/ops/status/render-watch-frame.js';
import { ChildReplicator } from '../../helpers/child-source.js';
import { ANY_PORT, daemonUrl, runCli, waitFor, waitReady } from '../../helpers/daemon.js';
import { freshPipeline } from '../../helpers/pipeline-harness.js';
import { dropSlot, withClient } from '../../helpers/resources.js';

/**
 * `replicator status --watch` in a real terminal: util-linux `script` gives it a pseudo-terminal (no node-pty
 * here), a daemon replicates rows this test wrote, and the frames it redraws must show what the test knows: the
 * changes published and applied, the dead letters. Ctrl-C (^C typed into the terminal) ends it with exit 0.
 */

const bin = new URL('../../../bin/replicator.js', import.meta.url).pathname;
const daemons: ChildReplicator[] = [];
const slots: { url: string; slot: string }[] = [];
const terminals: ChildProcess[] = [];

afterAll(async () => {
  for (const t of terminals) if (t.exitCode === null && t.signalCode === null) t.kill('SIGKILL');
  for (const d of daemons) await d.kill9();
  for (const s of slots) await dropSlot(s.url, s.slot);
});

const BOOKINGS = 20;
const INVALID = 2;

/** `cmd` on a pseudo-terminal: stdin is what is typed, stdout what the terminal shows. */
function inTerminal(cmd: string): {
  child: ChildProcess;
  output: () => string;
  exit: Promise<number | null>;
} {
  // -q quiet, -f flush every write, -e exit with the command's status, -c the command; no typescript file.
  const child = spawn('script', ['-qfec', cmd, '/dev/null'], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, REPLICATOR_LOG_LEVEL: 'error', TERM: 'xterm' },
  });
  terminals.push(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString('utf8');
  });
  child.stderr!.on('data', (d: Buffer) => {
    out += d.toString('utf8');
  });
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exit };
}

describe('replicator status --watch', () => {
  it('redraws live frames in a terminal showing the changes published and applied and the dead letters; Ctrl-C exits 0', async () => {
    expect(execFileSync('which', ['script']).toString().trim()).not.toBe('');
    const env = await freshPipeline('watch');
    slots.push({ url: env.legacyUrl, slot: env.config.source.slot });
    const daemon = new ChildReplicator(env.config, 'all', ANY_PORT);
    daemons.push(daemon);
    daemon.start();
    await waitReady(await daemonUrl(daemon), 'leader');
    await daemon.waitForLog(/"msg":"streaming"/, 60_000);

    // One transaction of 20 bookings, each with its own email; 2 with a status the transform rejects (DLQ).
    await withClient(env.legacyUrl, (c) =>
      c.query(
        `INSERT INTO bookings ("bookingReference", "contactDetails", status, "finalAmount")
         SELECT 'WATCH-' || i,
                jsonb_build_object('email', 'watch' || i || '@example.com', 'firstName', 'Ada', 'lastName', 'L',
                                   'phone', '+44 1', 'company', 'Engines'),
                CASE WHEN i <= $2 THEN 'LOST' ELSE 'PENDING' END, 10.00
           FROM generate_series(1, $1::int) AS i`,
        [BOOKINGS, INVALID],
      ),
    );
    // Settled before the watch starts, so every frame must show the same totals: the sink consumed the 20
    // changes (its offsets commit after their dead letters are sent) and V2 holds the 18 valid bookings.
    const topics = changeTopics({
      rawPrefix: env.config.kafka.topicPrefix,
      tables: env.config.source.tables,
    });
    await waitFor(
      `the sink to consume the ${BOOKINGS} changes`,
      () =>
        withClient(env.targetUrl, async (c) => {
          const { rows } = await c.query<{ n: string }>(
            `SELECT coalesce(sum(next_offset), 0)::text AS n FROM replicator.sink_offsets
              WHERE group_id = $1 AND topic = ANY($2)`,
            [env.config.sink.groupId, topics],
          );
          return Number(rows[0]!.n) === BOOKINGS ? true : undefined;
        }),
      90_000,
    );
    const v2Bookings = await withClient(
      env.targetUrl,
      async (c) => (await c.query<{ n: number }>('SELECT count(*)::int AS n FROM bookings')).rows[0]!.n,
    );
    expect(v2Bookings).toBe(BOOKINGS - INVALID);

    const term = inTerminal(
      `exec '${process.execPath}' '${bin}' status --watch --interval 500 --config '${daemon.configFile}'`,
    );
    // Three complete frames: each is followed by the next one's clear-screen.
    await waitFor(
      'three frames',
      async () => (term.output().split(CLEAR_SCREEN).length >= 5 ? true : undefined),
      60_000,
      100,
    );
    term.child.stdin!.write('\x03'); // Ctrl-C, through the terminal's line discipline: SIGINT
    expect(await term.exit, term.output()).toBe(0);

    const frames = term.output().replace(/\r\n/g, '\n').split(CLEAR_SCREEN).slice(1, 4);
    expect(frames).toHaveLength(3);
    frames.forEach((frame, i) => {
      expect(frame).toMatch(/^replicator status --watch: HEALTHY$/m);
      expect(frame).toMatch(new RegExp(`last ${i + 1} samples?$`, 'm'));
      for (const label of [
        'source lag',
        'replication lag',
        'changes/s (source)',
        'applied/s (sink)',
        'dlq',
        'cutover',
      ])
        expect(frame).toContain(`\n${label.padEnd(20)}`);
      expect(frame).toMatch(new RegExp(`^changes/s \\(source\\) +\\S+/s \\(total ${BOOKINGS}\\)`, 'm'));
      expect(frame).toMatch(new RegExp(`^applied/s \\(sink\\) +\\S+/s \\(total ${BOOKINGS}\\)`, 'm'));
      // A constant non-zero count draws full bars, one per sample so far.
      expect(frame).toMatch(new RegExp(`^dlq +${INVALID} +█{${i + 1}}$`, 'm'));
      expect(frame).toMatch(/^cutover +none$/m);
      expect(frame).toMatch(new RegExp(`dead-letter topic \\S+ holds ${INVALID} messages`));
    });
    // Frames after the first have a rate: nothing was written during the watch, so it is 0.
    expect(frames[2]).toMatch(/^applied\/s \(sink\) +0\.0\/s /m);
    expect(frames[0]).toMatch(/^applied\/s \(sink\) +-\/s /m);

    expect(await daemon.stop()).toBe(0);
  }, 240_000);

  it('refuses --watch with --json as a usage error (CONFIG_INVALID), before reading anything', async () => {
    const r = await runCli([
      'status',
      '--watch',
      '--json',
      '--config',
      '/nonexistent/replicator.config.yaml',
    ]);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stderr.trim())).toMatchObject({
      level: 'error',
      code: 'CONFIG_INVALID',
      msg: expect.stringMatching(/--watch cannot be combined with --json/),
    });
    expect(r.stdout).toBe('');
  });
});
