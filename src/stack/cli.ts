import { exitCodeFor } from '../core/errors.js';
import { stackDown, stackSettings, stackStatus, stackUp } from './stack.js';

/** `npm run stack -- up [--no-prometheus] | down | status [--json]` */
async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const log = (line: string) => console.log(line);
  const settings = stackSettings();
  switch (command) {
    case 'up': {
      const result = await stackUp(settings, log, { prometheus: !rest.includes('--no-prometheus') });
      log(result.changed ? 'stack: up' : 'stack: already up, nothing to do');
      return 0;
    }
    case 'down':
      await stackDown(settings, log);
      return 0;
    case 'status': {
      const status = await stackStatus(settings);
      if (rest.includes('--json')) {
        console.log(JSON.stringify(status, null, 2));
      } else {
        const pg = status.postgres;
        const cluster = pg.cluster ? ` (local cluster ${pg.cluster.version}/${pg.cluster.name})` : '';
        const settingsLine = pg.settings
          ? Object.entries(pg.settings)
              .map(([k, v]) => `${k}=${v}`)
              .join(' ')
          : '';
        log(
          `postgres  ${pg.reachable ? 'up  ' : 'DOWN'}  ${pg.url}${cluster} ${pg.version ?? ''} ${settingsLine}`,
        );
        const k = status.kafka;
        const pid = k.pid ? ` pid ${k.pid}${k.pidAlive ? '' : ' (dead)'}` : ' (not started by stack up)';
        log(
          `kafka     ${k.answering ? 'up  ' : 'DOWN'}  ${k.brokers}${k.answering ? ` cluster ${k.clusterId}` : ''}${pid}  log ${k.log}`,
        );
        const p = status.prometheus;
        const ppid = p.pid ? ` pid ${p.pid}${p.pidAlive ? '' : ' (dead)'}` : ' (not started by stack up)';
        log(`prometheus ${p.answering ? 'up  ' : 'DOWN'} ${p.url}${ppid}  log ${p.log}`);
      }
      return status.postgres.reachable && status.kafka.answering ? 0 : 1;
    }
    default:
      console.error('usage: npm run stack -- up [--no-prometheus] | down | status [--json]');
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`stack: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(exitCodeFor(e));
  },
);
