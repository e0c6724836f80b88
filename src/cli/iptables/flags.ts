/**
 * `skiff iptables` flags: istio-iptables' short and long flags and environment variables,
 * parsed into a typed config with Istio's defaults. Where istio-iptables silently ignores a bad
 * value (an unparsable CIDR, an unknown mode), skiff rejects it with a USAGE error naming the flag.
 */
import { SocketAddress } from 'node:net';
import { SkiffError } from '../../core/errors.js';
import { parse } from '../args.js';

export type InterceptionMode = 'REDIRECT' | 'TPROXY';
export type IpFamily = 4 | 6;

/** A CIDR in canonical text (IPv6 compressed, lower case), as istio-iptables prints it. */
export interface Cidr {
  readonly text: string;
  readonly family: IpFamily;
  /** The address part is a loopback address (127.0.0.0/8 or ::1), as Go's netip.Addr.IsLoopback. */
  readonly loopback: boolean;
}

/** `*` captures everything; a list (possibly empty, meaning nothing) captures only what it names. */
export type Selection<T> = '*' | readonly T[];

export interface IptablesConfig {
  /** -p: outbound capture port. */
  readonly proxyPort: number;
  /** -z: inbound capture port. */
  readonly inboundCapturePort: number;
  /** -e: HBONE tunnel port, never captured inbound. */
  readonly inboundTunnelPort: number;
  /** -u: uids whose traffic is never redirected (the proxy's). */
  readonly proxyUids: readonly string[];
  /** -g: gids whose traffic is never redirected; defaults to the -u values. */
  readonly proxyGids: readonly string[];
  /** -m: how inbound traffic is captured. */
  readonly mode: InterceptionMode;
  /** -b: inbound ports to capture (ports or `a:b` ranges). Empty: no inbound capture. */
  readonly inboundPorts: Selection<string>;
  /** -d: inbound ports left alone; only used when inboundPorts is `*`. */
  readonly inboundPortsExclude: readonly string[];
  /** -i: outbound destinations to capture. Empty: no outbound capture by address. */
  readonly outboundCidrs: Selection<Cidr>;
  /** -x: outbound destinations left alone. */
  readonly outboundCidrsExclude: readonly Cidr[];
  /** -q: outbound TCP ports always captured, whatever the destination. */
  readonly outboundPorts: readonly string[];
  /** -o: outbound ports (TCP and UDP) never captured. */
  readonly outboundPortsExclude: readonly string[];
  /** -c: interfaces whose traffic is never captured, in either direction. */
  readonly excludeInterfaces: readonly string[];
  /** -k: interfaces whose inbound traffic is treated as outbound (VMs, KubeVirt). */
  readonly kubeVirtInterfaces: readonly string[];
  /** -t: TPROXY packet mark (decimal or 0x hex). */
  readonly tproxyMark: string;
  /** -r: TPROXY policy-routing table. */
  readonly tproxyRouteTable: string;
  /** --dual-stack: install IPv6 rules whenever the pod has an IPv6 address, not only when its first address is IPv6. */
  readonly dualStack: boolean;
  /** -n, --dry-run: print what would be done and change nothing. */
  readonly dryRun: boolean;
  /** --clean: remove skiff's (and Istio's) rules instead of installing them. */
  readonly clean: boolean;
}

/** Istio's defaults (tools/common/config DefaultConfig, cmd/root.go bindings). */
export const ISTIO_DEFAULTS = {
  proxyPort: 15001,
  inboundCapturePort: 15006,
  inboundTunnelPort: 15008,
  /** When -u is unset istio-iptables uses the uid of ENVOY_USER (istio-proxy) or else 1337; skiff uses 1337. */
  proxyUid: '1337',
  tproxyMark: '1337',
  tproxyRouteTable: '133',
} as const;

