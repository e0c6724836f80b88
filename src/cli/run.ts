/**
 * `skiff run -c PATH [--mode standalone|sidecar|gateway]` or `skiff run --xds HOST:PORT`: the
 * proxy, until SIGINT or SIGTERM. With --xds the routes, clusters and listeners come from the
 * control plane, and --config (optional) gives only the MeshConfig.
 */
import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import { SkiffError } from '../core/errors.js';
import { createLogger, isLogLevel, type Logger } from '../core/logger.js';
import { loadConfigIsolated } from '../config/isolated-load.js';
import { statusOptionsFromEnv } from '../lifecycle/environment.js';
import { ConfigInvalidError, Proxy, type ProxyMode } from '../lifecycle/proxy.js';
import { connectToPrimary, Primary, requestQuit } from '../lifecycle/workers.js';
import { DEFAULT_MESH, type MeshSettings } from '../model/index.js';
import { existsSync } from 'node:fs';
import type { ControlPlaneAuth } from '../lifecycle/xds.js';
import { DEFAULT_CERT_DIRS } from '../security/cert-store.js';
import { parse, portFlag, secondsFlag } from './args.js';

export const RUN_OPTIONS = {
  config: { type: 'string', short: 'c' },
  'outbound-port': { type: 'string' },
  'inbound-port': { type: 'string' },
  'admin-port': { type: 'string' },
  'status-port': { type: 'string' },
  'readiness-port': { type: 'string' },
  'stats-port': { type: 'string' },
  mode: { type: 'string' },
  xds: { type: 'string' },
  'xds-auth': { type: 'string' },
  'xds-service-cluster': { type: 'string' },
  'xds-domain': { type: 'string' },
  'xds-token': { type: 'string' },
  'xds-root-cert': { type: 'string' },
  'xds-server-name': { type: 'string' },
  'log-level': { type: 'string' },
  'log-as-json': { type: 'boolean' },
  'drain-time-s': { type: 'string' },
  concurrency: { type: 'string' },
  certs: { type: 'string' },
} as const;

/** How long a shutdown keeps serving outbound (Istio's terminationDrainDuration default). */
export const DEFAULT_DRAIN_SECONDS = 5;

type RunValues = ReturnType<typeof parse<typeof RUN_OPTIONS>>['values'];

/** Adjusts the mesh settings after they are read (`skiff proxy sidecar`'s pilot-agent flags). */
export type MeshOverride = (mesh: MeshSettings) => MeshSettings;

export async function runCommand(argv: string[], meshOverride: MeshOverride = (m) => m): Promise<number> {
  const { values } = parse(argv, RUN_OPTIONS);
  if (values.config === undefined && values.xds === undefined) throw new SkiffError('USAGE', 'run needs --config <file|dir> or --xds <host:port>');
  const mode = values.mode ?? 'standalone';
  if (mode !== 'standalone' && mode !== 'sidecar' && mode !== 'gateway') {
    throw new SkiffError('USAGE', `unknown --mode ${mode} (standalone, sidecar or gateway)`);
  }
  if (values.xds !== undefined && mode === 'gateway') throw new SkiffError('USAGE', '--xds configures sidecars (and the standalone proxy); a gateway takes Istio YAML');
  const auth = values['xds-auth'];
  if (auth !== undefined && auth !== 'NONE' && auth !== 'MUTUAL_TLS') throw new SkiffError('USAGE', `--xds-auth must be NONE or MUTUAL_TLS, got "${auth}"`);
  const level = values['log-level'] ?? 'info';
  if (!isLogLevel(level)) throw new SkiffError('USAGE', `unknown --log-level ${level}`);
  const concurrency = concurrencyFlag(values.concurrency);
  const log = createLogger({ level, format: values['log-as-json'] === true ? 'json' : 'text', ...(cluster.isWorker ? { scope: `skiff[${process.pid}]` } : {}) });
  if (cluster.isPrimary) warnInapplicableFlags(values, mode, log);
  let status: ReturnType<typeof statusOptionsFromEnv>;
  try {
    status = statusOptionsFromEnv(process.env);
  } catch (err) {
    throw new SkiffError('USAGE', (err as Error).message);
  }
  if (concurrency > 1 && cluster.isPrimary) return runPrimary(values, meshOverride, mode, concurrency, status, log);
  return runProxy(values, meshOverride, mode, concurrency, status, log);
}

