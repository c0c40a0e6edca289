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
  ensurePostgresExporter,
  type LocalPostgresExporterOptions,
  postgresExporterTarget,
  stopPostgresExporter,
} from '../../src/stack/local-postgres-exporter.js';
import {
  ensurePrometheus,
  type LocalPrometheusOptions,
  prometheusUrl,
  SCRAPE_JOB,
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
 * return series. The queries are read from the files, so a new panel or rule is covered without touching this test;
 * the dashboard's `job` and `instance` variables are given the values of this Prometheus's scrape of the daemon.
 */

const root = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url));
const DASHBOARD = root('observability/grafana/dashboards/replicator.json');
const ALERTS = root('observability/prometheus/alerts.yml');

interface Datasource {
  type?: string;
  uid?: string;
}

interface Panel {
  title?: string;
  type?: string;
  datasource?: Datasource;
  targets?: { expr?: string; datasource?: Datasource }[];
  panels?: Panel[];
}

interface Variable {
  name: string;
  type: string;
  query?: string | { query?: string };
  datasource?: Datasource;
}

interface Dashboard {
  panels: Panel[];
  templating: { list: Variable[] };
}

const readDashboard = () => JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;

/** Every panel, rows' nested panels included. */
function dashboardPanels(): Panel[] {
  const out: Panel[] = [];
  const walk = (panels: Panel[]) => {
    for (const p of panels) {
      out.push(p);
      walk(p.panels ?? []);
    }
  };
  walk(readDashboard().panels);
  return out;
}

/** Every PromQL expression of the dashboard, as written (with its template variables). */
function dashboardQueries(): { panel: string; expr: string }[] {
  return dashboardPanels().flatMap((p) =>
    (p.targets ?? []).flatMap((t) => (t.expr ? [{ panel: p.title ?? '?', expr: t.expr }] : [])),
  );
}

/** A value as Grafana puts a multi-value (or All) variable into a Prometheus regex matcher: regex-escaped. */
const regexValue = (v: string) => v.replace(/[\\^$*+?.()|[\]{}]/g, '\\\\$&');

/** The values the dashboard's variables take in this test: this Prometheus's job, and the daemon as its target. */
const variables = (): Record<string, string> => ({ job: SCRAPE_JOB, instance: new URL(base).host });

/** `expr` with `$job`/`${job}` and `$instance`/`${instance}` replaced as Grafana would. */
function substitute(expr: string): string {
  return expr.replace(
    /\$(?:\{(\w+)\}|(\w+))/g,
    (whole, braced: string | undefined, bare: string | undefined) => {
      const value = variables()[braced ?? bare ?? ''];
      return value === undefined ? whole : regexValue(value);
    },
  );
}

/** Grafana's reference to the dashboard's `datasource` variable, as every panel's and query's data source uid. */
const DATASOURCE_UID = ['$', '{datasource}'].join('');

/** The metric selectors of a PromQL expression (replicator_*, process_*, up) with their matchers, if any. */
const SELECTOR = /\b(replicator_[a-z_]+|process_[a-z_]+|up)\b(\{[^}]*\})?/g;

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
let exporter: LocalPostgresExporterOptions;
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
      source: { snapshot: string; commitLsn: string; table: string };
    };
    // A truncate is one event per table at the source, sent to every partition.
    if (event.op === 't') truncates.add(`${event.source.table} ${event.source.commitLsn}`);
    else if (event.source.snapshot === 'false') counted.events[event.op as 'c' | 'u' | 'd']++;
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
  // The slot watched from PostgreSQL itself too, as the local stack and compose run it.
  exporter = { dir, host: '127.0.0.1', port: await freePort(), pgUrl: env.legacyUrl };
  await ensurePostgresExporter(exporter, () => {});
  prom = {
    dir,
    host: '127.0.0.1',
    port: await freePort(),
    targets: [new URL(base).host],
    postgresTargets: [postgresExporterTarget(exporter)],
    scrapeIntervalSeconds: 1,
    ruleFiles: [ALERTS],
  };
  await ensurePrometheus(prom, () => {});
}, 240_000);

afterAll(async () => {
  if (exporter) await stopPostgresExporter(exporter, () => {});
  if (prom) {
    await stopPrometheus(prom, () => {});
    await rm(prom.dir, { recursive: true, force: true });
  }
  if (child) expect(await child.stop()).toBe(0);
  if (env) await dropSlot(env.legacyUrl, env.config.source.slot);
});

