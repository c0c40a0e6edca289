import { z } from 'zod';

/**
 * The one definition of the replicator's configuration. Parsed once at the edge (`loadConfig`), strict: an unknown
 * key is an error that names it. docs/config.md is generated from this file (`npm run docs:config`).
 */

const pgUrl = z
  .string()
  .refine((s) => /^postgres(ql)?:\/\//.test(s), { message: 'must be a postgres:// or postgresql:// URL' });

const identifier = z
  .string()
  .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'lowercase letters, digits and _, at most 63, not starting with a digit');

const tableName = z
  .string()
  .regex(/^[^.\s]+\.[^.\s]+$/, 'must be schema-qualified: "schema.table"')
  .meta({ description: 'A legacy table, schema-qualified (`public.bookings`).' });

export const sourceSchema = z
  .object({
    url: pgUrl.meta({
      description:
        'Legacy database. The role needs REPLICATION and SELECT on the tables only (plus CREATE on the database if the publication is to be created). Env: REPLICATOR_SOURCE_URL.',
    }),
    slot: identifier.default('replicator').meta({ description: 'Logical replication slot name.' }),
    publication: identifier.default('replicator').meta({ description: 'Publication name.' }),
    createPublication: z.boolean().default(true).meta({
      description: 'Create the publication when it is missing (needs table ownership); otherwise refuse.',
    }),
    tables: z.array(tableName).min(1).meta({ description: 'The legacy tables to capture.' }),
    snapshot: z
      .enum(['initial', 'never'])
      .default('initial')
      .meta({ description: '`initial`: copy the tables on the slot’s exported snapshot before streaming.' }),
    snapshotChunkRows: z
      .int()
      .min(1)
      .default(10_000)
      .meta({ description: 'Rows per primary-key-ordered chunk.' }),
    snapshotParallelism: z.int().min(1).max(16).default(2).meta({ description: 'Tables read at once.' }),
    heartbeatIntervalMs: z
      .int()
      .min(0)
      .default(10_000)
      .meta({ description: 'Heartbeat message period (pg_logical_emit_message); 0 disables it.' }),
    statusIntervalMs: z.int().min(100).default(1_000).meta({
      description: 'How often the durable LSN is reported to PostgreSQL; keep below wal_sender_timeout.',
    }),
    maxBufferedEvents: z
      .int()
      .min(100)
      .default(20_000)
      .meta({ description: 'Events held in memory before the replication socket is paused.' }),
    maxBufferedBytes: z
      .int()
      .min(1 << 20)
      .default(32 << 20)
      .meta({ description: 'Bytes held in memory before the replication socket is paused.' }),
    tombstonesOnDelete: z.boolean().default(true).meta({
      description:
        'After each delete, a tombstone (its key, a null value) so log compaction can drop the key, as Debezium’s `tombstones.on.delete`.',
    }),
    provideTransactionMetadata: z.boolean().default(false).meta({
      description:
        'Fill each change’s `transaction` block (id, total_order, data_collection_order), as Debezium’s `provide.transaction.metadata`; null otherwise.',
    }),
  })
  .strict();

const sasl = z
  .object({
    mechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']),
    username: z.string(),
    password: z.string(),
  })
  .strict();

const tls = z.union([
  z.boolean(),
  z
    .object({
      ca: z.string().optional(),
      cert: z.string().optional(),
      key: z.string().optional(),
      rejectUnauthorized: z.boolean().default(true),
    })
    .strict(),
]);

