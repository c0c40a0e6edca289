import { randomBytes } from 'node:crypto';
import { type Admin, type Consumer, Kafka, type KafkaConfig, logLevel, type Producer } from 'kafkajs';
import pg from 'pg';
import { inject } from 'vitest';
import { ensureTopics } from '../../src/core/kafka-topics.js';
import { quoteIdent } from '../../src/core/sql.js';

/**
 * Per-test-file resources: every database, slot, publication and topic a file makes is named from one random
 * prefix, so files never see each other's state, and `leak-check.ts` can find and drop whatever a file leaves.
 */
const prefix = `t${randomBytes(4).toString('hex')}`;
const databases = new Set<string>();
const kafkaClients = new Set<{ name: string; connected: boolean }>();

export const pgAdminUrl = (): string => inject('pgAdminUrl');
export const kafkaBrokers = (): string => inject('kafkaBrokers');

/** This file's prefix: every name below starts with it. */
export const resourcePrefix = (): string => prefix;

/** A name unique to this file and call, valid as a slot, publication, database or topic name. */
export function freshName(label: string): string {
  return `${prefix}_${label}_${randomBytes(3).toString('hex')}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
}

export function urlFor(database: string): string {
  const u = new URL(pgAdminUrl());
  u.pathname = `/${database}`;
  return u.toString();
}

/** Creates an empty database for this file; leak-check drops it after the file. */
export async function freshDatabase(label: string): Promise<{ name: string; url: string }> {
  const name = freshName(label);
  await withAdmin((c) => c.query(`CREATE DATABASE ${quoteIdent(name)}`));
  databases.add(name);
  return { name, url: urlFor(name) };
}

export const createdDatabases = (): string[] => [...databases];

/** A database named with `freshName` that something else (a child process) creates: leak-check checks and drops it. */
export function trackDatabase(name: string): void {
  databases.add(name);
}

export async function withAdmin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  return withClient(pgAdminUrl(), fn);
}

export async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** A kafkajs instance whose producers, consumers and admins are tracked so leak-check can fail a file that leaves one connected. */
export function testKafka(clientId = freshName('client'), extra: Partial<KafkaConfig> = {}): Kafka {
  const kafka = new Kafka({ clientId, brokers: [kafkaBrokers()], logLevel: logLevel.NOTHING, ...extra });
  const track = <T extends Producer | Consumer | Admin>(client: T, kind: string): T => {
    const entry = { name: `${kind} ${clientId}`, connected: false };
    kafkaClients.add(entry);
    // kafkajs types `on` per client kind; the CONNECT/DISCONNECT events are common to all three.
    const on = client.on.bind(client) as (event: string, listener: () => void) => void;
    on(client.events.CONNECT, () => {
      entry.connected = true;
    });
    on(client.events.DISCONNECT, () => {
      entry.connected = false;
    });
    return client;
  };
  return {
    producer: (cfg?: Parameters<Kafka['producer']>[0]) => track(kafka.producer(cfg), 'producer'),
    consumer: (cfg: Parameters<Kafka['consumer']>[0]) => track(kafka.consumer(cfg), 'consumer'),
    admin: (cfg?: Parameters<Kafka['admin']>[0]) => track(kafka.admin(cfg), 'admin'),
    logger: () => kafka.logger(),
  } as Kafka;
}

export const connectedKafkaClients = (): string[] =>
  [...kafkaClients].filter((c) => c.connected).map((c) => c.name);

/** Creates a topic named for this file; leak-check deletes every topic with this file's prefix. */
export async function freshTopic(label: string, partitions = 1): Promise<string> {
  const topic = freshName(label);
  const admin = new Kafka({
    clientId: `${prefix}-admin`,
    brokers: [kafkaBrokers()],
    logLevel: logLevel.ERROR,
  }).admin();
  await admin.connect();
  try {
    await ensureTopics(admin, [{ topic, partitions, replicationFactor: 1 }]);
  } finally {
    await admin.disconnect();
  }
  return topic;
}

/** Drops a replication slot once its walsender has gone (a stopped reader's backend may take a moment). */
export async function dropSlot(url: string, slot: string): Promise<void> {
  await withClient(url, async (c) => {
    for (let i = 0; i < 100; i++) {
      const r = await c.query<{ active: boolean }>(
        'SELECT active FROM pg_replication_slots WHERE slot_name = $1',
        [slot],
      );
      if (r.rowCount === 0) return;
      if (!r.rows[0]!.active) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    await c.query('SELECT pg_drop_replication_slot($1)', [slot]);
  });
}