describe('metrics in a real Prometheus', () => {
  it('watches the slot from PostgreSQL itself (postgres_exporter), independent of the daemon', async () => {
    const slot = `slot_name="${env.config.source.slot}"`;
    expect(await series(`pg_replication_slots_active{${slot}} == 1`)).toHaveLength(1);
    expect(await series(`pg_replication_slots_pg_wal_lsn_diff{${slot}} >= 0`)).toHaveLength(1);
  });

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
      // Reconnects and retried errors start at zero for each stage the daemon runs (source, publisher, sink).
      'count(replicator_stage_reconnects_total) == 3',
      'count(count by (stage) (replicator_stage_errors_total)) == 3',
    ]) {
      const found = await series(expr).catch(async (e: unknown) => {
        // Name the value the daemon exported, not just that it was not the expected one.
        const lhs = expr.replace(/\s*(==|>|<)\s*[\d.]+$/, '');
        throw new Error(`${String(e)}; ${lhs} is ${JSON.stringify((await query(lhs)).data?.result)}`);
      });
      expect(found.length, expr).toBeGreaterThan(0);
    }
  }, 180_000);

  it('the dashboard takes its data source, job and instance from template variables, in every panel', async () => {
    const dashboard = readDashboard();
    const byName = new Map(dashboard.templating.list.map((v) => [v.name, v]));
    expect(byName.get('datasource')?.type).toBe('datasource');
    for (const name of ['job', 'instance']) {
      const v = byName.get(name);
      expect(v?.type, name).toBe('query');
      expect(v?.datasource?.uid, name).toBe(DATASOURCE_UID);
      // Its query, with the variables before it substituted, offers the value this test gives it.
      const query = typeof v?.query === 'string' ? v.query : (v?.query?.query ?? '');
      const m = /^label_values\((.+),\s*(\w+)\)$/.exec(query);
      expect(m, `${name}: label_values(<selector>, <label>)`).not.toBeNull();
      const url = `${prometheusUrl(prom)}/api/v1/label/${m![2]}/values?match[]=${encodeURIComponent(substitute(m![1]!))}`;
      const values = (await getJson(url)).body.data as string[];
      expect(values, `${name}: ${query}`).toContain(variables()[name]);
    }
    for (const panel of dashboardPanels()) {
      if (panel.type === 'row') continue;
      expect(panel.datasource?.uid, `panel ${panel.title}`).toBe(DATASOURCE_UID);
      for (const t of panel.targets ?? []) {
        expect(t.datasource?.uid, `panel ${panel.title}`).toBe(DATASOURCE_UID);
        for (const [selector, , matchers] of t.expr?.matchAll(SELECTOR) ?? []) {
          expect(matchers, `panel ${panel.title}: ${selector}`).toContain('job=~"$job"');
          expect(matchers, `panel ${panel.title}: ${selector}`).toContain('instance=~"$instance"');
        }
      }
    }
    // The slot's WAL headroom and the stages' reconnects and retried errors (as rates) have panels.
    const exprs = dashboardQueries().map((q) => q.expr);
    for (const metric of [
      'replicator_source_slot_safe_wal_bytes',
      'replicator_kafka_consumer_lag_messages',
      'rate(replicator_stage_reconnects_total',
      'rate(replicator_stage_errors_total',
    ])
      expect(
        exprs.some((e) => e.includes(metric)),
        metric,
      ).toBe(true);
  });

  it('every dashboard query returns series, with its job and instance variables set to the daemon', async () => {
    const queries = dashboardQueries();
    expect(queries.length).toBeGreaterThan(10);
    for (const { panel, expr } of queries) {
      const query = substitute(expr);
      expect(query, `panel ${panel} uses a template variable the test cannot set`).not.toContain('$');
      expect((await series(query)).length, `panel ${panel}: ${query}`).toBeGreaterThan(0);
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

  it('a lost legacy connection: the source counts the error by its code and the reconnect, and the dashboard shows it', async () => {
    const source = (metric: string) => `sum(${metric}{stage="source"})`;
    expect((await series(`${source('replicator_stage_reconnects_total')} == 0`)).length).toBe(1);
    // The leader lock's session: its loss ends the source's session, which starts again with backoff.
    const terminated = await withClient(env.legacyUrl, async (c) => {
      const { rows } = await c.query<{ ok: boolean }>(
        `SELECT pg_terminate_backend(a.pid) AS ok FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
          WHERE a.datname = current_database() AND a.application_name = 'replicator-source'
            AND l.locktype = 'advisory' AND l.granted`,
      );
      return rows.filter((r) => r.ok).length;
    });
    expect(terminated).toBe(1);
    await waitReady(base, 'leader');
    // At least: the new session may also find the slot still held by the old walsender for a moment (retried too).
    await series(`${source('replicator_stage_reconnects_total')} >= 1`);
    await series('sum(replicator_stage_errors_total{stage="source", code="PG_CONNECTION_FAILED"}) >= 1');
    // The panels' rates, through the dashboard's own queries.
    for (const metric of ['replicator_stage_reconnects_total', 'replicator_stage_errors_total']) {
      const { expr } = dashboardQueries().find((q) => q.expr.includes(`rate(${metric}`))!;
      const found = (await series(`(${substitute(expr)}) > 0`)) as { metric: { stage?: string } }[];
      expect(
        found.map((s) => s.metric.stage),
        expr,
      ).toEqual(['source']);
    }
  });
});
