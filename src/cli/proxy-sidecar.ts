/**
 * `skiff proxy sidecar …`: pilot-agent's command line, so an Istio injection template can run
 * skiff in istio-proxy's place. The flags map onto `skiff run --xds … --mode sidecar`:
 *
 *   --discoveryAddress        the control plane (else PROXY_CONFIG's discoveryAddress, else
 *                             istiod.istio-system.svc:15012)
 *   --controlPlaneAuthPolicy  MUTUAL_TLS or NONE (else by port: mTLS on 15012)
 *   --serviceCluster          the node's cluster
 *   --domain                  the node id's domain (<namespace>.svc.cluster.local)
 *   --proxyAdminPort, --statusPort, --concurrency
 *   --drainDuration, --parentShutdownDuration  (parentShutdown caps the drain, as in Envoy)
 *   --zipkinAddress           spans go to http://ADDRESS/api/v2/spans
 *   --dnsRefreshRate, --connectTimeout
 * The injected environment is read as pilot-agent reads it: PROXY_CONFIG, TRUST_DOMAIN, CA_ADDR,
 * POD_NAME, POD_NAMESPACE, INSTANCE_IP, SERVICE_ACCOUNT and the ISTIO_META_* variables.
 * --configPath, --binaryPath and --applicationPorts describe istio-proxy's own files and ports,
 * which skiff does not need: they and any flag not listed are accepted and logged. Flags are
 * `--name value` or `--name=value`, as Go's flag package reads them.
 */
import { parseDuration } from '../core/duration.js';
import { SkiffError } from '../core/errors.js';
import { createLogger } from '../core/logger.js';
import type { MeshSettings } from '../model/index.js';
import { runCommand } from './run.js';

const DEFAULT_DISCOVERY = 'istiod.istio-system.svc:15012';

/** Flags whose value skiff uses. */
const USED = new Set([
  'discoveryAddress', 'controlPlaneAuthPolicy', 'serviceCluster', 'domain', 'proxyAdminPort', 'statusPort', 'concurrency',
  'drainDuration', 'parentShutdownDuration', 'zipkinAddress', 'dnsRefreshRate', 'connectTimeout', 'proxyLogLevel',
]);
/** pilot-agent flags that take no value. */
const BOOLEAN_FLAGS = new Set(['help', 'disableInternalTelemetry', 'templateFile']);

export async function proxyCommand(argv: string[]): Promise<number> {
  const [role, ...rest] = argv;
  if (role !== 'sidecar') throw new SkiffError('USAGE', `skiff proxy supports the sidecar role only, got "${role ?? ''}"`);
  const flags = parseGoFlags(rest);
  const log = createLogger();
  for (const [name, value] of flags) if (!USED.has(name)) log.info(`pilot-agent flag --${name}${value === '' ? '' : `=${value}`} accepted: skiff does not need it`);
  const proxyConfig = readProxyConfig(process.env['PROXY_CONFIG']);
  const get = (name: string): string | undefined => flags.get(name);
  const runArgs = ['--mode', 'sidecar', '--xds', get('discoveryAddress') ?? proxyConfig.discoveryAddress ?? DEFAULT_DISCOVERY];
  const push = (flag: string, value: string | undefined): void => void (value !== undefined && runArgs.push(flag, value));
  push('--xds-auth', get('controlPlaneAuthPolicy'));
  push('--admin-port', get('proxyAdminPort'));
  push('--status-port', get('statusPort') ?? proxyConfig.statusPort);
  push('--concurrency', get('concurrency') ?? proxyConfig.concurrency);
  push('--log-level', logLevel(get('proxyLogLevel')));
  push('--xds-service-cluster', get('serviceCluster'));
  push('--xds-domain', get('domain'));
  const durations = {
    drain: goDurationMs(get('parentShutdownDuration') ?? get('drainDuration') ?? proxyConfig.drainDuration, 'drainDuration'),
    terminationDrain: goDurationMs(proxyConfig.terminationDrainDuration, 'PROXY_CONFIG.terminationDrainDuration'),
    connect: goDurationMs(get('connectTimeout'), 'connectTimeout'),
    dnsRefresh: goDurationMs(get('dnsRefreshRate'), 'dnsRefreshRate'),
  };
  const zipkin = get('zipkinAddress') ?? proxyConfig.zipkinAddress;
  const trustDomain = process.env['TRUST_DOMAIN'];
  const override = (mesh: MeshSettings): MeshSettings => ({
    ...mesh,
    ...(trustDomain !== undefined && trustDomain !== '' ? { trustDomain } : {}),
    ...(durations.drain !== undefined ? { drainDurationMs: durations.drain } : {}),
    ...(durations.terminationDrain !== undefined ? { terminationDrainDurationMs: durations.terminationDrain } : {}),
    ...(durations.connect !== undefined ? { connectTimeoutMs: durations.connect } : {}),
    ...(durations.dnsRefresh !== undefined ? { dnsRefreshRateMs: durations.dnsRefresh } : {}),
    ...(zipkin !== undefined && zipkin !== '' ? { tracing: { ...mesh.tracing, exporter: { kind: 'zipkin', url: `http://${zipkin}/api/v2/spans` } } } : {}),
  });
  return runCommand(runArgs, override);
}

