import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  ensurePrometheus,
  type LocalPrometheusOptions,
  prometheusConfig,
  prometheusStatus,
  stopPrometheus,
} from '../../../src/stack/local-prometheus.js';
import { stackSettings } from '../../../src/stack/stack.js';
import { freePort } from '../../helpers/daemon.js';

const alerts = fileURLToPath(new URL('../../../observability/prometheus/alerts.yml', import.meta.url));
let options: LocalPrometheusOptions | undefined;

afterAll(async () => {
  if (options) {
    await stopPrometheus(options, () => {});
    await rm(options.dir, { recursive: true, force: true });
  }
});

describe('local Prometheus', () => {
  it('generates a config that scrapes the targets as job replicator and loads the rule files', () => {
    const config = parseYaml(
      prometheusConfig({
        dir: '/x',
        host: '127.0.0.1',
        port: 9999,
        targets: ['127.0.0.1:9464'],
        scrapeIntervalSeconds: 5,
        ruleFiles: [alerts],
      }),
    );
    expect(config).toEqual({
      global: { scrape_interval: '5s', evaluation_interval: '5s' },
      rule_files: [alerts],
      scrape_configs: [{ job_name: 'replicator', static_configs: [{ targets: ['127.0.0.1:9464'] }] }],
    });
  });

  it('the stack scrapes the daemon’s default metrics port, with the alert rules', () => {
    const s = stackSettings({});
    expect(s.prometheus.port).toBe(9090);
    expect(s.prometheus.targets).toEqual(['127.0.0.1:9464']);
    expect(s.prometheus.ruleFiles).toEqual([alerts]);
    expect(s.prometheus.dir).toMatch(/\.stack\/prometheus$/);
  });

  it('starts with a PID file and data under its folder, is reused when running, and stops', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'replicator-local-prometheus-'));
    options = {
      dir,
      host: '127.0.0.1',
      port: await freePort(),
      targets: ['127.0.0.1:1'],
      scrapeIntervalSeconds: 5,
      ruleFiles: [alerts],
    };
    const lines: string[] = [];
    const started = await ensurePrometheus(options, (l) => lines.push(l));
    expect(started.startedPid).toBeGreaterThan(0);
    expect(Number(await readFile(join(dir, 'prometheus.pid'), 'utf8'))).toBe(started.startedPid);
    expect(await prometheusStatus(options)).toMatchObject({
      answering: true,
      pid: started.startedPid,
      pidAlive: true,
    });

    expect(await ensurePrometheus(options, (l) => lines.push(l))).toEqual({});
    expect(lines.at(-1)).toMatch(/already answering/);

    expect(await stopPrometheus(options, () => {})).toBe(true);
    expect(await prometheusStatus(options)).toMatchObject({ answering: false });
    expect(await stopPrometheus(options, () => {})).toBe(false);
  });
});
