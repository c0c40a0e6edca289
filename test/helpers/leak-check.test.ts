import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

describe('leak check', () => {
  it('fails a test file that leaks a replication slot or an open client', async () => {
    const result = await run(
      'npx',
      ['vitest', 'run', '--config', 'vitest.config.ts', 'test/fixtures/leaky.fixture.ts'],
      {
        env: {
          ...process.env,
          NO_COLOR: '1',
          FORCE_COLOR: '0',
          REPLICATOR_STACK_KEEP: '1',
          VITEST_INCLUDE: 'test/fixtures/*.fixture.ts',
        },
      },
    ).then(
      () => ({ code: 0, out: '' }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
    );
    expect(result.code).not.toBe(0);
    expect(result.out).toMatch(/replication slot \S+_slot_\S+ was not dropped/);
    expect(result.out).toMatch(/1 PostgreSQL connection\(s\) still open/);
  });
});