/** Go flag syntax: `-name value`, `--name value`, `--name=value`; booleans take no value. */
export function parseGoFlags(argv: readonly string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const m = /^--?([A-Za-z][\w.-]*)(?:=(.*))?$/s.exec(arg);
    if (m === null) throw new SkiffError('USAGE', `unexpected argument "${arg}"`);
    const name = m[1]!;
    if (m[2] !== undefined) flags.set(name, m[2]);
    else if (BOOLEAN_FLAGS.has(name) || i + 1 >= argv.length || argv[i + 1]!.startsWith('-')) flags.set(name, '');
    else flags.set(name, argv[++i]!);
  }
  return flags;
}

/** Go durations as pilot-agent takes them: "45s", "1m30s", "500ms", "2h". */
export function goDurationMs(value: string | undefined, name: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  const d = parseDuration(value);
  if ('error' in d) throw new SkiffError('USAGE', `--${name}: ${d.error}`);
  return d.ms;
}

/** Envoy log levels as pilot-agent passes them → skiff's. */
function logLevel(level: string | undefined): string | undefined {
  switch (level) {
    case undefined:
      return undefined;
    case 'trace':
    case 'debug':
      return 'debug';
    case 'info':
      return 'info';
    case 'warning':
    case 'warn':
      return 'warn';
    default:
      return 'error';
  }
}

interface ProxyConfigFields {
  readonly discoveryAddress?: string;
  readonly statusPort?: string;
  readonly concurrency?: string;
  readonly drainDuration?: string;
  readonly terminationDrainDuration?: string;
  readonly zipkinAddress?: string;
}

/** The injected PROXY_CONFIG (Istio's ProxyConfig as JSON): the fields skiff uses. */
function readProxyConfig(raw: string | undefined): ProxyConfigFields {
  if (raw === undefined || raw.trim() === '') return {};
  let pc: Record<string, unknown>;
  try {
    pc = JSON.parse(raw) as Record<string, unknown>;
  } catch (err) {
    throw new SkiffError('USAGE', `PROXY_CONFIG: not JSON (${(err as Error).message})`);
  }
  const str = (v: unknown): string | undefined => (typeof v === 'string' || typeof v === 'number' ? String(v) : undefined);
  const tracing = pc['tracing'] as { zipkin?: { address?: unknown } } | undefined;
  return {
    ...(str(pc['discoveryAddress']) !== undefined ? { discoveryAddress: str(pc['discoveryAddress'])! } : {}),
    ...(str(pc['statusPort']) !== undefined ? { statusPort: str(pc['statusPort'])! } : {}),
    ...(str(pc['concurrency']) !== undefined ? { concurrency: str(pc['concurrency'])! } : {}),
    ...(str(pc['drainDuration']) !== undefined ? { drainDuration: str(pc['drainDuration'])! } : {}),
    ...(str(pc['terminationDrainDuration']) !== undefined ? { terminationDrainDuration: str(pc['terminationDrainDuration'])! } : {}),
    ...(str(tracing?.zipkin?.address) !== undefined ? { zipkinAddress: str(tracing?.zipkin?.address)! } : {}),
  };
}