/** One proxy process: the whole proxy (`--concurrency 1`), or one worker of several. */
async function runProxy(values: RunValues, meshOverride: MeshOverride, mode: ProxyMode, concurrency: number, status: ReturnType<typeof statusOptionsFromEnv>, log: Logger): Promise<number> {
  const worker = cluster.isWorker;
  // Listen for signals (and a quit, or a shutdown from the primary) before starting, so one
  // during startup shuts down cleanly too.
  let stop: (how: 'quit' | 'signal') => void = () => undefined;
  const stopped = new Promise<'quit' | 'signal'>((resolve) => (stop = resolve));
  void untilSignal().then(() => stop('signal'));
  const primary = worker ? connectToPrimary((immediate) => stop(immediate ? 'quit' : 'signal')) : null;
  let proxy: Proxy;
  try {
    proxy = await startProxy(values, meshOverride, mode, concurrency, status, log, worker ? requestQuit : () => stop('quit'));
  } catch (err) {
    // A worker that cannot start must exit (its channel to the primary would keep it alive).
    if (worker && process.connected) process.disconnect();
    throw err;
  }
  primary?.ready(proxy);
  const mesh = proxy.snapshot.mesh;
  const drainSeconds = secondsFlag(values['drain-time-s'], 'drain-time-s');
  // --drain-time-s overrides MeshConfig's terminationDrainDuration; drainDuration caps the drain.
  const timing = { terminationDrainMs: drainSeconds !== undefined ? drainSeconds * 1000 : mesh.terminationDrainDurationMs, drainMs: mesh.drainDurationMs };
  if ((await stopped) === 'quit') {
    // pilot-agent's /quitquitquit: the workload is done (a Job), nothing is left to drain.
    log.info('quit requested: exiting');
    await proxy.shutdown({ terminationDrainMs: 0, drainMs: 0 });
    if (worker && process.connected) process.disconnect();
    return 0;
  }
  log.info(
    mode === 'standalone'
      ? `shutting down (draining for up to ${timing.terminationDrainMs / 1000}s)`
      : `shutting down (serving outbound for ${timing.terminationDrainMs / 1000}s, closing by ${timing.drainMs / 1000}s)`,
  );
  await proxy.shutdown(timing);
  // A worker's IPC channel would keep it alive.
  if (worker && process.connected) process.disconnect();
  return 0;
}

async function startProxy(values: RunValues, meshOverride: MeshOverride, mode: ProxyMode, concurrency: number, status: ReturnType<typeof statusOptionsFromEnv>, log: Logger, onQuit: () => void): Promise<Proxy> {
  const xds = values.xds;
  // Certificate files: --certs, else the first of Istio's mount points that has them.
  const certificatesDir = values.certs ?? DEFAULT_CERT_DIRS.find((d) => existsSync(d));
  // gRPC and the protobuf schemas load only when xDS is used.
  const xdsParts =
    xds === undefined
      ? undefined
      : (await import('../lifecycle/xds.js')).openXdsSource({
          address: xds,
          ...(values['xds-auth'] !== undefined ? { auth: values['xds-auth'] as ControlPlaneAuth } : {}),
          ...(certificatesDir !== undefined ? { certificatesDir } : {}),
          ...(values['xds-token'] !== undefined ? { tokenPath: values['xds-token'] } : {}),
          ...(values['xds-root-cert'] !== undefined ? { rootCertPath: values['xds-root-cert'] } : {}),
          ...(values['xds-server-name'] !== undefined ? { serverName: values['xds-server-name'] } : {}),
          type: 'sidecar',
          ...(values['xds-service-cluster'] !== undefined ? { serviceCluster: values['xds-service-cluster'] } : {}),
          ...(values['xds-domain'] !== undefined ? { domain: values['xds-domain'] } : {}),
          mesh: await meshSettings(values, meshOverride),
          env: process.env,
          log,
        });
  return Proxy.start({
    configPath: xds === undefined ? values.config! : `xds:${xds}`,
    ...(xdsParts !== undefined ? { source: xdsParts.source } : {}),
    ...(xdsParts?.credentials !== undefined ? { credentials: xdsParts.credentials } : {}),
    mode,
    ...(values.certs !== undefined ? { certificatesDir: values.certs } : {}),
    logger: log,
    onQuit,
    serveAdmin: !cluster.isWorker,
    concurrency,
    status,
    ports: {
      outbound: portFlag(values['outbound-port'], 'outbound-port'),
      inbound: portFlag(values['inbound-port'], 'inbound-port'),
      status: portFlag(values['status-port'], 'status-port'),
      admin: portFlag(values['admin-port'], 'admin-port'),
      readiness: portFlag(values['readiness-port'], 'readiness-port'),
      stats: portFlag(values['stats-port'], 'stats-port'),
    },
  });
}

