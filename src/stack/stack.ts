import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCodes, isReplicatorError } from '../core/errors.js';
import {
  ensureKafka,
  type KafkaStatus,
  kafkaStatus,
  type LocalKafkaOptions,
  stopKafka,
} from './local-kafka.js';
import {
  ensurePostgres,
  type LocalCluster,
  type PostgresStatus,
  postgresStatus,
  stopLocalCluster,
} from './local-postgres.js';
import {
  ensurePostgresExporter,
  type LocalPostgresExporterOptions,
  postgresExporterTarget,
  stopPostgresExporter,
} from './local-postgres-exporter.js';
import {
  ensurePrometheus,
  type LocalPrometheusOptions,
  type PrometheusStatus,
  prometheusStatus,
  stopPrometheus,
} from './local-prometheus.js';

const projectRoot = fileURLToPath(new URL('../../', import.meta.url));

export interface StackSettings {
  /** The stack's folder (jars, data, logs; git-ignored). */
  dir: string;
  /** An admin connection to the PostgreSQL server that holds the legacy and V2 databases. */
  pgUrl: string;
  kafka: LocalKafkaOptions;
  /** Started by `npm run stack -- up` (not by the test setup): scrapes the daemon's metrics port. */
  prometheus: LocalPrometheusOptions;
  /** Started with Prometheus: watches the slots from PostgreSQL itself (the daemon may be the one that is down). */
  postgresExporter: LocalPostgresExporterOptions;
}

/** Stack settings from the environment, defaulting to this machine's services. */
export function stackSettings(env: NodeJS.ProcessEnv = process.env): StackSettings {
  const dir = env.REPLICATOR_STACK_DIR ?? join(projectRoot, '.stack');
  const pgUrl = env.REPLICATOR_STACK_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const postgresExporter = {
    dir: join(dir, 'postgres-exporter'),
    host: '127.0.0.1',
    port: Number(env.REPLICATOR_STACK_POSTGRES_EXPORTER_PORT ?? 9187),
    pgUrl,
  };
  return {
    dir,
    pgUrl,
    postgresExporter,
    kafka: {
      dir: join(dir, 'kafka'),
      host: env.REPLICATOR_STACK_KAFKA_HOST ?? '127.0.0.1',
      port: Number(env.REPLICATOR_STACK_KAFKA_PORT ?? 9092),
      controllerPort: Number(env.REPLICATOR_STACK_KAFKA_CONTROLLER_PORT ?? 9093),
      pom: join(projectRoot, 'stack', 'kafka', 'pom.xml'),
    },
    prometheus: {
      dir: join(dir, 'prometheus'),
      host: env.REPLICATOR_STACK_PROMETHEUS_HOST ?? '127.0.0.1',
      port: Number(env.REPLICATOR_STACK_PROMETHEUS_PORT ?? 9090),
      targets: (env.REPLICATOR_STACK_PROMETHEUS_TARGETS ?? '127.0.0.1:9464').split(',').map((t) => t.trim()),
      scrapeIntervalSeconds: 5,
      ruleFiles: [join(projectRoot, 'observability', 'prometheus', 'alerts.yml')],
      postgresTargets: [postgresExporterTarget(postgresExporter)],
    },
  };
}

export const kafkaBrokers = (s: StackSettings) => `${s.kafka.host}:${s.kafka.port}`;

interface StackState {
  startedCluster?: LocalCluster;
}

const stateFile = (s: StackSettings) => join(s.kafka.dir, '..', 'state.json');

function readState(s: StackSettings): StackState {
  const f = stateFile(s);
  return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as StackState) : {};
}

function writeState(s: StackSettings, state: StackState): void {
  mkdirSync(join(s.kafka.dir, '..'), { recursive: true });
  writeFileSync(stateFile(s), `${JSON.stringify(state, null, 2)}\n`);
}

export interface UpResult {
  /** True when this call started something; false when everything already ran (a no-op). */
  changed: boolean;
  kafkaPid?: number;
  prometheusPid?: number;
}

/**
 * Idempotent: brings PostgreSQL (logical decoding) and a Kafka broker up, reusing what already runs; with
 * `prometheus`, also a Prometheus scraping the daemon's metrics port (with the project's alert rules).
 */
export async function stackUp(
  s: StackSettings,
  log: (line: string) => void,
  options: { prometheus?: boolean } = {},
): Promise<UpResult> {
  const pgResult = await ensurePostgres(s.pgUrl, log);
  if (pgResult.startedCluster) writeState(s, { ...readState(s), startedCluster: pgResult.startedCluster });
  const kafkaResult = await ensureKafka(s.kafka, log);
  let promResult: { startedPid?: number } = {};
  if (options.prometheus) {
    try {
      await ensurePostgresExporter(s.postgresExporter, log);
    } catch (e) {
      if (!isReplicatorError(e, ErrorCodes.STACK_TOOL_MISSING)) throw e;
      log(`postgres_exporter: skipped (${e.message})`);
    }
    try {
      promResult = await ensurePrometheus(s.prometheus, log);
    } catch (e) {
      // Optional: PostgreSQL and Kafka are what the replicator needs; Prometheus only watches it.
      if (!isReplicatorError(e, ErrorCodes.STACK_TOOL_MISSING)) throw e;
      log(`prometheus: skipped (${e.message})`);
    }
  }
  const changed = Boolean(pgResult.startedCluster || kafkaResult.startedPid || promResult.startedPid);
  return {
    changed,
    ...(kafkaResult.startedPid ? { kafkaPid: kafkaResult.startedPid } : {}),
    ...(promResult.startedPid ? { prometheusPid: promResult.startedPid } : {}),
  };
}

/** Stops only what `up` started: Prometheus and the broker (by PID file), and a local cluster it had to start. */
export async function stackDown(s: StackSettings, log: (line: string) => void): Promise<void> {
  if (!(await stopPrometheus(s.prometheus, log))) log('prometheus: none started by `stack up` is running');
  await stopPostgresExporter(s.postgresExporter, log);
  if (!(await stopKafka(s.kafka, log))) log('kafka: no broker started by `stack up` is running');
  const state = readState(s);
  if (state.startedCluster) {
    await stopLocalCluster(state.startedCluster, log);
    writeState(s, {});
  } else {
    log('postgres: left running (not started by `stack up`)');
  }
}

export interface StackStatus {
  postgres: PostgresStatus;
  kafka: KafkaStatus;
  prometheus: PrometheusStatus;
}

export async function stackStatus(s: StackSettings): Promise<StackStatus> {
  const [postgres, kafka, prometheus] = await Promise.all([
    postgresStatus(s.pgUrl),
    kafkaStatus(s.kafka),
    prometheusStatus(s.prometheus),
  ]);
  return { postgres, kafka, prometheus };
}
