import { readFileSync } from 'node:fs';
import { Registry, register } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { ErrorCodes, ReplicatorError } from '../../../../src/core/errors.js';
import { createMetrics } from '../../../../src/pipeline/observability/metrics.js';
import { RETRIED_CODES } from '../../../../src/pipeline/observability/stage-errors.js';

/** One sample by series name (histograms: `<name>_count`, …) and labels. */
async function value(registry: Registry, name: string, labels: Record<string, string> = {}) {
  const samples = (await registry.getMetricsAsJSON()).flatMap((m) =>
    m.values.map((v) => ({ ...v, series: (v as { metricName?: string }).metricName ?? m.name })),
  );
  const sample = samples.find(
    (v) =>
      v.series === name &&
      Object.entries(labels).every(([k, l]) => String((v.labels as Record<string, unknown>)[k]) === l),
  );
  return sample?.value;
}

describe('createMetrics', () => {
  it('registers on the registry it is given, never on the global one, so two can coexist', async () => {
    const a = createMetrics(new Registry());
    const b = createMetrics(new Registry());
    a.cutoverPhase.set(2);
    expect(await value(a.registry, 'replicator_cutover_phase')).toBe(2);
    expect(await value(b.registry, 'replicator_cutover_phase')).toBe(0);
    expect((await register.getMetricsAsJSON()).some((m) => m.name.startsWith('replicator_'))).toBe(false);
  });

  it('computes replication lag at scrape time from the newest applied commit, and observes end-to-end latency', async () => {
    const m = createMetrics(new Registry());
    const now = Date.now();
    m.observeApplied('g', new Date(now - 4_000).toISOString(), now);
    m.observeApplied('g', new Date(now - 9_000).toISOString(), now); // older: lag keeps the newest
    const lag = await value(m.registry, 'replicator_replication_lag_seconds', { group: 'g' });
    expect(lag).toBeGreaterThanOrEqual(4);
    expect(lag).toBeLessThan(9);
    expect(await value(m.registry, 'replicator_end_to_end_seconds_count')).toBe(2);
    m.seedApplied('h', new Date(now - 60_000).toISOString());
    expect(
      await value(m.registry, 'replicator_replication_lag_seconds', { group: 'h' }),
    ).toBeGreaterThanOrEqual(60);
    expect(await value(m.registry, 'replicator_end_to_end_seconds_count')).toBe(2);
  });

  it('reads the leader state at scrape time', async () => {
    const m = createMetrics(new Registry());
    let leader = false;
    m.trackLeader('slot_a', () => leader);
    expect(await value(m.registry, 'replicator_leader', { slot: 'slot_a' })).toBe(0);
    leader = true;
    expect(await value(m.registry, 'replicator_leader', { slot: 'slot_a' })).toBe(1);
  });

  it('counts a stage’s reconnects and retried errors from zero, errors by their stable code', async () => {
    const m = createMetrics(new Registry());
    m.trackStage('sink');
    expect(await value(m.registry, 'replicator_stage_reconnects_total', { stage: 'sink' })).toBe(0);
    for (const code of RETRIED_CODES)
      expect(await value(m.registry, 'replicator_stage_errors_total', { stage: 'sink', code })).toBe(0);
    // Only the stages this process runs have series.
    expect(await value(m.registry, 'replicator_stage_reconnects_total', { stage: 'source' })).toBeUndefined();

    m.countRetry('sink', new ReplicatorError(ErrorCodes.PG_UNREACHABLE, 'target down'));
    m.countRetry('sink', new ReplicatorError(ErrorCodes.PG_UNREACHABLE, 'target down'));
    m.countRetry('sink', new Error('a bug'));
    m.countReconnect('sink');
    expect(
      await value(m.registry, 'replicator_stage_errors_total', { stage: 'sink', code: 'PG_UNREACHABLE' }),
    ).toBe(2);
    expect(
      await value(m.registry, 'replicator_stage_errors_total', { stage: 'sink', code: 'UNEXPECTED' }),
    ).toBe(1);
    expect(await value(m.registry, 'replicator_stage_reconnects_total', { stage: 'sink' })).toBe(1);
  });

  it('README.md lists exactly the metrics it registers, with their labels', async () => {
    const readme = readFileSync(new URL('../../../../README.md', import.meta.url), 'utf8');
    const listed = [...readme.matchAll(/^\| `(replicator_[a-z_]+)(?:\{([a-z_,]+)\})?`\s*\|/gm)].map(
      ([, name, labels]) => `${name}{${labels ?? ''}}`,
    );
    const m = createMetrics(new Registry());
    const registered = (await m.registry.getMetricsAsJSON()).map((x) => {
      const labels = (m.registry.getSingleMetric(x.name) as unknown as { labelNames: string[] }).labelNames;
      return `${x.name}{${labels.join(',')}}`;
    });
    expect([...listed].sort()).toEqual([...registered].sort());
  });

  it('uses Prometheus naming: replicator_ prefix, base units, _total counters', async () => {
    const m = createMetrics(new Registry());
    for (const metric of await m.registry.getMetricsAsJSON()) {
      expect(metric.name).toMatch(/^replicator_[a-z_]+$/);
      if (String(metric.type) === 'counter') expect(metric.name).toMatch(/_total$/);
      if (String(metric.type) === 'histogram') expect(metric.name).toMatch(/_seconds$/);
    }
    // A lag names its unit: bytes of WAL, seconds, messages in Kafka.
    const lags = (await m.registry.getMetricsAsJSON()).map((x) => x.name).filter((n) => n.includes('_lag'));
    expect(lags.length).toBeGreaterThanOrEqual(3);
    for (const name of lags) expect(name).toMatch(/_lag_(bytes|seconds|messages)$/);
  });
});
