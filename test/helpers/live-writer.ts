import pg from 'pg';
import { applyWrites, type LegacyWorkload } from '../../src/workload/legacy-workload.js';

export interface LiveWriter {
  /** Writes committed so far. */
  written(): number;
  /** Writes that failed (counted only with `survive`). */
  failed(): number;
  /** Resolves once `n` more writes have committed (rejects if the writer stopped on an error). */
  advance(n: number): Promise<void>;
  /** Stops writing; rethrows the error that stopped the writer, if one did. */
  stop(): Promise<void>;
}

export interface LiveWriterOptions {
  /** Pause between two writes (0: back to back). */
  pauseMs?: number;
  /**
   * Go on through failures — a restarted or unreachable legacy server — counting them and reconnecting. Without it
   * the first failed write stops the writer and fails the test (through `advance` or `stop`).
   */
  survive?: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The workload's writes, one after another on one connection, from now until `stop()`: the tests' live load. */
export function startLiveWriter(
  url: string,
  workload: LegacyWorkload,
  o: LiveWriterOptions = {},
): LiveWriter {
  let stop = false;
  let written = 0;
  let failed = 0;
  let error: unknown;
  const done = (async () => {
    while (!stop) {
      const c = new pg.Client({ connectionString: url });
      c.on('error', () => {});
      try {
        await c.connect();
        while (!stop) {
          await applyWrites(c, [workload.next()]);
          written++;
          if (o.pauseMs) await sleep(o.pauseMs);
        }
      } catch (e) {
        if (!o.survive) {
          error = e;
          stop = true;
          break;
        }
        failed++;
        await sleep(200);
      } finally {
        await c.end().catch(() => {});
      }
    }
  })();
  return {
    written: () => written,
    failed: () => failed,
    async advance(n: number) {
      const target = written + n;
      while (written < target) {
        if (error !== undefined) throw error;
        await sleep(10);
      }
    },
    async stop() {
      stop = true;
      await done;
      if (error !== undefined) throw error;
    },
  };
}
