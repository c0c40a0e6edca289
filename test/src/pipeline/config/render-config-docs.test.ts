import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ENV_OVERRIDES, parseConfig } from '../../../../src/pipeline/config/load-config.js';
import { renderConfigDocs } from '../../../../src/pipeline/config/render-config-docs.js';
import { configSchema } from '../../../../src/pipeline/config/schema.js';

const docsPath = new URL('../../../../docs/config.md', import.meta.url);

/**
 * Every key path of a zod schema, nested ones included, walked from the zod schema itself rather than from
 * the JSON Schema the renderer uses, so a key that conversion drops is still caught.
 */
function keyPaths(schema: z.ZodType, prefix: string): string[] {
  if (schema instanceof z.ZodOptional || schema instanceof z.ZodDefault) {
    return keyPaths(schema.unwrap() as z.ZodType, prefix);
  }
  if (schema instanceof z.ZodUnion) {
    return schema.options.flatMap((o) => keyPaths(o as z.ZodType, prefix));
  }
  if (!(schema instanceof z.ZodObject)) return [];
  return Object.entries(schema.shape).flatMap(([key, child]) => {
    const path = prefix ? `${prefix}.${key}` : key;
    const nested = keyPaths(child as z.ZodType, path);
    return prefix ? [path, ...nested] : nested;
  });
}

describe('docs/config.md', () => {
  const docs = readFileSync(docsPath, 'utf8');

  it('is up to date with the schema (regenerate with `npm run docs:config`)', () => {
    expect(docs).toBe(renderConfigDocs());
  });

  it('has a row for every key of the schema', () => {
    const paths = keyPaths(configSchema, '');
    // The walk itself must reach nested and union keys, or this test proves nothing.
    expect(paths).toEqual(
      expect.arrayContaining(['source.url', 'kafka.ssl.rejectUnauthorized', 'metrics.port']),
    );
    const missing = paths.filter((p) => !docs.includes(`| \`${p}\` |`));
    expect(missing).toEqual([]);
  });

  it('lists every environment override with the key it sets', () => {
    for (const [name, path] of Object.entries(ENV_OVERRIDES)) {
      expect(docs).toContain(`| \`${name}\` | \`${path.join('.')}\` |`);
    }
  });

  it('lists enum values and defaults', () => {
    expect(docs).toMatch(/\| `source\.snapshot` \| one of `initial`, `never` \| `"initial"` \| no \|/);
    expect(docs).toMatch(/\| `source\.url` \| string \| — \| yes \|/);
    expect(docs).toMatch(/\| `kafka\.sasl\.mechanism` \| .* \| — \| if `kafka\.sasl` is set \|/);
  });

  it('shows an example that is a valid config', () => {
    const example = /```json\n([\s\S]*?)\n```/.exec(docs)?.[1];
    expect(example).toBeDefined();
    const config = parseConfig(JSON.parse(example!), {});
    expect(config.source.tables.length).toBeGreaterThan(0);
  });
});