/** Every flag `skiff iptables` takes: istio-iptables' long and short names, plus skiff's `--clean`. */
export const IPTABLES_OPTIONS = {
  'envoy-port': { type: 'string', short: 'p' },
  'inbound-capture-port': { type: 'string', short: 'z' },
  'inbound-tunnel-port': { type: 'string', short: 'e' },
  'proxy-uid': { type: 'string', short: 'u' },
  'proxy-gid': { type: 'string', short: 'g' },
  'istio-inbound-interception-mode': { type: 'string', short: 'm' },
  'istio-inbound-ports': { type: 'string', short: 'b' },
  'istio-local-exclude-ports': { type: 'string', short: 'd' },
  'istio-service-cidr': { type: 'string', short: 'i' },
  'istio-service-exclude-cidr': { type: 'string', short: 'x' },
  'istio-outbound-ports': { type: 'string', short: 'q' },
  'istio-local-outbound-ports-exclude': { type: 'string', short: 'o' },
  'istio-exclude-interfaces': { type: 'string', short: 'c' },
  'kube-virt-interfaces': { type: 'string', short: 'k' },
  'istio-inbound-tproxy-mark': { type: 'string', short: 't' },
  'istio-inbound-tproxy-route-table': { type: 'string', short: 'r' },
  'dual-stack': { type: 'boolean' },
  'dry-run': { type: 'boolean', short: 'n' },
  clean: { type: 'boolean' },
  'cleanup-only': { type: 'boolean' },
  // Accepted and ignored: recent injection templates pass pilot-agent's logging flag.
  log_output_level: { type: 'string' },
} as const;

type ValueFlag = {
  [K in keyof typeof IPTABLES_OPTIONS]: (typeof IPTABLES_OPTIONS)[K]['type'] extends 'string' ? K : never;
}[keyof typeof IPTABLES_OPTIONS];

/** istio-iptables flags skiff does not implement; named so the error says so instead of "unknown option". */
const UNSUPPORTED = new Set([
  'redirect-dns', 'capture-all-dns', 'drop-invalid', 'run-validation', 'skip-rule-apply', 'iptables-probe-port',
  'probe-timeout', 'network-namespace', 'cni-mode', 'reconcile', 'force-apply', 'iptables-trace-logging',
  'restore-format', 'native-nftables', 'host-nsenter-exec',
]);

/**
 * Parses istio-iptables arguments. `env` supplies values for flags that are not given, under the
 * names istio-iptables reads (its viper keys upper-cased, `-` → `_`: ENVOY_PORT, PROXY_UID,
 * ISTIO_INBOUND_PORTS, ISTIO_SERVICE_CIDR, …), as a VM's cluster.env sets them; an empty variable
 * counts as unset. A flag given with an empty value (`-x ""`) is empty, whatever the environment.
 */
