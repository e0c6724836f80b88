/** `skiff run -c PATH [--mode standalone|sidecar|gateway]`: the proxy, until SIGINT or SIGTERM. */
import { SkiffError } from '../core/errors.js';
import { createLogger, type LogLevel } from '../core/logger.js';
import { Proxy } from '../lifecycle/proxy.js';
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
  'log-level': { type: 'string' },
  'drain-time-s': { type: 'string' },
  certs: { type: 'string' },
} as const;

/** How long a shutdown waits for busy connections (Istio's terminationDrainDuration default). */
export const DEFAULT_DRAIN_SECONDS = 5;

export async function runCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, RUN_OPTIONS);
  if (values.config === undefined) throw new SkiffError('USAGE', 'run needs --config <file|dir>');
  if (values.xds !== undefined) throw new SkiffError('USAGE', '--xds is not supported yet: configure skiff with Istio YAML (--config)');
  const mode = values.mode ?? 'standalone';
  if (mode !== 'standalone' && mode !== 'sidecar' && mode !== 'gateway') {
    throw new SkiffError('USAGE', `unknown --mode ${mode} (standalone, sidecar or gateway)`);
  }
  const level = (values['log-level'] ?? 'info') as LogLevel;
  if (!['debug', 'info', 'warn', 'error', 'off'].includes(level)) throw new SkiffError('USAGE', `unknown --log-level ${level}`);
  const drainSeconds = secondsFlag(values['drain-time-s'], 'drain-time-s') ?? DEFAULT_DRAIN_SECONDS;
  const log = createLogger({ level });
  if (values['stats-port'] !== undefined) {
    portFlag(values['stats-port'], 'stats-port');
    log.warn('--stats-port is accepted but that listener is not implemented yet');
  }
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
  // Listen for signals (and a status-port quit) before starting, so one during startup shuts down cleanly too.
  let quit: () => void = () => undefined;
  const quitRequested = new Promise<'quit'>((resolve) => (quit = () => resolve('quit')));
  const stopped = Promise.race([untilSignal().then(() => 'signal' as const), quitRequested]);
  const proxy = await Proxy.start({
    configPath: values.config,
    mode,
    ...(values.certs !== undefined ? { certificatesDir: values.certs } : {}),
    logger: log,
    onQuit: () => quit(),
    ports: {
      outbound: portFlag(values['outbound-port'], 'outbound-port'),
      inbound: portFlag(values['inbound-port'], 'inbound-port'),
      status: portFlag(values['status-port'], 'status-port'),
      admin: portFlag(values['admin-port'], 'admin-port'),
      readiness: portFlag(values['readiness-port'], 'readiness-port'),
    },
  });
  if ((await stopped) === 'quit') {
    // pilot-agent's /quitquitquit: the workload is done (a Job), nothing is left to drain.
    log.info('quit requested on the status port: exiting');
    await proxy.shutdown(0);
    return 0;
  }
  log.info(`shutting down (draining for up to ${drainSeconds}s)`);
  await proxy.shutdown(drainSeconds * 1000);
  return 0;
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
