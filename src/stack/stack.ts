import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
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

const projectRoot = fileURLToPath(new URL('../../', import.meta.url));

export interface StackSettings {
  /** An admin connection to the PostgreSQL server that holds the legacy and V2 databases. */
  pgUrl: string;
  kafka: LocalKafkaOptions;
}

/** Stack settings from the environment, defaulting to this machine's services. */
export function stackSettings(env: NodeJS.ProcessEnv = process.env): StackSettings {
  const dir = env.REPLICATOR_STACK_DIR ?? join(projectRoot, '.stack');
  return {
    pgUrl: env.REPLICATOR_STACK_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    kafka: {
      dir: join(dir, 'kafka'),
      host: env.REPLICATOR_STACK_KAFKA_HOST ?? '127.0.0.1',
      port: Number(env.REPLICATOR_STACK_KAFKA_PORT ?? 9092),
      controllerPort: Number(env.REPLICATOR_STACK_KAFKA_CONTROLLER_PORT ?? 9093),
      pom: join(projectRoot, 'stack', 'kafka', 'pom.xml'),
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
}

/** Idempotent: brings PostgreSQL (logical decoding) and a Kafka broker up, reusing what already runs. */
export async function stackUp(s: StackSettings, log: (line: string) => void): Promise<UpResult> {
  const pgResult = await ensurePostgres(s.pgUrl, log);
  if (pgResult.startedCluster) writeState(s, { ...readState(s), startedCluster: pgResult.startedCluster });
  const kafkaResult = await ensureKafka(s.kafka, log);
  const changed = Boolean(pgResult.startedCluster || kafkaResult.startedPid);
  return { changed, ...(kafkaResult.startedPid ? { kafkaPid: kafkaResult.startedPid } : {}) };
}

/** Stops only what `up` started: its broker (by PID file) and a local cluster it had to start. */
export async function stackDown(s: StackSettings, log: (line: string) => void): Promise<void> {
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
}

export async function stackStatus(s: StackSettings): Promise<StackStatus> {
  const [postgres, kafka] = await Promise.all([postgresStatus(s.pgUrl), kafkaStatus(s.kafka)]);
  return { postgres, kafka };
}