export const kafkaSchema = z
  .object({
    brokers: z
      .array(z.string().regex(/^[^:\s]+:\d+$/, 'must be host:port'))
      .min(1)
      .default(['127.0.0.1:9092'])
      .meta({ description: 'Bootstrap brokers. Env: REPLICATOR_KAFKA_BROKERS (comma-separated).' }),
    clientId: z.string().default('replicator'),
    topicPrefix: z
      .string()
      .regex(/^[A-Za-z0-9._-]+$/)
      .default('legacy')
      .meta({ description: 'Change topics are `<topicPrefix>.<schema>.<table>`.' }),
    partitions: z
      .int()
      .min(1)
      .default(6)
      .meta({ description: 'Partitions of each topic the replicator creates.' }),
    replicationFactor: z.int().min(1).default(1),
    ssl: tls.optional().meta({ description: 'TLS options passed to the Kafka clients.' }),
    sasl: sasl.optional().meta({ description: 'SASL options passed to the Kafka clients.' }),
    captureProducer: z.enum(['platformatic', 'kafkajs']).default('platformatic').meta({
      description:
        "Client of the source's publisher thread: @platformatic/kafka (about twice the messages per CPU second) or kafkajs, which every other stage uses. Both place keys alike (murmur2).",
    }),
  })
  .strict();

/** Consumer-group session timeout of the sink stage. */
const sessionTimeoutMs = z
  .int()
  .min(6_000)
  .default(10_000)
  .meta({ description: 'How long a dead instance holds its partitions before the group moves them.' });

export const sinkSchema = z
  .object({
    groupId: z
      .string()
      .default('replicator-sink')
      .meta({ description: 'Consumer group of the sink (apply) stage; its offsets live in the target.' }),
    concurrency: z.int().min(1).max(32).default(8).meta({
      description:
        'Partitions applied at once (one target connection each). A batch mostly waits on round trips, so this is worth more than the cores: at 3, the 24 partitions of 4 tables took turns and at 1,000 writes/s the sink held hundreds to thousands of changes not yet applied.',
    }),
    maxQueuedMb: z.number().positive().default(16).meta({
      description:
        'Raw changes (MiB, keys and values as fetched, over every partition) held in memory ahead of the apply; above it fetching pauses. Parsed, a change takes about five times its raw size: the default fits the 256 MB heap recommended for the daemon.',
    }),
    sessionTimeoutMs,
  })
  .strict();

export const metricsSchema = z
  .object({
    host: z
      .string()
      .default('127.0.0.1')
      .meta({ description: 'Bind address of /metrics, /healthz and /readyz. Env: REPLICATOR_METRICS_HOST.' }),
    port: z
      .int()
      .min(0)
      .max(65535)
      .default(9464)
      .meta({ description: 'Port of the HTTP endpoints (0: any free port). Env: REPLICATOR_METRICS_PORT.' }),
    sampleIntervalMs: z.int().min(100).default(5_000).meta({
      description:
        'How often the daemon samples slot lag, retained WAL, consumer-group lag and the applied position.',
    }),
  })
  .strict();

const flipAction = z.union([
  z
    .object({
      on: z.enum(['legacy', 'target']).meta({ description: 'Which database runs the SQL.' }),
      sql: z.string().meta({ description: 'SQL to run; with --shop, $1 is the shop.' }),
    })
    .strict(),
  z
    .object({ shell: z.string().meta({ description: 'A shell command (env CUTOVER_ID, CUTOVER_SHOP).' }) })
    .strict(),
]);

