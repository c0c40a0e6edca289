import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import { quoteIdent } from '../src/core/sql.js';
import { fetchMavenJars, hasCommand } from '../src/stack/maven-jars.js';
import { kafkaBrokers } from '../src/stack/stack.js';
import { benchStack, dbUrl, freePort, settings } from './bench-env.js';

/**
 * Debezium's PostgreSQL connector in a Kafka Connect standalone worker, from Maven Central jars (stack/debezium/pom.xml),
 * as the peer the benchmarks and the envelope comparison run beside this source. One way to fetch and start it.
 */
export const DEBEZIUM_VERSION = '3.6.1.Final';
const projectRoot = resolve(new URL('..', import.meta.url).pathname);

export function debeziumJars(stackDir: string, log: (line: string) => void): Promise<string> {
  return fetchMavenJars({
    what: `Debezium ${DEBEZIUM_VERSION} and Kafka Connect jars`,
    pom: join(projectRoot, 'stack', 'debezium', 'pom.xml'),
    libs: join(stackDir, 'debezium', `libs-${DEBEZIUM_VERSION}`),
    expect: 'debezium-connector-postgres-',
    log: (line) => log(`debezium: ${line}`),
  });
}

export interface DebeziumRun {
  pid: number;
  /** Epoch ms the worker logged its source task's start (initialised and polling), once it has. */
  taskStartedAt(): number | undefined;
  /** CPU seconds (user + system) and peak RSS (MB) of the JVM so far, from /proc. */
  usage(): { cpuSeconds: number; peakRssMb: number };
  stop(): Promise<void>;
  log: string;
}

export interface DebeziumOptions {
  libs: string;
  /** A fresh folder for this run's properties, offsets file and log. */
  dir: string;
  brokers: string;
  pgUrl: string;
  slot: string;
  publication: string;
  /** `schema.table` names. */
  tables: string[];
  /** Topics are `<topicPrefix>.<schema>.<table>` (Debezium's naming). */
  topicPrefix: string;
  heapMb?: number;
  /** Extra connector (`name=value`) and worker (`producer.…`) properties, over the stock ones. */
  connector?: Record<string, string>;
  worker?: Record<string, string>;
}

const props = (o: Record<string, string | number>) =>
  `${Object.entries(o)
    .map(([k, v]) => `${k}=${v}`)
    .join('\n')}\n`;

/** Starts the worker with one connector reading `slot` (which must exist) with no snapshot: the stock settings. */
export async function startDebezium(o: DebeziumOptions): Promise<DebeziumRun> {
  if (!(await hasCommand('java', ['-version']))) throw new Error('java is needed to run Debezium');
  mkdirSync(o.dir, { recursive: true });
  const url = new URL(o.pgUrl);
  const worker = join(o.dir, 'worker.properties');
  const connector = join(o.dir, 'postgres.properties');
  const log4j = join(o.dir, 'log4j2.properties');
  const log = join(o.dir, 'connect.log');
  writeFileSync(
    worker,
    props({
      'bootstrap.servers': o.brokers,
      'key.converter': 'org.apache.kafka.connect.json.JsonConverter',
      'value.converter': 'org.apache.kafka.connect.json.JsonConverter',
      'key.converter.schemas.enable': 'false',
      'value.converter.schemas.enable': 'false',
      'offset.storage.file.filename': join(o.dir, 'offsets.dat'),
      // Plugins come from the class path; the default scan costs seconds and ~900 MB.
      'plugin.discovery': 'service_load',
      'producer.acks': 'all',
      listeners: `http://127.0.0.1:${await freePort()}`,
      ...o.worker,
    }),
  );
  writeFileSync(
    connector,
    props({
      name: 'bench-debezium',
      'connector.class': 'io.debezium.connector.postgresql.PostgresConnector',
      'tasks.max': 1,
      'database.hostname': url.hostname,
      'database.port': url.port || '5432',
      'database.user': decodeURIComponent(url.username || 'postgres'),
      'database.password': decodeURIComponent(url.password),
      'database.dbname': url.pathname.slice(1),
      'topic.prefix': o.topicPrefix,
      'plugin.name': 'pgoutput',
      'slot.name': o.slot,
      'publication.name': o.publication,
      'publication.autocreate.mode': 'disabled',
      'table.include.list': o.tables.join(','),
      'snapshot.mode': 'no_data',
      // Our envelope carries numerics as exact strings; Debezium's default is bytes of the unscaled value.
      'decimal.handling.mode': 'string',
      ...o.connector,
    }),
  );
  // Epoch milliseconds first on every line: the bench reads the task's start from it.
  writeFileSync(
    log4j,
    props({
      'appender.file.type': 'File',
      'appender.file.name': 'file',
      'appender.file.fileName': log,
      'appender.file.layout.type': 'PatternLayout',
      'appender.file.layout.pattern': '%d{UNIX_MILLIS} %p %c{1} %m%n',
      'rootLogger.level': 'INFO',
      'rootLogger.appenderRef.file.ref': 'file',
    }),
  );
  const out = openSync(join(o.dir, 'connect.out'), 'a');
  const child: ChildProcess = spawn(
    'java',
    [
      `-Xmx${o.heapMb ?? 1024}m`,
      `-Dlog4j2.configurationFile=${log4j}`,
      '-cp',
      `${o.libs}/*`,
      'org.apache.kafka.connect.cli.ConnectStandalone',
      worker,
      connector,
    ],
    { stdio: ['ignore', out, out] },
  );
  const pid = child.pid!;
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  let peakRssMb = 0;
  let cpuSeconds = 0;
  return {
    pid,
    log,
    taskStartedAt() {
      if (!existsSync(log)) return undefined;
      // Connect's WorkerSourceTask, once the connector task's start() returned and polling begins.
      const line = readFileSync(log, 'utf8')
        .split('\n')
        .find((l) => l.includes('Source task finished initialization and start'));
      return line ? Number(line.split(' ')[0]) : undefined;
    },
    usage() {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        // utime and stime (fields 14 and 15 of stat; 12 and 13 after the command name), in clock ticks.
        cpuSeconds = (Number(fields[11]) + Number(fields[12])) / 100;
        const hwm = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
        peakRssMb = Math.max(peakRssMb, Number(hwm?.[1] ?? 0) / 1024);
      } catch {
        // exited: keep the last reading
      }
      return { cpuSeconds, peakRssMb };
    },
    async stop() {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * What a run beside Debezium needs: the stack, Debezium's jars, a Kafka admin and a fresh legacy database
 * `<label>_<pid>`; `close()` drops the database with its slots.
 */
export async function besideDebezium(label: string) {
  const { admin, pgVersion } = await benchStack();
  const libs = await debeziumJars(settings.dir, (l) => console.log(l));
  const kafka = new Kafka({ clientId: label, brokers: [kafkaBrokers(settings)], logLevel: logLevel.NOTHING });
  const kafkaAdmin = kafka.admin();
  await kafkaAdmin.connect();
  const db = `${label}_${process.pid}`;
  await admin.query(`CREATE DATABASE ${quoteIdent(db)}`);
  const url = dbUrl(db);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return {
    pgVersion,
    libs,
    kafka,
    kafkaAdmin,
    url,
    client,
    async close() {
      await client.query(
        'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = current_database()',
      );
      await client.end();
      await admin.query(`DROP DATABASE ${quoteIdent(db)} WITH (FORCE)`);
      await admin.end();
      await kafkaAdmin.disconnect();
    },
  };
}
