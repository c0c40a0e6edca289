import { z } from 'zod';
import { ErrorCodes, exitCodeFor, ReplicatorError } from '../../core/errors.js';
import { ENV_OVERRIDES } from './load-config.js';
import { type ConfigInput, configSchema } from './schema.js';

type JsonSchema = z.core.JSONSchema.JSONSchema;

/** Shown in the reference; the docs test parses it, so it cannot drift from the schema. */
export const EXAMPLE_CONFIG: ConfigInput = {
  source: {
    url: 'postgres://replicator@legacy-db:5432/legacy',
    tables: ['public.bookings', 'public.customers'],
  },
  kafka: { brokers: ['kafka-1:9092', 'kafka-2:9092'] },
  schemaRegistry: { url: 'http://schema-registry:8081' },
  target: { url: 'postgres://replicator@v2-db:5432/v2' },
  metrics: { host: '0.0.0.0', port: 9464 },
};

interface Row {
  path: string;
  node: JsonSchema;
  required: string;
}

// z.int() bounds unbounded integers by the safe-integer range; that is not a limit worth printing.
const UNBOUNDED = Number.MAX_SAFE_INTEGER;

const code = (s: string): string => `\`${s}\``;

// A `|` would end the table cell, and a newline the row.
const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');

function describeType(node: JsonSchema): string {
  if (node.anyOf) return node.anyOf.map(describeType).join(' or ');
  if (node.enum) return `one of ${node.enum.map((v) => code(String(v))).join(', ')}`;
  switch (node.type) {
    case 'array': {
      const items = typeof node.items === 'object' && !Array.isArray(node.items) ? node.items : {};
      const min = node.minItems ? `, at least ${node.minItems}` : '';
      return `list of ${describeType(items)}${min}`;
    }
    case 'integer':
    case 'number': {
      const { minimum: min, maximum: max } = node;
      const hasMax = max !== undefined && max < UNBOUNDED;
      if (min !== undefined && hasMax) return `${node.type}, ${min} to ${max}`;
      if (min !== undefined) return `${node.type} ≥ ${min}`;
      return hasMax ? `${node.type} ≤ ${max}` : node.type;
    }
    case 'string': {
      if (node.format === 'uri') return 'URL';
      return node.pattern ? `string matching ${code(node.pattern)}` : 'string';
    }
    default:
      return String(node.type ?? 'any');
  }
}

function describeDefault(node: JsonSchema): string {
  return node.default === undefined ? '—' : code(JSON.stringify(node.default));
}

function describeKey(node: JsonSchema): string {
  const items = typeof node.items === 'object' && !Array.isArray(node.items) ? node.items : undefined;
  const parts = [node.description, items?.description && `Items: ${items.description}`];
  return parts.filter(Boolean).join(' ');
}

/** The object shapes a node may take: itself, or the object branches of a union (`kafka.ssl`). */
function objectShapes(node: JsonSchema): JsonSchema[] {
  if (node.properties) return [node];
  return (node.anyOf ?? []).filter((n) => n.properties);
}

/** Every key under `node`, depth first; `parentAlways`: the parent object is always present. */
function collectRows(node: JsonSchema, prefix: string, parentAlways: boolean, rows: Row[]): Row[] {
  for (const shape of objectShapes(node)) {
    for (const [key, child] of Object.entries(shape.properties ?? {})) {
      if (typeof child === 'boolean') continue;
      const path = `${prefix}.${key}`;
      const inParent = shape.required?.includes(key) ?? false;
      const required = !inParent ? 'no' : parentAlways ? 'yes' : `if ${code(prefix)} is set`;
      rows.push({ path, node: child, required });
      collectRows(child, path, inParent && parentAlways, rows);
    }
  }
  return rows;
}

function table(header: string[], rows: string[][]): string[] {
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
  ];
}

/** Where `path` (`['source', 'url']`) leads in the JSON Schema. */
function nodeAt(root: JsonSchema, path: readonly string[]): JsonSchema | undefined {
  let node: JsonSchema | undefined = root;
  for (const key of path) {
    const next: unknown = node?.properties?.[key];
    node = next && typeof next === 'object' ? (next as JsonSchema) : undefined;
  }
  return node;
}

function envFormat(node: JsonSchema | undefined): string {
  if (node?.type === 'array') return 'comma-separated list';
  if (node?.type === 'integer') return 'integer';
  if (node?.anyOf?.some((n) => typeof n === 'object' && n.type === 'boolean')) return '`true` or `false`';
  return 'string';
}

/** docs/config.md, generated from `configSchema` and `ENV_OVERRIDES` alone (`npm run docs:config`). */
export function renderConfigDocs(): string {
  const root = z.toJSONSchema(configSchema, { io: 'input' });
  const sections = Object.entries(root.properties ?? {}).filter(
    (e): e is [string, JsonSchema] => typeof e[1] === 'object',
  );
  const allRows = sections.flatMap(([name, node]) =>
    collectRows(node, name, root.required?.includes(name) ?? false, []),
  );
  const requiredKeys = allRows.filter((r) => r.required === 'yes').map((r) => code(r.path));
  const exitCode = exitCodeFor(new ReplicatorError(ErrorCodes.CONFIG_INVALID, ''));

  const out: string[] = [
    '<!-- Generated from src/config/schema.ts by `npm run docs:config`. Do not edit by hand. -->',
    '',
    '# Configuration reference',
    '',
    'The replicator reads one configuration file: JSON (`.json`), YAML (any other extension), or a TypeScript or',
    'JavaScript module (`.ts`, `.js`, `.mjs`) whose default export is the configuration (`defineConfig` types it).',
    'It then applies the [environment variables](#environment-variables) and validates the result. Validation is',
    `strict: an unknown key, a missing key or a bad value stops the replicator with \`${ErrorCodes.CONFIG_INVALID}\``,
    `(exit code ${exitCode}), and the message names each offending key path.`,
    '',
    `Required: ${requiredKeys.join(', ')}. Every other key is optional or has a default.`,
  ];

  for (const [name, node] of sections) {
    const required = root.required?.includes(name) ?? false;
    const status = required
      ? 'Required.'
      : node.default !== undefined
        ? 'Optional; when omitted, its keys take their defaults.'
        : 'Optional.';
    const rows = collectRows(node, name, required, []);
    out.push('', `## \`${name}\``, '', [status, describeKey(node)].filter(Boolean).join(' '), '');
    out.push(
      ...table(
        ['key', 'type', 'default', 'required', 'description'],
        rows.map((r) => [
          code(r.path),
          describeType(r.node),
          describeDefault(r.node),
          r.required,
          describeKey(r.node),
        ]),
      ),
    );
  }

  out.push(
    '',
    '## Environment variables',
    '',
    'A variable that is set and not empty replaces the key from the file. Overrides are applied before',
    'validation, so their values are checked like the file’s.',
    '',
    ...table(
      ['variable', 'key', 'format'],
      Object.entries(ENV_OVERRIDES).map(([variable, path]) => [
        code(variable),
        code(path.join('.')),
        envFormat(nodeAt(root, path)),
      ]),
    ),
    '',
    '## Example',
    '',
    '`replicator.config.json`:',
    '',
    '```json',
    JSON.stringify(EXAMPLE_CONFIG, null, 2),
    '```',
    '',
  );
  return out.join('\n');
}
