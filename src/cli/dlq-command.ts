import type { Command } from 'commander';
import { dlqTopic } from '../contracts/topics.js';
import { withEndpoint } from '../core/errors.js';
import { createKafka } from '../core/kafka-client.js';
import { commandLogger } from '../core/logger.js';
import { listDeadLetters, replayDeadLetters } from '../ops/dlq/dead-letters.js';
import { loadConfig } from '../pipeline/config/load-config.js';

/** A command gives up on unreachable brokers within a few seconds (the daemon keeps kafkajs's longer retries). */
const CLI_KAFKA = {
  connectionTimeout: 3_000,
  requestTimeout: 10_000,
  retry: { retries: 2, initialRetryTime: 200, maxRetryTime: 2_000 },
};

export function registerDlqCommands(program: Command): void {
  const dlq = program.command('dlq').description('the dead-letter queue');
  dlq
    .command('list')
    .description('list dead letters with their stage, error code and origin')
    .option('--config <file>', 'config file', 'replicator.config.yaml')
    .option('--json', 'one JSON object per line')
    .option('--all', 'also the letters already replayed (marked "replayed")')
    .action(async (opts: { config: string; json?: boolean; all?: boolean }) => {
      const config = await loadConfig(opts.config);
      const kafka = createKafka(config.kafka, commandLogger(), `${config.kafka.clientId}-dlq`, CLI_KAFKA);
      const letters = await withEndpoint({ kind: 'kafka', brokers: config.kafka.brokers }, () =>
        listDeadLetters(kafka, dlqTopic(config.kafka.topicPrefix), { all: Boolean(opts.all) }),
      );
      for (const d of letters) {
        const { value, ...rest } = d;
        if (opts.json) console.log(JSON.stringify({ ...rest, value: value?.toString('utf8') ?? null }));
        else
          console.log(
            `${d.id}  ${d.stage}/${d.transform}  ${d.code}  ${d.table || '-'} ${d.key ?? '-'}  ${d.sourceTopic}[${d.sourcePartition}]@${d.sourceOffset}  ${d.message}${d.replayed ? `  (replayed ${d.replayed.at} to ${d.replayed.to})` : ''}`,
          );
      }
      if (!opts.json) {
        const replayed = letters.filter((d) => d.replayed).length;
        console.log(
          `${letters.length} dead letter(s)${replayed > 0 ? `, ${replayed} of them replayed` : ''}`,
        );
      }
    });
  dlq
    .command('replay')
    .description(
      're-publish dead letters to the topic they came from (after a fix) and mark them replayed; without --id, every letter not replayed yet',
    )
    .option('--config <file>', 'config file', 'replicator.config.yaml')
    .option(
      '--id <id...>',
      'only these, replayed before or not (partition:offset, as `dlq list --all` shows)',
    )
    .action(async (opts: { config: string; id?: string[] }) => {
      const config = await loadConfig(opts.config);
      const kafka = createKafka(config.kafka, commandLogger(), `${config.kafka.clientId}-dlq`, CLI_KAFKA);
      const replayed = await withEndpoint({ kind: 'kafka', brokers: config.kafka.brokers }, () =>
        replayDeadLetters(kafka, dlqTopic(config.kafka.topicPrefix), opts.id),
      );
      for (const d of replayed)
        console.log(`${d.id}  ${d.code}  ${d.table || '-'} ${d.key ?? '-'}  → ${d.replayed?.to}`);
      console.log(`replayed ${replayed.length} dead letter(s)`);
    });
}
