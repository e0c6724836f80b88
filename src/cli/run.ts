/** `skiff run -c PATH`: the standalone proxy, until SIGINT or SIGTERM. */
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
} as const;

/** How long a shutdown waits for busy connections (Istio's terminationDrainDuration default). */
export const DEFAULT_DRAIN_SECONDS = 5;

export async function runCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, RUN_OPTIONS);
  if (values.config === undefined) throw new SkiffError('USAGE', 'run needs --config <file|dir>');
  if (values.xds !== undefined) throw new SkiffError('USAGE', '--xds is not supported yet: configure skiff with Istio YAML (--config)');
  if (values.mode !== undefined && values.mode !== 'sidecar') {
    throw new SkiffError('USAGE', `--mode ${values.mode} is not supported yet (only sidecar)`);
  }
  const level = (values['log-level'] ?? 'info') as LogLevel;
  if (!['debug', 'info', 'warn', 'error', 'off'].includes(level)) throw new SkiffError('USAGE', `unknown --log-level ${level}`);
  const drainSeconds = secondsFlag(values['drain-time-s'], 'drain-time-s') ?? DEFAULT_DRAIN_SECONDS;
  const log = createLogger({ level });
  for (const flag of ['inbound-port', 'status-port', 'stats-port'] as const) {
    if (values[flag] !== undefined) {
      portFlag(values[flag], flag);
      log.warn(`--${flag} is accepted but that listener is not implemented yet`);
    }
  }
  // Listen for signals before starting, so a signal during startup shuts down cleanly too.
  const stopped = untilSignal();
  const proxy = await Proxy.start({
    configPath: values.config,
    logger: log,
    ports: {
      outbound: portFlag(values['outbound-port'], 'outbound-port'),
      admin: portFlag(values['admin-port'], 'admin-port'),
      readiness: portFlag(values['readiness-port'], 'readiness-port'),
    },
  });
  await stopped;
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