export function parseIptablesFlags(argv: readonly string[], env: Readonly<Record<string, string | undefined>> = {}): IptablesConfig {
  for (const arg of argv) {
    const name = /^--([^=]+)/.exec(arg)?.[1];
    if (name !== undefined && UNSUPPORTED.has(name)) throw new SkiffError('USAGE', `iptables: --${name} is not supported by skiff`);
  }
  const { values } = parse(splitShortEquals(argv), IPTABLES_OPTIONS);
  /** The flag's value, else its environment variable, else undefined; with the name to blame in errors. */
  const read = (flag: ValueFlag): { value: string; source: string } | undefined => {
    const short = (IPTABLES_OPTIONS[flag] as { short?: string }).short;
    const given = values[flag];
    if (given !== undefined) return { value: given, source: short === undefined ? `--${flag}` : `-${short} (--${flag})` };
    const variable = flag.toUpperCase().replace(/-/g, '_');
    const fromEnv = env[variable];
    if (fromEnv !== undefined && fromEnv !== '') return { value: fromEnv, source: variable };
    return undefined;
  };
  const port = (flag: ValueFlag, fallback: number): number => {
    const v = read(flag);
    if (v === undefined || v.value === '') return fallback;
    if (!isPort(v.value)) throw usage(v.source, v.value, 'a port number (1-65535)');
    return Number(v.value);
  };
  const portList = (flag: ValueFlag): readonly string[] => {
    const v = read(flag);
    if (v === undefined) return [];
    return items(v.value).map((p) => {
      if (!isPortOrRange(p)) throw usage(v.source, p, 'a port (1-65535) or a range a:b');
      return p;
    });
  };
  const cidrList = (flag: ValueFlag): Selection<Cidr> => {
    const v = read(flag);
    if (v === undefined) return [];
    if (v.value.trim() === '*') return '*';
    return items(v.value).map((text) => {
      if (text === '*') throw usage(v.source, v.value, '"*" alone or a list of CIDRs, not both');
      const cidr = parseCidr(text);
      if (cidr === undefined) throw usage(v.source, text, 'a CIDR such as 10.0.0.0/8 or fd00::/8 (a single address is 10.1.2.3/32)');
      return cidr;
    });
  };
  const idList = (flag: ValueFlag): readonly string[] | undefined => {
    const v = read(flag);
    if (v === undefined || v.value.trim() === '') return undefined;
    return items(v.value).map((id) => {
      if (!isOwnerId(id)) throw usage(v.source, id, 'a numeric id or a user/group name');
      return id;
    });
  };
  const interfaceList = (flag: ValueFlag): readonly string[] => {
    const v = read(flag);
    if (v === undefined) return [];
    return items(v.value).map((name) => {
      if (!isInterfaceName(name)) throw usage(v.source, name, 'a network interface name (at most 15 characters)');
      return name;
    });
  };

  const modeFlag = read('istio-inbound-interception-mode');
  const mode = modeFlag === undefined || modeFlag.value === '' ? 'REDIRECT' : modeFlag.value;
  if (mode !== 'REDIRECT' && mode !== 'TPROXY') throw usage(modeFlag!.source, mode, 'REDIRECT or TPROXY');

  const inbound = read('istio-inbound-ports');
  let inboundPorts: Selection<string> = [];
  if (inbound !== undefined && inbound.value.trim() === '*') inboundPorts = '*';
  else if (inbound !== undefined) {
    inboundPorts = items(inbound.value).map((p) => {
      if (p === '*') throw usage(inbound.source, inbound.value, '"*" alone or a list of ports, not both');
      if (!isPortOrRange(p)) throw usage(inbound.source, p, 'a port (1-65535) or a range a:b');
      return p;
    });
  }

  const exclude = cidrList('istio-service-exclude-cidr');
  if (exclude === '*') {
    const v = read('istio-service-exclude-cidr')!;
    throw usage(v.source, v.value, 'a list of CIDRs ("*" would exclude everything; use -i "" to capture no outbound traffic)');
  }

  const mark = read('istio-inbound-tproxy-mark');
  if (mark !== undefined && mark.value !== '' && !isMark(mark.value)) throw usage(mark.source, mark.value, 'a packet mark (a 32-bit number, decimal or 0x hex)');
  const table = read('istio-inbound-tproxy-route-table');
  if (table !== undefined && table.value !== '' && !isRouteTable(table.value)) {
    throw usage(table.source, table.value, 'a routing table number (1-4294967295, not the reserved 253-255)');
  }

  const proxyUids = idList('proxy-uid') ?? [ISTIO_DEFAULTS.proxyUid];
  const dualStackEnv = env['ISTIO_AGENT_DUAL_STACK'];
  return {
    proxyPort: port('envoy-port', ISTIO_DEFAULTS.proxyPort),
    inboundCapturePort: port('inbound-capture-port', ISTIO_DEFAULTS.inboundCapturePort),
    inboundTunnelPort: port('inbound-tunnel-port', ISTIO_DEFAULTS.inboundTunnelPort),
    proxyUids,
    proxyGids: idList('proxy-gid') ?? proxyUids,
    mode,
    inboundPorts,
    inboundPortsExclude: portList('istio-local-exclude-ports'),
    outboundCidrs: cidrList('istio-service-cidr'),
    outboundCidrsExclude: exclude,
    outboundPorts: portList('istio-outbound-ports'),
    outboundPortsExclude: portList('istio-local-outbound-ports-exclude'),
    excludeInterfaces: interfaceList('istio-exclude-interfaces'),
    kubeVirtInterfaces: interfaceList('kube-virt-interfaces'),
    tproxyMark: mark === undefined || mark.value === '' ? ISTIO_DEFAULTS.tproxyMark : mark.value,
    tproxyRouteTable: table === undefined || table.value === '' ? ISTIO_DEFAULTS.tproxyRouteTable : table.value,
    dualStack: values['dual-stack'] === true || dualStackEnv === 'true' || dualStackEnv === '1',
    dryRun: values['dry-run'] === true,
    clean: values.clean === true || values['cleanup-only'] === true,
  };
}

