import pg from 'pg';

/**
 * A connected client that never crashes the process: a connection that drops later only fails its next query (an
 * 'error' event without a listener would be unhandled), and a failed connect leaves no socket behind.
 */
export async function connectClient(config: pg.ClientConfig): Promise<pg.Client> {
  const client = new pg.Client(config);
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (e) {
    await client.end().catch(() => {});
    throw e;
  }
  return client;
}
