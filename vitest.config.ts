import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: process.env.VITEST_INCLUDE ? [process.env.VITEST_INCLUDE] : ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    setupFiles: ['test/helpers/leak-check.ts'],
    // One PostgreSQL and one broker serve every file, and this machine has 2 cores: files run one at a time so a
    // kill -9 test never competes with another file for the walsender or the broker.
    fileParallelism: false,
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 180_000,
    reporters: ['default', 'json'],
    outputFile: { json: '.stack/vitest-report.json' },
  },
});
