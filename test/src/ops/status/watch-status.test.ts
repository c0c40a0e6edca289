import { describe, expect, it } from 'vitest';
import type { StatusReport } from '../../../../src/ops/status/read-status.js';
import { CLEAR_SCREEN } from '../../../../src/ops/status/render-watch-frame.js';
import { watchStatus } from '../../../../src/ops/status/watch-status.js';
import { report } from './status-report-fixture.js';

/** Reports whose applied counter grows by 10 per reading; `stopAfter` frames abort the watch. */
function run(o: { tty: boolean; stopAfter: number }) {
  const controller = new AbortController();
  const written: string[] = [];
  let readings = 0;
  let clock = 0;
  const done = watchStatus(async () => report({ applied: 10 * readings++, published: 0 }), {
    intervalMs: 10,
    signal: controller.signal,
    tty: o.tty,
    // A clock 1 s on per call, two calls per reading: 10 applied per 2 s.
    now: () => (clock += 1000),
    write: (text) => {
      written.push(text);
      if (written.length === o.stopAfter) controller.abort();
    },
  });
  return { done, written };
}

describe('watchStatus', () => {
  it('on a terminal: every frame clears the screen first, until the signal aborts', async () => {
    const { done, written } = run({ tty: true, stopAfter: 3 });
    expect(await done).toBe(3);
    expect(written).toHaveLength(3);
    for (const w of written) {
      expect(w.startsWith(CLEAR_SCREEN)).toBe(true);
      expect(w.slice(CLEAR_SCREEN.length)).not.toContain('\x1b');
    }
    expect(written[0]).toMatch(/^applied\/s \(sink\) {4}-\/s \(total 0\)$/m);
    expect(written[2]).toMatch(/^applied\/s \(sink\) {4}5\.0\/s \(total 20\) +██$/m);
  });

  it('elsewhere: plain frames, a blank line apart', async () => {
    const { done, written } = run({ tty: false, stopAfter: 3 });
    expect(await done).toBe(3);
    const out = written.join('');
    expect(out).not.toContain('\x1b');
    const frames = out.split('\n\nreplicator status --watch');
    expect(frames).toHaveLength(3);
    expect(out.startsWith('replicator status --watch: HEALTHY\n')).toBe(true);
  });

  it('stops at once when aborted during a reading, without waiting for it', async () => {
    const controller = new AbortController();
    const written: string[] = [];
    let readings = 0;
    const done = watchStatus(
      () => {
        readings++;
        if (readings === 1) return Promise.resolve(report({}));
        controller.abort();
        return new Promise<StatusReport>(() => {});
      },
      { intervalMs: 10, signal: controller.signal, tty: false, write: (t) => written.push(t) },
    );
    expect(await done).toBe(1);
    expect(readings).toBe(2);
  });
});
