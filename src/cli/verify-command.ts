import { type Command, InvalidArgumentError } from 'commander';
import { pino } from 'pino';
import { AvroEncoder } from '../../connectors/schema-registry-encoder/index.js';
import type { V2Entity } from '../contracts/transform-api.js';
import { ErrorCodes, ReplicatorError } from '../core/errors.js';
import { createKafka } from '../core/kafka-client.js';
import { createLogger, logLevelFromEnv } from '../core/logger.js';
import { renderVerifyReport } from '../ops/verify/render-verify-report.js';
import { runVerify, sinkOf, V2_ENTITIES, type VerifyProgress } from '../ops/verify/verify.js';
import { loadConfig } from '../pipeline/config/load-config.js';
import { schemaRegistryClient } from '../pipeline/pipeline-builder.js';
import { positiveNumber } from './options.js';

const entityList = (value: string, previous: V2Entity[] = []): V2Entity[] => {
  const out = [...previous];
  for (const e of value.split(',').map((s) => s.trim())) {
    if (!V2_ENTITIES.includes(e as V2Entity)) {
      throw new InvalidArgumentError(`one of ${V2_ENTITIES.join(', ')}`);
    }
    out.push(e as V2Entity);
  }
  return out;
};

/** A one-line progress bar on stderr (a TTY only). */
function progressBar(stream: NodeJS.WriteStream) {
  let last = 0;
  return {
    update(p: VerifyProgress) {
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      const width = 30;
      const share = p.total ? Math.min(1, p.done / p.total) : 0;
      const bar = '#'.repeat(Math.round(share * width)).padEnd(width, '.');
      const what = `${p.phase}${p.item ? ` ${p.item}` : ''}`;
      const count = p.total ? `${p.done.toLocaleString('en-US')}/${p.total.toLocaleString('en-US')}` : '';
      stream.write(`\r\x1b[2K[${bar}] ${what} ${count}`);
    },
    done() {
      stream.write('\r\x1b[2K');
    },
  };
}

/** `replicator verify`: thin — parse, call runVerify, print, exit non-zero (VERIFY_DRIFT) on drift. */
export function registerVerifyCommand(program: Command): void {
  program
    .command('verify')
    .description(
      'compare the target with what the transforms make of a consistent legacy snapshot; re-check differences after the sink catches up; exit non-zero on drift',
    )
    .option('--config <file>', 'config file (.json, .yaml, .ts)', 'replicator.config.yaml')
    .option('--json', 'print the report as JSON')
    .option(
      '--entity <entity>',
      `only this entity (repeatable or comma-separated): ${V2_ENTITIES.join(', ')}`,
      entityList,
    )
    .option('--shop <shop>', 'only this shop’s bundles, bundle_components and bundle_discounts')
    .option('--repair', 're-emit the drifted legacy rows through the pipeline, then re-check them')
    .option(
      '--wait <seconds>',
      'how long a re-check waits for the sink to pass its snapshot',
      positiveNumber,
      60,
    )
    .action(
      async (opts: {
        config: string;
        json?: boolean;
        entity?: V2Entity[];
        shop?: string;
        repair?: boolean;
        wait: number;
      }) => {
        const config = await loadConfig(opts.config);
        if (!config.target) throw new ReplicatorError(ErrorCodes.CONFIG_INVALID, 'verify needs target.url');
        // stdout is the report; logs go to stderr.
        const logger = createLogger({
          level: logLevelFromEnv('warn'),
          destination: pino.destination(2),
        });
        const bar = process.stderr.isTTY && !opts.json ? progressBar(process.stderr) : undefined;
        const registry = schemaRegistryClient(config);
        const kafka = createKafka(config.kafka, logger, `${config.kafka.clientId}-verify`);
        const report = await runVerify({
          legacyUrl: config.source.url,
          targetUrl: config.target.url,
          ...(opts.entity ? { entities: opts.entity } : {}),
          ...(opts.shop !== undefined ? { shop: opts.shop } : {}),
          recheck: {
            sink: sinkOf(config, kafka),
            timeoutMs: opts.wait * 1000,
          },
          ...(opts.repair
            ? {
                repair: {
                  kafka,
                  topicPrefix: config.kafka.topicPrefix,
                  tombstonesOnDelete: config.source.tombstonesOnDelete,
                  ...(registry ? { encoder: new AvroEncoder({ client: registry }) } : {}),
                },
              }
            : {}),
          logger,
          ...(bar ? { onProgress: (p: VerifyProgress) => bar.update(p) } : {}),
        });
        bar?.done();
        process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : renderVerifyReport(report));
        if (!report.clean) {
          const drift = report.entities.reduce((s, e) => s + e.missing + e.extra + e.different, 0);
          throw new ReplicatorError(ErrorCodes.VERIFY_DRIFT, `verify found drift in ${drift} V2 row(s)`, {
            details: { runId: report.runId },
          });
        }
      },
    );
}
