#!/usr/bin/env node
// Runs the built CLI when there is one (npm run build), else the TypeScript sources through tsx.
import { existsSync } from 'node:fs';

// A stop requested while the modules load: nothing is connected yet, so there is nothing to flush.
const early = () => process.exit(0);
process.on('SIGTERM', early);
process.on('SIGINT', early);

const built = new URL('../dist/src/cli/main.js', import.meta.url);
if (existsSync(built)) {
  await import(built.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../src/cli/main.ts', import.meta.url).href);
}
