import { describe, expect, it } from 'vitest';
import { renderWatchFrame } from '../../../../src/ops/status/render-watch-frame.js';
import { emptyHistory, pushSample, sampleOf } from '../../../../src/ops/status/status-history.js';
import { report } from './status-report-fixture.js';

describe('status --watch frame', () => {
  it('shows each quantity now and its sparkline; rates and totals from the counters', () => {
    let h = emptyHistory();
    const at = Date.UTC(2024, 5, 1, 12, 0, 0);
    for (const [i, published] of [0, 10, 30, 30].entries()) {
      h = pushSample(
        h,
        sampleOf(
          report({
            lagBytes: 2048 * i,
            lagSeconds: i,
            published,
            applied: published,
            dlq: 2,
            phase: 'fenced',
          }),
          at + i * 1000,
        ),
      );
    }
    const frame = renderWatchFrame(h, { intervalMs: 1000 });
    expect(frame).toBe(
      [
        'replicator status --watch: HEALTHY',
        '2024-06-01T12:00:03.000Z  every 1 s; Ctrl-C stops',
        '',
        '                    now                       last 4 samples',
        'source lag          6.0 kB                    ▁▃▆█',
        'replication lag     3.0 s                     ▁▃▆█',
        'changes/s (source)  0.0/s (total 30)           ▅█▁',
        'applied/s (sink)    0.0/s (total 30)           ▅█▁',
        'dlq                 2                         ████',
        'cutover             fenced                    ████',
        '',
      ].join('\n'),
    );
  });

  it('says what is unknown, and lists the problems', () => {
    const h = pushSample(
      emptyHistory(),
      sampleOf(report({ published: 1_234_567, problems: ['Kafka is unreachable'], dlq: null }), 0),
    );
    const frame = renderWatchFrame(h, { intervalMs: 2000, keep: 30 });
    expect(frame).toMatch(/^replicator status --watch: UNHEALTHY \(1 problem\)$/m);
    expect(frame).toMatch(/every 2 s/);
    expect(frame).toMatch(/^replication lag {5}unknown$/m);
    expect(frame).toMatch(/^changes\/s \(source\) {2}-\/s \(total 1,234,567\)$/m);
    expect(frame).toMatch(/^applied\/s \(sink\) {4}-\/s \(total \?\)$/m);
    expect(frame).toMatch(/^dlq {17}\?$/m);
    expect(frame).toMatch(/^cutover {13}none$/m);
    expect(frame).toMatch(/last 1 sample$/m);
    expect(frame).toMatch(/\nproblems:\n {2}- Kafka is unreachable\n$/);
  });

  it('draws at most `keep` samples per sparkline', () => {
    let h = emptyHistory();
    for (let i = 0; i < 50; i++) h = pushSample(h, sampleOf(report({ dlq: i }), i * 1000), 10);
    const frame = renderWatchFrame(h, { intervalMs: 1000, keep: 10 });
    expect(frame).toMatch(/last 10 samples/);
    expect(/^dlq {17}49 +(\S+)$/m.exec(frame)?.[1]).toHaveLength(10);
  });
});
