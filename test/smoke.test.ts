import { LogicalReplicationService, type Pgoutput, PgoutputPlugin } from 'pg-logical-replication';
import { describe, expect, it } from 'vitest';
import { freshDatabase, freshName, freshTopic, testKafka, withClient } from './helpers/resources.js';

/** The whole stack, for real: logical decoding → pg-logical-replication → kafkajs → back. */
describe('smoke: PostgreSQL logical replication to Kafka and back', () => {
  it('reads an inserted row from a slot, produces it to a topic and consumes it back', async () => {
    const db = await freshDatabase('smoke');
    const slot = freshName('slot');
    const publication = freshName('pub');
    await withClient(db.url, async (c) => {
      await c.query('CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)');
      await c.query(`CREATE PUBLICATION ${publication} FOR TABLE items`);
      await c.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slot]);
      await c.query("INSERT INTO items VALUES (1, 'first')");
    });

    // Acknowledgement is ours, never the library's timer (see the source connector's notes on 2.5.0).
    const service = new LogicalReplicationService(
      { connectionString: db.url },
      { acknowledge: { auto: false, timeoutSeconds: 0 } },
    );
    const inserted = new Promise<Pgoutput.MessageInsert>((resolve, reject) => {
      service.on('data', (_lsn: string, msg: Pgoutput.Message) => {
        if (msg.tag === 'insert') resolve(msg);
      });
      service.on('error', reject);
    });
    const plugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: [publication] });
    service.subscribe(plugin, slot).catch(() => {});
    const insert = await inserted;
    await service.destroy();
    expect(insert.relation.name).toBe('items');
    expect(insert.new).toEqual({ id: 1, name: 'first' });

    const topic = await freshTopic('smoke');
    const kafka = testKafka();
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    await producer.send({
      topic,
      acks: -1,
      messages: [{ key: JSON.stringify({ id: insert.new.id }), value: JSON.stringify(insert.new) }],
    });
    await producer.disconnect();

    const consumer = kafka.consumer({ groupId: freshName('group') });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const received = await new Promise<{ key: string; value: string }>((resolve) => {
      void consumer.run({
        eachMessage: async ({ message }) => {
          resolve({ key: String(message.key), value: String(message.value) });
        },
      });
    });
    await consumer.disconnect();
    expect(JSON.parse(received.key)).toEqual({ id: 1 });
    expect(JSON.parse(received.value)).toEqual({ id: 1, name: 'first' });

    await withClient(db.url, async (c) => {
      await c.query('SELECT pg_drop_replication_slot($1)', [slot]);
      const left = await c.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot]);
      expect(left.rowCount).toBe(0);
    });
  });
});
