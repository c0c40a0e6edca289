import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ErrorCodes, isReplicatorError, type ReplicatorError } from '../../../../src/core/errors.js';
import { loadConfig, parseConfig } from '../../../../src/pipeline/config/load-config.js';

const minimal = { source: { url: 'postgres://replicator@legacy:5432/legacy', tables: ['public.bookings'] } };

/** The CONFIG_INVALID error `fn` throws; fails the test when it throws anything else or nothing. */
function configError(fn: () => unknown): ReplicatorError {
  try {
    fn();
  } catch (e) {
    if (isReplicatorError(e, ErrorCodes.CONFIG_INVALID)) return e;
    throw e;
  }
  throw new Error('expected CONFIG_INVALID, nothing was thrown');
}

function expectDeeplyFrozen(value: unknown, path = 'config'): void {
  if (!value || typeof value !== 'object') return;
  expect(Object.isFrozen(value), `${path} is frozen`).toBe(true);
  for (const [k, v] of Object.entries(value)) expectDeeplyFrozen(v, `${path}.${k}`);
}

describe('parseConfig', () => {
  it('applies the defaults to a minimal config', () => {
    expect(parseConfig(minimal, {})).toEqual({
      source: {
        url: 'postgres://replicator@legacy:5432/legacy',
        slot: 'replicator',
        publication: 'replicator',
        createPublication: true,
        tables: [{ schema: 'public', table: 'bookings' }],
        snapshot: 'initial',
        snapshotChunkRows: 10_000,
        snapshotParallelism: 2,
        heartbeatIntervalMs: 10_000,
        statusIntervalMs: 1_000,
        maxBufferedEvents: 20_000,
        maxBufferedBytes: 32 << 20,
        tombstonesOnDelete: true,
        provideTransactionMetadata: false,
      },
      kafka: {
        brokers: ['127.0.0.1:9092'],
        clientId: 'replicator',
        topicPrefix: 'legacy',
        partitions: 6,
        replicationFactor: 1,
        captureProducer: 'platformatic',
      },
      sink: { groupId: 'replicator-sink', sessionTimeoutMs: 10_000, concurrency: 8, maxQueuedMb: 16 },
      cutover: {
        lockTimeoutMs: 2_000,
        lockRetries: 10,
        maxLagSeconds: 30,
        budgetSeconds: 1,
        fence: 'reject',
        graceSeconds: 2,
        finalVerify: 'auto',
        retries: 0,
        retryDelaySeconds: 10,
        fenceLagMs: 250,
        waitSeconds: 60,
        drainTimeoutSeconds: 300,
        sequences: [],
        flip: [],
        flipBack: [],
      },
      metrics: { host: '127.0.0.1', port: 9464, sampleIntervalMs: 5_000 },
    });
  });

  it('returns a deeply frozen config', () => {
    const config = parseConfig(minimal, {});
    expectDeeplyFrozen(config);
    expect(Reflect.set(config.source.tables, 1, { schema: 'x', table: 'y' })).toBe(false);
    expect(Reflect.set(config.kafka.brokers, 0, 'elsewhere:9092')).toBe(false);
  });

  it('rejects an unknown top-level key, naming it', () => {
    const e = configError(() => parseConfig({ ...minimal, sorce: {} }, {}));
    expect(e.message).toMatch(/\bsorce: unknown key/);
    expect(e.retryable).toBe(false);
  });

  it('rejects an unknown nested key, naming its path', () => {
    const e = configError(() => parseConfig({ source: { ...minimal.source, tablez: ['public.x'] } }, {}));
    expect(e.message).toMatch(/\bsource\.tablez: unknown key/);
  });

  it('rejects a table that is not schema-qualified, naming its index', () => {
    const e = configError(() =>
      parseConfig({ source: { ...minimal.source, tables: ['bookings', 'public.ok'] } }, {}),
    );
    expect(e.message).toMatch(/\bsource\.tables\.0: must be schema-qualified/);
    expect(e.message).not.toMatch(/source\.tables\.1/);
    expect(e.details.issues).toEqual([expect.objectContaining({ path: 'source.tables.0' })]);
  });

  it('rejects a missing required key and a config that is not an object', () => {
    expect(configError(() => parseConfig({ source: { tables: ['public.a'] } }, {})).message).toMatch(
      /\bsource\.url:/,
    );
    expect(configError(() => parseConfig(['source'], {})).message).toMatch(/must be an object/);
  });

  it('lets environment overrides win over the file', () => {
    const config = parseConfig(
      { ...minimal, kafka: { brokers: ['file:9092'] }, metrics: { port: 1234 } },
      {
        REPLICATOR_SOURCE_URL: 'postgres://env@env-host:5432/env',
        REPLICATOR_KAFKA_BROKERS: 'a:9092, b:9093 ,c:9094',
        REPLICATOR_METRICS_PORT: '9999',
      },
    );
    expect(config.source.url).toBe('postgres://env@env-host:5432/env');
    expect(config.kafka.brokers).toEqual(['a:9092', 'b:9093', 'c:9094']);
    expect(config.metrics).toEqual({ host: '127.0.0.1', port: 9999, sampleIntervalMs: 5_000 });
    // Only the overridden key changes; the rest of the section keeps its default.
    expect(config.kafka.clientId).toBe('replicator');
  });

  it('fills a section from the environment alone, ignores empty variables and validates overrides', () => {
    const config = parseConfig(minimal, {
      REPLICATOR_TARGET_URL: 'postgres://v2@v2-host:5432/v2',
      REPLICATOR_SCHEMA_REGISTRY_URL: '',
    });
    expect(config.target).toEqual({ url: 'postgres://v2@v2-host:5432/v2' });
    expect(config.schemaRegistry).toBeUndefined();

    expect(configError(() => parseConfig(minimal, { REPLICATOR_METRICS_PORT: 'http' })).message).toMatch(
      /\bmetrics\.port \(from REPLICATOR_METRICS_PORT\):/,
    );
  });

  it('takes Kafka SASL/TLS and Schema Registry credentials from the environment', () => {
    const config = parseConfig(
      { ...minimal, kafka: { sasl: { mechanism: 'plain', username: 'file-user', password: 'file-pw' } } },
      {
        REPLICATOR_KAFKA_SSL: 'true',
        REPLICATOR_KAFKA_SASL_MECHANISM: 'scram-sha-512',
        REPLICATOR_KAFKA_SASL_PASSWORD: 'env-pw',
        REPLICATOR_SCHEMA_REGISTRY_URL: 'http://registry:8081',
        REPLICATOR_SCHEMA_REGISTRY_USERNAME: 'sr-user',
        REPLICATOR_SCHEMA_REGISTRY_PASSWORD: 'sr-pw',
      },
    );
    expect(config.kafka.ssl).toBe(true);
    // The file's username stays; the variables replace only what they name.
    expect(config.kafka.sasl).toEqual({
      mechanism: 'scram-sha-512',
      username: 'file-user',
      password: 'env-pw',
    });
    expect(config.schemaRegistry).toEqual({
      url: 'http://registry:8081',
      username: 'sr-user',
      password: 'sr-pw',
    });

    expect(
      configError(() =>
        parseConfig(minimal, { REPLICATOR_KAFKA_SASL_USERNAME: 'u', REPLICATOR_KAFKA_SASL_PASSWORD: 'p' }),
      ).message,
    ).toMatch(/\bkafka\.sasl\.mechanism:/);
    expect(
      configError(() =>
        parseConfig(minimal, {
          REPLICATOR_SCHEMA_REGISTRY_URL: 'http://registry:8081',
          REPLICATOR_SCHEMA_REGISTRY_USERNAME: 'only-user',
        }),
      ).message,
    ).toMatch(/username and password go together/);
  });

  it('does not change its input', () => {
    const input = structuredClone(minimal);
    parseConfig(input, { REPLICATOR_SOURCE_URL: 'postgres://other/db' });
    expect(input).toEqual(minimal);
    expect(Object.isFrozen(input.source)).toBe(false);
  });
});