/** pflag reads `-x=value` as `-x value`; node's parseArgs would keep the `=`. */
function splitShortEquals(argv: readonly string[]): string[] {
  return argv.flatMap((a) => (/^-[A-Za-z]=/.test(a) ? [a.slice(0, 2), a.slice(3)] : [a]));
}

/** Comma-separated items, trimmed, empty ones dropped (istio-iptables' config.Split). */
function items(value: string): string[] {
  return value.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

function usage(source: string, value: string, expected: string): SkiffError {
  return new SkiffError('USAGE', `iptables: ${source}: invalid value ${JSON.stringify(value)}: expected ${expected}`);
}

const DECIMAL = /^(?:0|[1-9]\d*)$/;

function isPort(s: string): boolean {
  return DECIMAL.test(s) && Number(s) >= 1 && Number(s) <= 65535;
}

function isPortOrRange(s: string): boolean {
  const m = /^(\d+):(\d+)$/.exec(s);
  if (m === null) return isPort(s);
  return isPort(m[1]!) && isPort(m[2]!) && Number(m[1]) <= Number(m[2]);
}

function isOwnerId(s: string): boolean {
  if (DECIMAL.test(s)) return Number(s) <= 4294967294;
  return /^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$/.test(s);
}

/** Linux's dev_valid_name, minus what would break an iptables-restore line or read as an option. */
function isInterfaceName(s: string): boolean {
  return s.length <= 15 && s !== '.' && s !== '..' && /^[^\s/:,"'#\\!-][^\s/:,"'#\\]*$/.test(s);
}

function isMark(s: string): boolean {
  const n = /^0x[0-9a-fA-F]{1,8}$/.test(s) ? parseInt(s, 16) : DECIMAL.test(s) ? Number(s) : NaN;
  return Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
}

function isRouteTable(s: string): boolean {
  if (!DECIMAL.test(s)) return false;
  const n = Number(s);
  return n >= 1 && n <= 0xffffffff && (n < 253 || n > 255);
}

/** Parses `address/bits` (no zone, no shorthand), like Go's netip.ParsePrefix. */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.lastIndexOf('/');
  if (slash < 0) return undefined;
  const address = text.slice(0, slash);
  const bits = text.slice(slash + 1);
  if (!DECIMAL.test(bits) || address.includes('%')) return undefined;
  const family = ipFamily(address);
  if (family === undefined || Number(bits) > (family === 4 ? 32 : 128)) return undefined;
  const canonical = family === 4 ? address : new SocketAddress({ address, family: 'ipv6' }).address;
  const loopback = family === 4 ? address.startsWith('127.') : canonical === '::1';
  return { text: `${canonical}/${bits}`, family, loopback };
}

function ipFamily(address: string): IpFamily | undefined {
  if (/^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/.test(address)) return 4;
  if (!/^[0-9A-Fa-f:.]+$/.test(address) || !address.includes(':')) return undefined;
  try {
    new SocketAddress({ address, family: 'ipv6' });
    return 6;
  } catch {
    return undefined;
  }
}

/**
 * Whether istio-iptables would install IPv6 rules for a pod with these addresses (every address
 * of every interface, in any order). Like istio-iptables it ignores loopback and link-local
 * addresses, then looks at the first remaining one, IPv4 addresses listed before IPv6 as the
 * kernel lists them: IPv6 rules only when the pod has no usable IPv4 address. With dual stack,
 * any usable IPv6 address is enough. No usable address at all (a bare network namespace) means
 * IPv4 only, where istio-iptables would stop with "no valid local IP address found".
 */
export function wantsIpv6(addresses: readonly string[], dualStack: boolean): boolean {
  let v4 = false;
  let v6 = false;
  for (const raw of addresses) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(raw);
    const address = mapped?.[1] ?? raw.replace(/%.*$/, '');
    const family = ipFamily(address);
    if (family === 4 && !/^(?:127\.|169\.254\.|224\.0\.0\.)/.test(address)) v4 = true;
    if (family === 6) {
      const canonical = new SocketAddress({ address, family: 'ipv6' }).address;
      if (canonical !== '::1' && !/^fe[89ab][0-9a-f]:/.test(canonical) && !canonical.startsWith('ff02:')) v6 = true;
    }
  }
  return dualStack ? v6 : v6 && !v4;
}