export const cutoverSchema = z
  .object({
    adminUrl: pgUrl.optional().meta({
      description: 'Legacy connection allowed to create triggers (table owner); default source.url.',
    }),
    postponeFile: z
      .string()
      .optional()
      .meta({ description: 'While this file exists, cutover waits before the fence.' }),
    lockTimeoutMs: z
      .int()
      .min(10)
      .default(2_000)
      .meta({ description: 'lock_timeout of the fence transaction.' }),
    lockRetries: z.int().min(0).default(10).meta({ description: 'Fence attempts after a lock timeout.' }),
    maxLagSeconds: z.number().min(0).default(30).meta({
      description: 'Go/no-go: replication lag must be under this (heartbeats keep it fresh when idle).',
    }),
    budgetSeconds: z.number().min(0).default(1).meta({
      description:
        'Longest write-blocked window: the fence is taken only when the predicted drain (messages behind ÷ apply rate) fits it, and a cutover whose drain, final verify and flip have not begun flipping within it after the fence aborts and unfences.',
    }),
    fence: z.enum(['reject', 'wait']).default('reject').meta({
      description:
        "How legacy writes are stopped: 'reject' (triggers refuse them from the fence on) or 'wait' (they wait on table locks the cutover holds, at most the budget; after the flip they commit in legacy and are streamed to V2 before the sink stops, after an abort they go on in legacy as if nothing happened).",
    }),
    graceSeconds: z.number().min(0).default(2).meta({
      description:
        "With the waiting fence: how long after the flip legacy still admits writes (those that waited, and any the application sends before it follows the flip), applied and streamed to V2; then they are refused ('write to V2'). Each sequence's gap must cover the inserts of the window and the grace.",
    }),
    finalVerify: z.enum(['auto', 'delta', 'full']).default('auto').meta({
      description:
        "The final verify inside the fence. 'delta': only the V2 rows of legacy rows changed since the last clean full `replicator verify`; 'full': every row; 'auto': the delta unless it would read more than a tenth of the rows the last full verify read (changed rows and their users' other rows; the full one is then the quicker). A full one runs anyway for one shop, with letters in the DLQ, or without a clean full verify to start from.",
    }),
    retries: z.int().min(0).default(0).meta({
      description:
        'Attempts after one aborted for its budget (gh-ost style), each after the catch-up gate again.',
    }),
    retryDelaySeconds: z.number().min(0).default(10).meta({
      description: 'Pause before each retry of a cutover aborted for its budget.',
    }),
    fenceLagMs: z.int().min(0).default(250).meta({
      description:
        "Just before the fence, once the gate has passed, the cutover waits (within waitSeconds) for the pipeline's commit → applied lag to drop under this, so the drain inside the window starts from a caught-up pipeline rather than from a burst of lag; past the wait it fences anyway. 0: fence at once.",
    }),
    waitSeconds: z.number().min(0).default(60).meta({
      description:
        'How long the catch-up gate waits for the predicted drain to fit the budget before refusing.',
    }),
    drainTimeoutSeconds: z
      .number()
      .min(1)
      .default(300)
      .meta({ description: 'Give up (and unfence) after this.' }),
    sequences: z
      .array(z.object({ legacy: z.string(), target: z.string(), gap: z.int().min(0).default(1000) }).strict())
      .default([])
      .meta({
        description:
          "Target sequences set to at least the legacy value + gap at the flip (and again once the waiting fence's admitted writes are streamed).",
      }),
    flip: z.array(flipAction).default([]).meta({ description: 'Actions of the flip (e.g. a feature flag).' }),
    flipBack: z.array(flipAction).default([]).meta({ description: 'Actions of `replicator rollback`.' }),
  })
  .strict();

export const configSchema = z
  .object({
    source: sourceSchema,
    // A function default: each parse gets its own object (parseConfig freezes what it returns).
    kafka: kafkaSchema.default(() => kafkaSchema.parse({})),
    sink: sinkSchema.default(() => sinkSchema.parse({})),
    cutover: cutoverSchema.default(() => cutoverSchema.parse({})),
    schemaRegistry: z
      .object({
        url: z.url(),
        username: z.string().optional().meta({ description: 'Basic auth user (with `password`).' }),
        password: z.string().optional().meta({ description: 'Basic auth password (with `username`).' }),
      })
      .strict()
      .refine((r) => (r.username === undefined) === (r.password === undefined), {
        message: 'username and password go together',
      })
      .optional()
      .meta({
        description: 'Confluent Schema Registry; values become Avro. Env: REPLICATOR_SCHEMA_REGISTRY_URL.',
      }),
    target: z
      .object({ url: pgUrl.meta({ description: 'V2 database. Env: REPLICATOR_TARGET_URL.' }) })
      .strict()
      .optional(),
    metrics: metricsSchema.default(() => metricsSchema.parse({})),
  })
  .strict();

export type ConfigInput = z.input<typeof configSchema>;
export type ParsedConfig = z.output<typeof configSchema>;
