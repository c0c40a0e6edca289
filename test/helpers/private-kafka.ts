import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ensureKafka,
  KAFKA_VERSION,
  type LocalKafkaOptions,
  stopKafka,
} from '../../src/stack/local-kafka.js';
import { stackSettings } from '../../src/stack/stack.js';
import { freePort } from './daemon.js';

/**
 * A Kafka broker of the test's own (own ports, own data dir; the jars shared with the stack's broker) for tests
 * that stop or restart the broker: the shared broker on :9092 serves every other file — and may belong to another
 * checkout or a running demo — so it is never stopped.
 */
export interface PrivateKafka {
  readonly brokers: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Stops the broker and removes its files. */
  destroy(): Promise<void>;
}

export async function startPrivateKafka(): Promise<PrivateKafka> {
  const shared = stackSettings().kafka;
  const dir = mkdtempSync(join(tmpdir(), 'private-kafka-'));
  // The stack's broker has usually fetched the jars: reuse them rather than fetch again. (When the shared broker is
  // another checkout's, this checkout has none, and the private broker fetches its own.)
  const libs = join(shared.dir, `libs-${KAFKA_VERSION}`);
  if (existsSync(join(libs, '.complete'))) symlinkSync(libs, join(dir, `libs-${KAFKA_VERSION}`));
  const o: LocalKafkaOptions = { ...shared, dir, port: await freePort(), controllerPort: await freePort() };
  const quiet = () => {};
  const broker: PrivateKafka = {
    brokers: `${o.host}:${o.port}`,
    start: async () => {
      await ensureKafka(o, quiet);
    },
    stop: async () => {
      if (!(await stopKafka(o, quiet))) throw new Error(`private broker ${o.host}:${o.port} was not running`);
    },
    destroy: async () => {
      await stopKafka(o, quiet).catch(() => false);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await broker.start();
  return broker;
}
