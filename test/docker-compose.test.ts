import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ENV_OVERRIDES, parseConfig } from '../src/pipeline/config/load-config.js';

/**
 * Docker cannot run on the machines that run this suite, so docker-compose.yml is checked statically: the
 * addresses it hands the replicator must parse as a config and point at the services and ports that exist.
 */

const read = (path: string): string => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8');

const stringOrList = z.union([z.string(), z.array(z.string())]);
const serviceSchema = z.looseObject({
  image: z.string().optional(),
  build: z.unknown().optional(),
  command: stringOrList.optional(),
  environment: z
    .union([z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])), z.array(z.string())])
    .optional(),
  depends_on: z
    .union([z.array(z.string()), z.record(z.string(), z.looseObject({ condition: z.string() }))])
    .optional(),
  healthcheck: z.looseObject({ test: stringOrList, disable: z.boolean().optional() }).optional(),
  volumes: z
    .array(z.union([z.string(), z.looseObject({ source: z.string(), target: z.string() })]))
    .optional(),
  restart: z.string().optional(),
  profiles: z.array(z.string()).optional(),
});
type Service = z.infer<typeof serviceSchema>;

const compose = z
  .looseObject({ services: z.record(z.string(), serviceSchema) })
  .parse(parseYaml(read('docker-compose.yml')));
const services = compose.services;

/** The services that keep running (each with a healthcheck and a restart policy). */
const EXPECTED_SERVICES = [
  'legacy-postgres',
  'v2-postgres',
  'kafka',
  'schema-registry',
  'postgres-exporter',
  'prometheus',
  'grafana',
  'replicator',
] as const;
/** Runs once per `up` and exits. */
const INIT_SERVICE = 'replicator-init';

// What each service listens on inside the compose network: the images' defaults, and the compose settings below.
const POSTGRES_PORT = 5432;
const KAFKA_PORT = 9092;
const SCHEMA_REGISTRY_PORT = 8081;
const METRICS_DEFAULT_PORT = 9464;

function service(name: string): Service {
  const s = services[name];
  if (!s) throw new Error(`docker-compose.yml has no service ${name}`);
  return s;
}

function environment(s: Service): Record<string, string> {
  const env = s.environment ?? {};
  if (Array.isArray(env)) {
    return Object.fromEntries(env.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  }
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)]));
}

/** `command` as argv; compose splits a string command on whitespace. */
function argv(command: string | string[] | undefined): string[] {
  return typeof command === 'string' ? command.trim().split(/\s+/) : (command ?? []);
}

/** The `-c name=value` settings a postgres command line passes. */
function postgresSettings(s: Service): Record<string, string> {
  const args = argv(s.command);
  const settings: Record<string, string> = {};
  args.forEach((arg, i) => {
    const setting = arg === '-c' ? args[i + 1] : arg.startsWith('-c') ? arg.slice(2) : undefined;
    const eq = setting?.indexOf('=') ?? -1;
    if (setting && eq > 0) settings[setting.slice(0, eq)] = setting.slice(eq + 1);
  });
  return settings;
}

const replicatorEnv = environment(service('replicator'));
const config = parseConfig({ source: { tables: ['public.bookings'] } }, replicatorEnv);
/** The replicator's config with the registry opted in (the `avro` profile). */
const avroConfig = parseConfig(
  { source: { tables: ['public.bookings'] } },
  { ...replicatorEnv, REPLICATOR_SCHEMA_REGISTRY_URL: 'http://schema-registry:8081' },
);

function hostPort(address: string): { host: string; port: number } {
  const url = new URL(address.includes('://') ? address : `tcp://${address}`);
  return { host: url.hostname, port: Number(url.port) };
}

/** Kafka's `NAME://host:port,...` lists; the host may be empty (all interfaces). */
function kafkaListeners(value: string | undefined): { name: string; host: string; port: number }[] {
  return (value ?? '').split(',').map((l) => {
    const m = /^(\w+):\/\/([^:]*):(\d+)$/.exec(l.trim());
    if (!m) throw new Error(`not a Kafka listener: ${l}`);
    return { name: m[1]!, host: m[2]!, port: Number(m[3]) };
  });
}

