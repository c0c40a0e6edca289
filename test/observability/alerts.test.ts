import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

/** alerts.yml is checked by promtool and unit-tested on synthetic series (alerts.test.yml). */

const dir = fileURLToPath(new URL('../../observability/prometheus/', import.meta.url));

function promtool(args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile('promtool', args, { cwd: dir }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, output: `${stdout}${stderr}` });
    });
  });
}

const rules = z
  .object({ groups: z.array(z.object({ rules: z.array(z.looseObject({ alert: z.string() })) })) })
  .parse(parseYaml(readFileSync(`${dir}alerts.yml`, 'utf8')))
  .groups.flatMap((g) => g.rules.map((r) => r.alert));

const unitTests = z
  .object({
    rule_files: z.array(z.string()),
    tests: z.array(
      z.looseObject({
        alert_rule_test: z.array(
          z.object({
            alertname: z.string(),
            eval_time: z.string(),
            exp_alerts: z.array(z.unknown()).optional(),
          }),
        ),
      }),
    ),
  })
  .parse(parseYaml(readFileSync(`${dir}alerts.test.yml`, 'utf8')));

describe('Prometheus alert rules', () => {
  it('pass `promtool check rules`', async () => {
    const { code, output } = await promtool(['check', 'rules', 'alerts.yml']);
    expect(output).toMatch(new RegExp(`SUCCESS: ${rules.length} rules found`));
    expect(code, output).toBe(0);
  });

  it('have a unit test showing each alert firing and resolved', () => {
    expect(unitTests.rule_files).toEqual(['alerts.yml']);
    const cases = unitTests.tests.flatMap((t) => t.alert_rule_test);
    for (const alert of rules) {
      const mine = cases.filter((c) => c.alertname === alert);
      expect(
        mine.some((c) => (c.exp_alerts ?? []).length > 0),
        `${alert}: a case where it fires`,
      ).toBe(true);
      // Resolved: a case with no alert, after one where it fired.
      const firstFiring = Math.min(
        ...mine.filter((c) => (c.exp_alerts ?? []).length > 0).map((c) => parseMinutes(c.eval_time)),
      );
      expect(
        mine.some((c) => (c.exp_alerts ?? []).length === 0 && parseMinutes(c.eval_time) > firstFiring),
        `${alert}: a later case where it has resolved`,
      ).toBe(true);
    }
  });

  it('pass `promtool test rules alerts.test.yml`', async () => {
    const { code, output } = await promtool(['test', 'rules', 'alerts.test.yml']);
    expect(output).toMatch(/SUCCESS/);
    expect(code, output).toBe(0);
  });
});

/** promtool durations as used in alerts.test.yml: `90s`, `12m`, `1h`, `1h30m`. */
function parseMinutes(duration: string): number {
  const units: Record<string, number> = { s: 1 / 60, m: 1, h: 60 };
  let total = 0;
  for (const [, n, unit] of duration.matchAll(/(\d+)([smh])/g)) total += Number(n) * units[unit!]!;
  return total;
}
