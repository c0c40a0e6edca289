import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

describe('architecture', () => {
  it('imports run one way: cli → ops → pipeline → connectors → contracts → core, transforms see only contracts', async () => {
    // dependency-cruiser with the rules in .dependency-cruiser.cjs; it exits non-zero on any violation.
    const result = await run(
      process.execPath,
      [
        'node_modules/dependency-cruiser/bin/dependency-cruise.mjs',
        '--config',
        '.dependency-cruiser.cjs',
        '--output-type',
        'json',
        'src',
        'connectors',
        'transforms',
      ],
      { maxBuffer: 64 * 1024 * 1024 },
    ).catch((e: { stdout?: string; stderr?: string }) => e);
    const report = JSON.parse(result.stdout ?? '{}') as {
      summary: {
        violations: { rule: { name: string }; from: string; to: string }[];
        totalCruised: number;
      };
    };
    expect(
      report.summary.violations.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`),
      result.stderr,
    ).toEqual([]);
    // Every source file was looked at (the rules are not vacuously true of an empty graph).
    expect(report.summary.totalCruised).toBeGreaterThan(100);
  });
});