describe('loadConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'replicator-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads a JSON file', async () => {
    const path = join(dir, 'replicator.json');
    writeFileSync(path, JSON.stringify({ ...minimal, kafka: { partitions: 3 } }));
    const config = await loadConfig(path, {});
    expect(config.kafka.partitions).toBe(3);
    expect(config.source.tables).toEqual([{ schema: 'public', table: 'bookings' }]);
  });

  it('reads a YAML file, with environment overrides', async () => {
    const path = join(dir, 'replicator.yaml');
    writeFileSync(
      path,
      [
        'source:',
        '  url: postgres://replicator@legacy:5432/legacy',
        '  tables:',
        '    - public.bookings',
        '    - billing.invoices',
        '  snapshot: never',
        'metrics:',
        '  port: 9100',
      ].join('\n'),
    );
    const config = await loadConfig(path, { REPLICATOR_KAFKA_BROKERS: 'kafka:9092' });
    expect(config.source.tables).toEqual([
      { schema: 'public', table: 'bookings' },
      { schema: 'billing', table: 'invoices' },
    ]);
    expect(config.source.snapshot).toBe('never');
    expect(config.metrics.port).toBe(9100);
    expect(config.kafka.brokers).toEqual(['kafka:9092']);
  });

  it('reports a file that does not parse as CONFIG_INVALID naming the file, line and column', async () => {
    const json = join(dir, 'broken.json');
    writeFileSync(json, '{\n  "source": {\n    "url": "x",\n  }\n}\n');
    await expect(loadConfig(json, {})).rejects.toMatchObject({
      code: ErrorCodes.CONFIG_INVALID,
      message: expect.stringContaining(`${json}:4:3: `),
    });
    const yaml = join(dir, 'broken.yaml');
    writeFileSync(yaml, 'source:\n  url: x\n  tables: [a\nkafka: {}\n');
    const error = await loadConfig(yaml, {}).catch((e: unknown) => e as ReplicatorError);
    expect(error).toMatchObject({ code: ErrorCodes.CONFIG_INVALID });
    expect((error as ReplicatorError).message).toMatch(new RegExp(`^cannot parse ${yaml}:\\d+:\\d+: \\S`));
  });
});
