#!/usr/bin/env node
// Runs the built workload CLI when there is one (npm run build), else the TypeScript sources through tsx.
import { existsSync } from 'node:fs';

const built = new URL('../dist/src/cli/workload-main.js', import.meta.url);
if (existsSync(built)) {
  await import(built.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../src/cli/workload-main.ts', import.meta.url).href);
}