describe('docker-compose.yml', () => {
  it('has every service, each with a healthcheck', () => {
    for (const name of EXPECTED_SERVICES) {
      const hc = service(name).healthcheck;
      expect(hc, `${name} healthcheck`).toBeDefined();
      expect(hc?.disable ?? false).toBe(false);
      expect(argv(hc?.test).length, `${name} healthcheck test`).toBeGreaterThan(1);
      expect(argv(hc?.test)[0]).not.toBe('NONE');
    }
  });

  it('makes every dependency wait for a healthy service that exists, or for the init service to finish', () => {
    for (const [name, s] of Object.entries(services)) {
      const deps = s.depends_on ?? {};
      expect(Array.isArray(deps), `${name}: depends_on needs conditions`).toBe(false);
      for (const [dep, { condition }] of Object.entries(deps)) {
        expect(Object.keys(services)).toContain(dep);
        expect(condition, `${name} → ${dep}`).toBe(
          dep === INIT_SERVICE ? 'service_completed_successfully' : 'service_healthy',
        );
      }
    }
    expect(Object.keys(service(INIT_SERVICE).depends_on ?? {}).sort()).toEqual([
      'legacy-postgres',
      'v2-postgres',
    ]);
    // Not the registry: it is an opt-in profile, and the shipped transforms read JSON values.
    expect(Object.keys(service('replicator').depends_on ?? {}).sort()).toEqual(['kafka', INIT_SERVICE]);
  });

  it('restarts what keeps running, runs the init service once, and keeps the registry behind a profile', () => {
    for (const name of EXPECTED_SERVICES) expect(service(name).restart, name).toBe('unless-stopped');
    expect(service(INIT_SERVICE).restart).toBe('no');
    expect(service('schema-registry').profiles).toEqual(['avro']);
    for (const [name, s] of Object.entries(services)) {
      if (name !== 'schema-registry') expect(s.profiles, name).toBeUndefined();
    }
    expect(config.schemaRegistry).toBeUndefined();
  });

  it('builds the image on a supported Node LTS line (an even major, 22 or later)', () => {
    const majors = [...read('Dockerfile').matchAll(/^FROM node:(\d+)/gm)].map((m) => Number(m[1]));
    expect(majors.length).toBeGreaterThan(0);
    for (const major of majors) {
      expect(major % 2).toBe(0);
      expect(major).toBeGreaterThanOrEqual(22);
    }
  });

  it('sets only REPLICATOR_* variables the config knows', () => {
    const names = Object.keys(replicatorEnv).filter((k) => k.startsWith('REPLICATOR_'));
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) expect(Object.keys(ENV_OVERRIDES)).toContain(name);
  });

  it('points the replicator at the PostgreSQL services, with their credentials and databases', () => {
    const cases = [
      { url: config.source.url, name: 'legacy-postgres' },
      { url: config.target?.url, name: 'v2-postgres' },
    ];
    for (const { url, name } of cases) {
      expect(url).toBeDefined();
      const u = new URL(url!);
      const env = environment(service(name));
      expect(u.hostname).toBe(name);
      expect(Number(u.port)).toBe(POSTGRES_PORT);
      expect(decodeURIComponent(u.username)).toBe(env.POSTGRES_USER);
      expect(decodeURIComponent(u.password)).toBe(env.POSTGRES_PASSWORD);
      expect(u.pathname).toBe(`/${env.POSTGRES_DB}`);
      expect(env.PGPORT ?? String(POSTGRES_PORT)).toBe(String(POSTGRES_PORT));
    }
  });

  it('points the replicator at the broker listener advertised to containers', () => {
    const kafkaEnv = environment(service('kafka'));
    const advertised = kafkaListeners(kafkaEnv.KAFKA_ADVERTISED_LISTENERS);
    const bound = kafkaListeners(kafkaEnv.KAFKA_LISTENERS);
    expect(config.kafka.brokers.length).toBeGreaterThan(0);
    for (const broker of config.kafka.brokers) {
      const { host, port } = hostPort(broker);
      expect(host).toBe('kafka');
      expect(port).toBe(KAFKA_PORT);
      // The broker must hand back the same address in metadata, and actually listen on that port.
      const listener = advertised.find((l) => l.host === host && l.port === port);
      expect(listener, `an advertised listener ${broker}`).toBeDefined();
      expect(bound).toContainEqual(expect.objectContaining({ name: listener?.name, port }));
    }
  });

  it('points the registry at the broker, where an opted-in replicator finds it', () => {
    const { host, port } = hostPort(avroConfig.schemaRegistry?.url ?? '');
    expect(host).toBe('schema-registry');
    expect(port).toBe(SCHEMA_REGISTRY_PORT);
    const registryEnv = environment(service('schema-registry'));
    expect(hostPort(registryEnv.SCHEMA_REGISTRY_LISTENERS ?? '').port).toBe(SCHEMA_REGISTRY_PORT);
    expect(hostPort(registryEnv.SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS ?? '')).toEqual({
      host: 'kafka',
      port: KAFKA_PORT,
    });
  });

  it('serves metrics on the default port, on an address Prometheus can reach, where Prometheus scrapes', () => {
    const defaults = parseConfig({ source: { url: 'postgres://x/y', tables: ['public.x'] } }, {});
    expect(defaults.metrics.port).toBe(METRICS_DEFAULT_PORT);
    expect(config.metrics.port).toBe(defaults.metrics.port);
    // The default 127.0.0.1 would be unreachable from the Prometheus container.
    expect(config.metrics.host).toBe('0.0.0.0');

    const prometheus = z
      .looseObject({
        scrape_configs: z.array(
          z.looseObject({ static_configs: z.array(z.looseObject({ targets: z.array(z.string()) })) }),
        ),
      })
      .parse(parseYaml(read('observability/prometheus/prometheus.yml')));
    const targets = prometheus.scrape_configs.flatMap((c) => c.static_configs.flatMap((s) => s.targets));
    expect(targets).toContain(`replicator:${config.metrics.port}`);
    // The slots watched from PostgreSQL: the exporter's service, on the port its healthcheck asks.
    expect(targets).toContain('postgres-exporter:9187');
    expect(argv(service('postgres-exporter').healthcheck?.test).join(' ')).toContain(':9187/');
    expect(service('postgres-exporter').environment).toMatchObject({
      DATA_SOURCE_NAME: expect.stringContaining('@legacy-postgres:5432/legacy'),
    });

    const mounts = (service('prometheus').volumes ?? []).map((v) => (typeof v === 'string' ? v : v.source));
    expect(mounts.some((m) => m.startsWith('./observability/prometheus/prometheus.yml:'))).toBe(true);
    expect(argv(service('replicator').healthcheck?.test).join(' ')).toContain(`:${config.metrics.port}/`);
  });

  it('provisions Grafana with the Prometheus service as its data source', () => {
    const provisioning = z
      .looseObject({ datasources: z.array(z.looseObject({ type: z.string(), url: z.string() })) })
      .parse(parseYaml(read('observability/grafana/provisioning/datasources/prometheus.yml')));
    expect(provisioning.datasources).toContainEqual(
      expect.objectContaining({ type: 'prometheus', url: 'http://prometheus:9090' }),
    );
  });

  it('provisions the replicator dashboard into Grafana from the mounted dashboards folder', () => {
    const provider = z
      .looseObject({
        providers: z.array(z.looseObject({ type: z.string(), options: z.looseObject({ path: z.string() }) })),
      })
      .parse(parseYaml(read('observability/grafana/provisioning/dashboards/replicator.yml')));
    const volumes = (service('grafana').volumes ?? []).map((v) =>
      typeof v === 'string' ? { source: v.split(':')[0]!, target: v.split(':')[1]! } : v,
    );
    for (const p of provider.providers) {
      expect(p.type).toBe('file');
      const mount = volumes.find((v) => v.target === p.options.path);
      expect(mount, `a volume mounted at ${p.options.path}`).toBeDefined();
      const folder = new URL(`../${mount!.source.replace(/^\.\//, '')}/`, import.meta.url);
      const dashboards = readdirSync(folder).filter((f) => f.endsWith('.json'));
      expect(dashboards).toContain('replicator.json');
      for (const f of dashboards) {
        const dashboard = z
          .looseObject({ uid: z.string(), title: z.string(), panels: z.array(z.looseObject({})).min(1) })
          .parse(JSON.parse(readFileSync(new URL(f, folder), 'utf8')));
        expect(dashboard.uid.length).toBeGreaterThan(0);
      }
    }
  });

  it('mounts every rule file prometheus.yml loads, where it looks for it', () => {
    const config = z
      .looseObject({ rule_files: z.array(z.string()).min(1) })
      .parse(parseYaml(read('observability/prometheus/prometheus.yml')));
    const volumes = (service('prometheus').volumes ?? []).map((v) =>
      typeof v === 'string' ? { source: v.split(':')[0]!, target: v.split(':')[1]! } : v,
    );
    const configMount = volumes.find((v) => v.source === './observability/prometheus/prometheus.yml');
    expect(configMount).toBeDefined();
    expect(config.rule_files).toContain('alerts.yml');
    for (const file of config.rule_files) {
      const target = posix.resolve(posix.dirname(configMount!.target), file);
      const mount = volumes.find((v) => v.target === target);
      expect(mount, `a volume mounted at ${target}`).toBeDefined();
      expect(existsSync(new URL(`../${mount!.source.replace(/^\.\//, '')}`, import.meta.url))).toBe(true);
    }
  });

  it('mounts the example config (or REPLICATOR_CONFIG) where the image and the init service look for it', () => {
    const cmd = /^CMD\s+(\[.*\])\s*$/m.exec(read('Dockerfile'))?.[1];
    const args = z.array(z.string()).parse(JSON.parse(cmd ?? 'null'));
    expect(argv(service('replicator').command)).toEqual(args);
    const configPath = args[args.indexOf('--config') + 1]!;
    for (const name of ['replicator', INIT_SERVICE]) {
      const mount = (service(name).volumes ?? []).find((v) =>
        typeof v === 'string' ? v.split(':')[1] === configPath : v.target === configPath,
      );
      expect(mount, name).toBeDefined();
      const source = typeof mount === 'string' ? mount.split(':')[0]! : mount!.source;
      const file = /^\$\{REPLICATOR_CONFIG:-\.\/(.+)\}$/.exec(source)?.[1];
      expect(file, source).toBe('replicator.config.example.yaml');
      // It parses with the connection settings compose hands the replicator.
      const parsed = parseConfig(parseYaml(read(file!)), replicatorEnv);
      expect(parsed.source.tables.length).toBeGreaterThan(0);
    }
    expect(argv(service(INIT_SERVICE).command).join(' ')).toContain(`--config ${configPath}`);
  });

  it('runs the legacy database with logical decoding and room for the replicator’s slots', () => {
    const settings = postgresSettings(service('legacy-postgres'));
    expect(settings.wal_level).toBe('logical');
    expect(Number(settings.max_replication_slots)).toBeGreaterThanOrEqual(16);
    expect(Number(settings.max_wal_senders)).toBeGreaterThanOrEqual(16);
  });
});
