// Writes docs/config.md from the config schema (`npm run docs:config`); the docs test fails when it is stale.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderConfigDocs } from '../src/pipeline/config/render-config-docs.js';

const out = fileURLToPath(new URL('../docs/config.md', import.meta.url));
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, renderConfigDocs());
console.log(`wrote ${relative(process.cwd(), out)}`);
