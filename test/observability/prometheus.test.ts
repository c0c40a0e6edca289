import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { RawChangeReader } from '../../connectors/postgres-sink/raw-change.js';
import { changeTopics, heartbeatPrefix } from '../../src/contracts/topics.js';
import type { ReplicatorConfig } from '../../src/pipeline/config/load-config.js';
import {
  ensurePrometheus,
  type LocalPrometheusOptions,
  prometheusUrl,
  stopPrometheus,
} from '../../src/stack/local-prometheus.js';
import { applyWrites, LegacyWorkload } from '../../src/workload/legacy-workload.js';
import { transformModules } from '../../transforms/index.js';
import { ChildReplicator } from '../helpers/child-source.js';
import { ANY_PORT, daemonUrl, freePort, getJson, runCli, waitFor, waitReady } from '../helpers/daemon.js';
import { readTopics } from '../helpers/kafka-read.js';
import { freshPipeline, LEGACY_TABLES, summary, waitForConvergence } from '../helpers/pipeline-harness.js';
import { dropSlot, testKafka, withClient } from '../helpers/resources.js';
import { isClean } from '../helpers/v2-oracle.js';

/**
 * The daemon and a real Prometheus (Debian's): every query of the Grafana dashboard and every alert rule is
 * evaluated through Prometheus's HTTP API against what the daemon exports under a small workload, and each must
 * return series. The queries are read from the files, so a new panel or rule is covered without touching this test.
 */

const root = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url));
const DASHBOARD = root('observability/grafana/dashboards/replicator.json');
const ALERTS = root('observability/prometheus/alerts.yml');

interface Panel {
  title?: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}

/** Every PromQL expression of the dashboard, rows' nested panels included. */
function dashboardQueries(): { panel: string; expr: string }[] {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[] };
  const out: { panel: string; expr: string }[] = [];
  const walk = (panels: Panel[]) => {
    for (const p of panels) {
      for (const t of p.targets ?? []) if (t.expr) out.push({ panel: p.title ?? '?', expr: t.expr });
      walk(p.panels ?? []);
    }
  };
  walk(dashboard.panels);
  return out;
}

const alertsSchema = z.object({
  groups: z.array(
    z.object({ name: z.string(), rules: z.array(z.looseObject({ alert: z.string(), expr: z.string() })) }),
  ),
});

function alertRules() {
  return alertsSchema.parse(parseYaml(readFileSync(ALERTS, 'utf8'))).groups.flatMap((g) => g.rules);
}

/**
 * alerts.yml's convention: `<query> <comparison> <number>`. An alert that is not firing returns nothing, so the
 * test evaluates the query with the comparison as a `bool` one, which keeps every series the query returns.
 */
const ALERT_FORM = /^([\s\S]*\S)\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?(?:e[+-]?\d+)?)$/i;

type PromResult = { status: string; error?: string; data?: { resultType: string; result: unknown[] } };

let prom: LocalPrometheusOptions;
let env: Awaited<ReturnType<typeof freshPipeline>>;
let child: ChildReplicator;
let base: string;
/** What the workload made, counted independently of the daemon: the counters must equal these. */
const counted = { snapshotRows: 0, events: { c: 0, u: 0, d: 0, t: 0 }, units: 0, deadLetters: 0 };

/** Streamed events by op, units (every change a transform module handles) and rejections, from the raw topics. */
async function countRawTopics(config: ReplicatorConfig) {
  const topics = changeTopics({ rawPrefix: config.kafka.topicPrefix, tables: config.source.tables });
  const reader = new RawChangeReader(transformModules, heartbeatPrefix(config.kafka.topicPrefix));
  const messages = await readTopics(testKafka(), topics, () => false, 5_000);
  const truncates = new Set<string>();
  for (const m of messages) {
    if (m.value === null) continue;
    const event = JSON.parse(m.value) as {
      op: 'c' | 'u' | 'd' | 'r' | 't';
      source: { snapshot: boolean; commitLsn: string; table: string };
    };
    // A truncate is one event per table at the source, sent to every partition.
    if (event.op === 't') truncates.add(`${event.source.table} ${event.source.commitLsn}`);
    else if (!event.source.snapshot) counted.events[event.op as 'c' | 'u' | 'd']++;
    const r = reader.read(m.topic, m.key, event);
    if (r.kind === 'unit') counted.units++;
    if ((r.kind === 'unit' || r.kind === 'dead') && r.dead) counted.deadLetters++;
  }
  counted.events.t = truncates.size;
}