/** The primary of `--concurrency N`: forks the workers and serves the admin-side ports. */
async function runPrimary(values: RunValues, meshOverride: MeshOverride, mode: ProxyMode, concurrency: number, status: ReturnType<typeof statusOptionsFromEnv>, log: Logger): Promise<number> {
  // The config is checked once here, so a broken one fails before any worker starts, and its
  // MeshConfig gives the ports the primary serves.
  const mesh = await meshSettings(values, meshOverride);
  const ports = mesh.ports;
  const flag = (name: 'admin-port' | 'readiness-port' | 'status-port' | 'stats-port', fallback: number): number => portFlag(values[name], name) ?? fallback;
  let quit: () => void = () => undefined;
  const quitRequested = new Promise<'quit'>((resolve) => (quit = () => resolve('quit')));
  const stopped = Promise.race([untilSignal().then(() => 'signal' as const), quitRequested]);
  const primary = new Primary({
    concurrency,
    mode,
    ports: { admin: flag('admin-port', ports.admin), readiness: flag('readiness-port', ports.readiness), status: flag('status-port', ports.status), stats: flag('stats-port', ports.stats) },
    serveStats: mode !== 'standalone' || values['stats-port'] !== undefined,
    status,
    log,
    // Each worker closes what is left at drainDuration; one still running 5s later is stuck.
    killAfterMs: mesh.drainDurationMs + 5_000,
    onQuit: () => quit(),
  });
  await primary.start();
  await Promise.race([primary.allReady, stopped]);
  const w = primary.workerPorts;
  const p = primary.ports;
  if (w !== null) {
    log.info(
      `ready: ${concurrency} workers, ` +
        (mode === 'gateway' ? `gateway ports ${w.gateway.join(', ') || '(none yet)'}` : `outbound :${w.outbound}` + (mode === 'sidecar' ? `, inbound :${w.inbound}` : '')) +
        `, admin 127.0.0.1:${p.admin}, readiness :${p.readiness}` +
        (p.status !== 0 ? `, status :${p.status}` : '') +
        (p.stats !== 0 ? `, stats :${p.stats}` : ''),
    );
  }
  const how = await stopped;
  log.info(how === 'quit' ? 'quit requested: stopping the workers' : 'shutting down: draining the workers');
  await primary.shutdown(how === 'quit');
  return 0;
}

/**
 * The mesh settings: those of --config (whose other resources xDS replaces), else defaults.
 * Throws ConfigInvalidError for a broken config.
 */
async function meshSettings(values: RunValues, meshOverride: MeshOverride): Promise<MeshSettings> {
  if (values.config === undefined) return meshOverride(DEFAULT_MESH);
  const loaded = await loadConfigIsolated(values.config);
  if (loaded.model === undefined) throw new ConfigInvalidError(loaded.diagnostics);
  return meshOverride(loaded.model.mesh);
}



/** --concurrency: worker processes; 0 means one per core (Envoy's meaning). */
function concurrencyFlag(value: string | undefined): number {
  if (value === undefined) return 1;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 256) throw new SkiffError('USAGE', `--concurrency must be a whole number 0-256 (0: one per core), got "${value}"`);
  return n === 0 ? availableParallelism() : n;
}

function warnInapplicableFlags(values: RunValues, mode: ProxyMode, log: Logger): void {
  if (mode === 'standalone') {
    for (const flag of ['inbound-port', 'status-port'] as const) {
      if (values[flag] !== undefined) log.warn(`--${flag} applies in sidecar mode only (--mode sidecar)`);
    }
  }
  if (mode === 'gateway') {
    for (const flag of ['outbound-port', 'inbound-port'] as const) {
      if (values[flag] !== undefined) log.warn(`--${flag} does not apply in gateway mode: a gateway listens on its Gateway servers' ports`);
    }
  }
}

/** Resolves on the first SIGINT or SIGTERM. */
export function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      resolve();
    };
    process.on('SIGINT', done);
    process.on('SIGTERM', done);
  });
}
