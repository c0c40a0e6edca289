import { readFileSync } from 'node:fs';
import { PgoutputSource } from '../connectors/pgoutput-source/index.js';
import { createKafka } from '../src/core/kafka-client.js';
import { createLogger } from '../src/core/logger.js';
import { parseLsn } from '../src/core/lsn.js';
import { parseConfig } from '../src/pipeline/config/load-config.js';
import { sourceOptions } from '../src/pipeline/stage-options.js';

/**
 * One capture run in its own process (so peak RSS is this run's): streams the slot until the source's durable
 * position reaches `endLsn`, then prints {seconds, totalSeconds, events, peakRssMb, cpuSeconds}.
 */
const [configFile, endLsnText] = process.argv.slice(2) as [string, string];
const config = parseConfig(JSON.parse(readFileSync(configFile, 'utf8')), {});
const logger = createLogger({ level: 'warn' });
const source = new PgoutputSource(sourceOptions(config, createKafka(config.kafka, logger), logger));
const end = parseLsn(endLsnText);
const controller = new AbortController();
const started = process.hrtime.bigint();
const running = source.run(controller.signal);
let streamingAt: bigint | undefined;
for (;;) {
  const p = source.progress();
  if (p.role === 'leader' && streamingAt === undefined) streamingAt = process.hrtime.bigint();
  if (parseLsn(p.durableLsn) >= end) break;
  await new Promise((r) => setTimeout(r, 5));
}
const done = process.hrtime.bigint();
controller.abort();
await running;
const status = readFileSync('/proc/self/status', 'utf8');
const peakKb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
console.log(
  JSON.stringify({
    seconds: Number(done - (streamingAt ?? started)) / 1e9,
    totalSeconds: Number(done - started) / 1e9,
    events: source.progress().events,
    peakRssMb: peakKb / 1024,
    cpuSeconds: (() => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1e6;
    })(),
  }),
);
process.exit(0);
