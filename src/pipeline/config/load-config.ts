import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { extname, resolve } from 'node:path';
import { createJiti } from 'jiti';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import type { TableRef } from '../../contracts/topics.js';
import { ErrorCodes, ReplicatorError } from '../../core/errors.js';
import { type ConfigInput, configSchema, type ParsedConfig } from './schema.js';

export type { TableRef };

/** The frozen domain config every stage receives; built only by `parseConfig`. */
export type ReplicatorConfig = Readonly<
  Omit<ParsedConfig, 'source'> & {
    source: Readonly<Omit<ParsedConfig['source'], 'tables'> & { tables: readonly TableRef[] }>;
  }
>;

/** Typed helper for `replicator.config.ts` files. */
export const defineConfig = (config: ConfigInput): ConfigInput => config;

/**
 * Environment variables that override connection settings and secrets (so a container's config file holds no
 * password), applied before validation.
 */
export const ENV_OVERRIDES = {
  REPLICATOR_SOURCE_URL: ['source', 'url'],
  REPLICATOR_TARGET_URL: ['target', 'url'],
  REPLICATOR_KAFKA_BROKERS: ['kafka', 'brokers'],
  REPLICATOR_KAFKA_SSL: ['kafka', 'ssl'],
  REPLICATOR_KAFKA_SASL_MECHANISM: ['kafka', 'sasl', 'mechanism'],
  REPLICATOR_KAFKA_SASL_USERNAME: ['kafka', 'sasl', 'username'],
  REPLICATOR_KAFKA_SASL_PASSWORD: ['kafka', 'sasl', 'password'],
  REPLICATOR_SCHEMA_REGISTRY_URL: ['schemaRegistry', 'url'],
  REPLICATOR_SCHEMA_REGISTRY_USERNAME: ['schemaRegistry', 'username'],
  REPLICATOR_SCHEMA_REGISTRY_PASSWORD: ['schemaRegistry', 'password'],
  REPLICATOR_METRICS_HOST: ['metrics', 'host'],
  REPLICATOR_METRICS_PORT: ['metrics', 'port'],
} as const;

type Json = Record<string, unknown>;

/** The env text as the key's type: lists comma-separated, ports as numbers, `ssl` as a boolean. */
function envValue(key: string, raw: string): unknown {
  if (key === 'brokers') return raw.split(',').map((s) => s.trim());
  if (key === 'port' && /^\d+$/.test(raw)) return Number(raw);
  if (key === 'ssl' && (raw === 'true' || raw === 'false')) return raw === 'true';
  return raw;
}

function applyEnv(input: Json, env: NodeJS.ProcessEnv): Json {
  const out: Json = structuredClone(input);
  for (const [name, path] of Object.entries(ENV_OVERRIDES)) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    let node = out;
    for (const key of path.slice(0, -1)) {
      const next = node[key];
      node[key] = next && typeof next === 'object' && !Array.isArray(next) ? { ...(next as Json) } : {};
      node = node[key] as Json;
    }
    const key = path.at(-1)!;
    node[key] = envValue(key, raw);
  }
  return out;
}

/** 1-based line and column of a YAML (the error's own linePos) or JSON (the "position N" in V8's message) error. */
function parseErrorPosition(e: unknown, text: string): { line: number; column: number } | undefined {
  const linePos = (e as { linePos?: { line: number; col: number }[] }).linePos?.[0];
  if (linePos) return { line: linePos.line, column: linePos.col };
  const offset = /position (\d+)/.exec(e instanceof Error ? e.message : '')?.[1];
  if (offset === undefined) return undefined;
  const before = text.slice(0, Number(offset)).split('\n');
  return { line: before.length, column: before.at(-1)!.length + 1 };
}

/** The environment variable that set the value at `path`, if one did. */
function overrideAt(path: string, env: NodeJS.ProcessEnv): string | undefined {
  return Object.entries(ENV_OVERRIDES).find(
    ([name, keys]) => keys.join('.') === path && env[name] !== undefined && env[name] !== '',
  )?.[0];
}

function describeIssues(issues: z.core.$ZodIssue[], env: NodeJS.ProcessEnv): string {
  return issues
    .map((i) => {
      const path = i.path.join('.');
      if (i.code === 'unrecognized_keys') {
        return i.keys.map((k) => `${path ? `${path}.` : ''}${k}: unknown key`).join('; ');
      }
      const variable = overrideAt(path, env);
      return `${path || '(root)'}${variable ? ` (from ${variable})` : ''}: ${i.message}`;
    })
    .join('; ');
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Validates raw config (+ env overrides) and returns the frozen domain config, or throws CONFIG_INVALID naming each bad field. */
export function parseConfig(input: unknown, env: NodeJS.ProcessEnv = process.env): ReplicatorConfig {
  if (!input || typeof input !== 'object' || Array.isArray(input)) {
    throw new ReplicatorError(ErrorCodes.CONFIG_INVALID, 'config must be an object');
  }
  const result = configSchema.safeParse(applyEnv(input as Json, env));
  if (!result.success) {
    throw new ReplicatorError(
      ErrorCodes.CONFIG_INVALID,
      `invalid config: ${describeIssues(result.error.issues, env)}`,
      {
        details: { issues: result.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) },
      },
    );
  }
  const parsed = result.data;
  const tables = parsed.source.tables.map((t) => {
    const [schema, table] = t.split('.') as [string, string];
    return { schema, table };
  });
  return deepFreeze({ ...parsed, source: { ...parsed.source, tables } });
}

/** Reads a JSON, YAML or TypeScript/JavaScript (default export) config file and parses it. */
export async function loadConfig(
  path: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ReplicatorConfig> {
  const ext = extname(path);
  if (!existsSync(path))
    throw new ReplicatorError(
      ErrorCodes.CONFIG_MISSING,
      `config file ${path} not found (in ${process.cwd()}); pass --config <file>`,
      { details: { path } },
    );
  let raw: unknown;
  if (ext === '.ts' || ext === '.mts' || ext === '.js' || ext === '.mjs') {
    // jiti compiles TypeScript wherever the file is (outside the checkout, from the built package, in the image),
    // where a plain import() of a .ts file works only under tsx.
    const jiti = createJiti(import.meta.url, { moduleCache: false });
    try {
      raw = await jiti.import(resolve(path), { default: true });
    } catch (e) {
      throw new ReplicatorError(ErrorCodes.CONFIG_INVALID, `cannot load ${path}`, { cause: e });
    }
  } else {
    const text = await readFile(path, 'utf8');
    try {
      raw = ext === '.json' ? JSON.parse(text) : parseYaml(text);
    } catch (e) {
      const where = parseErrorPosition(e, text);
      const reason = (e instanceof Error ? e.message.split('\n')[0]! : String(e)).replace(/:$/, '');
      throw new ReplicatorError(
        ErrorCodes.CONFIG_INVALID,
        `cannot parse ${path}${where ? `:${where.line}:${where.column}` : ''}: ${reason}`,
        { cause: e, ...(where ? { details: { path, ...where } } : {}) },
      );
    }
  }
  return parseConfig(raw, env);
}