async function query(expr: string): Promise<PromResult> {
  const url = `${prometheusUrl(prom)}/api/v1/query?query=${encodeURIComponent(expr)}`;
  return (await (await fetch(url)).json()) as PromResult;
}

/** Waits until `expr` returns at least one series (scrapes and rate windows need a few samples). */
async function series(expr: string): Promise<unknown[]> {
  let last: PromResult | undefined;
  try {
    return await waitFor(
      `series for ${expr}`,
      async () => {
        last = await query(expr);
        if (last.status !== 'success') throw new Error(`${last.status}: ${last.error}`);
        return last.data!.result.length > 0 ? last.data!.result : undefined;
      },
      30_000,
      500,
    );
  } catch (e) {
    throw new Error(`${String(e)}; last answer ${JSON.stringify(last)}`);
  }
}

beforeAll(async () => {
  env = await freshPipeline('prom');
  const workload = new LegacyWorkload({
    seed: 7,
    customers: 20,
    shops: 2,
    invalidShare: 0.1,
    bigNotesBytes: 5000,
  });
  // Rows before the start arrive through the snapshot; some are invalid (dead letters).
  await withClient(env.legacyUrl, async (c) => {
    await applyWrites(c, workload.seed(60));
    for (const t of LEGACY_TABLES)
      counted.snapshotRows += (await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${t.table}`))
        .rows[0]!.n;
  });
  const config: ReplicatorConfig = {
    ...env.config,
    metrics: { ...env.config.metrics, sampleIntervalMs: 500 },
  };
  child = new ChildReplicator(config, 'all', ANY_PORT);
  child.start();
  base = await daemonUrl(child);
  await waitReady(base, 'leader');
  // Writes from here on are streamed (earlier ones could still land in the snapshot).
  await child.waitForLog(/"msg":"streaming"/, 60_000);
  await withClient(env.legacyUrl, async (c) => {
    for (let i = 0; i < 80; i++) await applyWrites(c, [workload.next()]);
  });
  const diff = await waitForConvergence(env.legacyUrl, env.targetUrl);
  expect(isClean(diff), summary(diff)).toBe(true);
  await countRawTopics(config);

  const dir = await mkdtemp(join(tmpdir(), 'replicator-prometheus-'));
  prom = {
    dir,
    host: '127.0.0.1',
    port: await freePort(),
    targets: [new URL(base).host],
    scrapeIntervalSeconds: 1,
    ruleFiles: [ALERTS],
  };
  await ensurePrometheus(prom, () => {});
}, 240_000);

afterAll(async () => {
  if (prom) {
    await stopPrometheus(prom, () => {});
    await rm(prom.dir, { recursive: true, force: true });
  }
  if (child) expect(await child.stop()).toBe(0);
  if (env) await dropSlot(env.legacyUrl, env.config.source.slot);
});

describe('metrics in a real Prometheus', () => {
  it('scrapes the daemon', async () => {
    // Several scrapes, so that rate() and increase() have samples to work with.
    await series('count_over_time(up{job="replicator"}[5m]) >= 3');
    const up = (await query('up{job="replicator"}')).data?.result as { value: [number, string] }[];
    expect(up.map((s) => s.value[1])).toEqual(['1']);
  });

  it('counts exactly what the workload did: snapshot rows, streamed events by op, units, dead letters; applied batches, hop latencies', async () => {
    // The exact counts, as the legacy database and the raw topics have them (none is zero: each is exercised).
    expect(
      [
        counted.snapshotRows,
        counted.events.c,
        counted.events.u,
        counted.events.d,
        counted.units,
        counted.deadLetters,
      ].every((n) => n > 0),
      JSON.stringify(counted),
    ).toBe(true);
    for (const expr of [
      `sum(replicator_snapshot_rows_total) == ${counted.snapshotRows}`,
      'min(replicator_snapshot_progress_ratio) == 1',
      `sum(replicator_source_events_total{op="c"}) == ${counted.events.c}`,
      `sum(replicator_source_events_total{op="u"}) == ${counted.events.u}`,
      `sum(replicator_source_events_total{op="d"}) == ${counted.events.d}`,
      `sum(replicator_source_events_total{op="t"}) == ${counted.events.t}`,
      `sum(replicator_transform_units_total) == ${counted.units}`,
      `sum by (stage) (replicator_dlq_messages_total{stage="sink"}) == ${counted.deadLetters}`,
      'sum(replicator_sink_messages_total) > 0',
      'replicator_end_to_end_seconds_count > 0',
      // Each streamed change applied is one sample of each hop: capture, queue and apply.
      'count(replicator_stage_latency_seconds_count > 0) == 3',
      'replicator_replication_lag_seconds < 60',
      'replicator_leader == 1',
      'replicator_cutover_phase == 0',
    ]) {
      const found = await series(expr).catch(async (e: unknown) => {
        // Name the value the daemon exported, not just that it was not the expected one.
        const lhs = expr.replace(/\s*(==|>|<)\s*[\d.]+$/, '');
        throw new Error(`${String(e)}; ${lhs} is ${JSON.stringify((await query(lhs)).data?.result)}`);
      });
      expect(found.length, expr).toBeGreaterThan(0);
    }
  }, 180_000);

  it('every dashboard query returns series', async () => {
    const queries = dashboardQueries();
    expect(queries.length).toBeGreaterThan(10);
    for (const { panel, expr } of queries) {
      expect(expr, `panel ${panel} uses a template variable Prometheus cannot evaluate`).not.toContain('$');
      expect((await series(expr)).length, `panel ${panel}: ${expr}`).toBeGreaterThan(0);
    }
  }, 180_000);

  it('every alert expression is valid, and its query returns series', async () => {
    const rules = alertRules();
    expect(rules.length).toBeGreaterThanOrEqual(7);
    for (const rule of rules) {
      const m = ALERT_FORM.exec(rule.expr.trim());
      expect(m, `${rule.alert}: expr must be "<query> <comparison> <number>"`).not.toBeNull();
      const [, lhs, op, threshold] = m!;
      const whole = await query(rule.expr);
      expect(whole.status, `${rule.alert}: ${whole.error}`).toBe('success');
      expect((await series(`(${lhs}) ${op} bool ${threshold}`)).length, rule.alert).toBeGreaterThan(0);
    }
  }, 180_000);

  it('loads every rule, evaluates it without errors, and fires the DLQ alert for the dead letters', async () => {
    const names = alertRules().map((r) => r.alert);
    const rules = await waitFor('every rule to be evaluated', async () => {
      const body = (await getJson(`${prometheusUrl(prom)}/api/v1/rules?type=alert`)).body as {
        data: { groups: { rules: { name: string; health: string; lastError?: string }[] }[] };
      };
      const all = body.data.groups.flatMap((g) => g.rules);
      return all.length === names.length && all.every((r) => r.health !== 'unknown') ? all : undefined;
    });
    expect(rules.map((r) => r.name).sort()).toEqual([...names].sort());
    for (const r of rules) expect(r.health, `${r.name}: ${r.lastError}`).toBe('ok');
    // The workload dead-lettered rows just now: the DLQ alert fires; nothing says the source is down.
    const firing = await waitFor('the DLQ alert to fire', async () => {
      const body = (await getJson(`${prometheusUrl(prom)}/api/v1/alerts`)).body as {
        data: { alerts: { labels: { alertname: string }; state: string }[] };
      };
      const names = body.data.alerts.filter((a) => a.state === 'firing').map((a) => a.labels.alertname);
      return names.includes('ReplicatorDlqGrowing') ? names : undefined;
    });
    expect(firing).not.toContain('ReplicatorNoSourceLeader');
    expect(firing).not.toContain('ReplicatorDown');
  });

  it('`status --json` reports the running replicator as healthy', async () => {
    const { code, stdout } = await runCli(['status', '--json', '--config', child.configFile]);
    const report = JSON.parse(stdout) as {
      healthy: boolean;
      problems: string[];
      source: { leaderPid?: number; slot: { exists: boolean } };
      kafka: { groups: { group: string; members: number }[]; dlq: { messages: number } };
      snapshot: { state: string };
      cutover: { state: string };
    };
    expect(report.problems).toEqual([]);
    expect(code).toBe(0);
    expect(report.healthy).toBe(true);
    expect(report.source.slot.exists).toBe(true);
    expect(report.source.leaderPid).toBeGreaterThan(0);
    expect(report.snapshot.state).toBe('complete');
    expect(report.kafka.dlq.messages).toBeGreaterThan(0);
    expect(report.kafka.groups.map((g) => g.group).sort()).toEqual([env.config.sink.groupId]);
    for (const g of report.kafka.groups) expect(g.members, g.group).toBe(1);
  });
});
