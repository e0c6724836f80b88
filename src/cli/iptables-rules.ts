/**
 * The rules `skiff iptables` installs, as data: Istio's `istio-iptables` flags parsed into a typed
 * config, the config turned into `iptables-restore` input for IPv4 and IPv6, and the plan that
 * removes them again. Pure: no processes, files or environment beyond what the caller passes in.
 *
 * Rule text, order and chain names follow istio-iptables (istio/istio
 * tools/istio-iptables/pkg/capture/run.go and its testdata/*.golden), so `iptables-save` in a skiff
 * pod reads like it does in an istio-proxy pod. Where istio-iptables silently ignores a bad value
 * (an unparsable CIDR, an unknown mode), skiff rejects it with a USAGE error naming the flag.
 */
import { SocketAddress } from 'node:net';
import { SkiffError } from '../core/errors.js';
import { parse } from './args.js';

// === config ===

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

// === rules ===

export type Table = 'mangle' | 'nat';

/** One iptables rule: `-A CHAIN args…` or `-I CHAIN position args…` in `table`. */
export interface Rule {
  readonly table: Table;
  readonly chain: string;
  /** Where the rule goes: appended, or inserted at a 1-based position. */
  readonly position: 'append' | number;
  readonly args: readonly string[];
  /** The rule as an iptables-restore line. */
  readonly line: string;
}

export interface FamilyRules {
  readonly family: IpFamily;
  /** Every rule in the order istio-iptables adds it. */
  readonly rules: readonly Rule[];
  /**
   * Input for `iptables-restore --noflush`: per table (mangle, then nat), `-N` for each chain it
   * creates, then the rules, then COMMIT. Fails if a chain already exists: clean first.
   */
  readonly restore: string;
}

export interface IptablesRules {
  readonly ipv4: FamilyRules;
  readonly ipv6: FamilyRules;
}

export const CHAINS = {
  inbound: 'ISTIO_INBOUND',
  redirect: 'ISTIO_REDIRECT',
  inRedirect: 'ISTIO_IN_REDIRECT',
  output: 'ISTIO_OUTPUT',
  divert: 'ISTIO_DIVERT',
  tproxy: 'ISTIO_TPROXY',
} as const;

const BUILT_IN_CHAINS = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']);

/** In TPROXY mode, the proxy marks its own connections to the app so they are not captured again. */
const OUTBOUND_MARK = '1338';

/** Builds the rules for both families. Whether IPv6 rules are installed is the caller's choice (see wantsIpv6). */
export function buildRules(config: IptablesConfig): IptablesRules {
  return { ipv4: familyRules(config, 4), ipv6: familyRules(config, 6) };
}

function familyRules(c: IptablesConfig, family: IpFamily): FamilyRules {
  const rules: Rule[] = [];
  const add = (table: Table, chain: string, position: Rule['position'], args: string[]): void => {
    const head = position === 'append' ? ['-A', chain] : ['-I', chain, String(position)];
    rules.push({ table, chain, position, args, line: [...head, ...args].join(' ') });
  };
  const append = (table: Table, chain: string, ...args: string[]): void => add(table, chain, 'append', args);
  const insert = (table: Table, chain: string, position: number, ...args: string[]): void => add(table, chain, position, args);

  const localhost = family === 4 ? '127.0.0.1/32' : '::1/128';
  // The proxy's inbound passthrough connects from 127.0.0.6 (::6): "6 is the magical number for inbound".
  const passthrough = family === 4 ? '127.0.0.6/32' : '::6/128';
  const tproxy = c.mode === 'TPROXY';
  const tunnel = String(c.inboundTunnelPort);
  const ofFamily = (cidrs: readonly Cidr[]): Cidr[] => cidrs.filter((x) => x.family === family);
  const includesLoopback = c.outboundCidrs !== '*' && c.outboundCidrs.some((x) => x.loopback);

  // Interfaces that are never captured, then KubeVirt interfaces, whose inbound is not inbound.
  for (const nic of c.excludeInterfaces) {
    append('nat', 'PREROUTING', '-i', nic, '-j', 'RETURN');
    append('nat', 'OUTPUT', '-o', nic, '-j', 'RETURN');
  }
  if (tproxy) {
    for (const nic of c.excludeInterfaces) {
      append('mangle', 'PREROUTING', '-i', nic, '-j', 'RETURN');
      append('mangle', 'OUTPUT', '-o', nic, '-j', 'RETURN');
    }
  }
  for (const nic of c.kubeVirtInterfaces) insert('nat', 'PREROUTING', 1, '-i', nic, '-j', 'RETURN');

  append('nat', CHAINS.inbound, '-p', 'tcp', '--dport', tunnel, '-j', 'RETURN');
  append('nat', CHAINS.redirect, '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', String(c.proxyPort));
  append('nat', CHAINS.inRedirect, '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', String(c.inboundCapturePort));

  // Inbound.
  if (c.inboundPorts === '*' || c.inboundPorts.length > 0) {
    const table: Table = tproxy ? 'mangle' : 'nat';
    if (tproxy) {
      append('mangle', CHAINS.divert, '-j', 'MARK', '--set-mark', c.tproxyMark);
      append('mangle', CHAINS.divert, '-j', 'ACCEPT');
      append('mangle', CHAINS.tproxy, '!', '-d', localhost, '-p', 'tcp', '-j', 'TPROXY',
        '--tproxy-mark', `${c.tproxyMark}/0xffffffff`, '--on-port', String(c.inboundCapturePort));
    }
    append(table, 'PREROUTING', '-p', 'tcp', '-j', CHAINS.inbound);
    if (c.inboundPorts === '*') {
      for (const port of c.inboundPortsExclude) append(table, CHAINS.inbound, '-p', 'tcp', '--dport', port, '-j', 'RETURN');
      if (tproxy) {
        append('mangle', CHAINS.inbound, '-p', 'tcp', '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', CHAINS.divert);
        append('mangle', CHAINS.inbound, '-p', 'tcp', '-j', CHAINS.tproxy);
      } else {
        append('nat', CHAINS.inbound, '-p', 'tcp', '-j', CHAINS.inRedirect);
      }
    } else {
      for (const port of c.inboundPorts) {
        if (tproxy) {
          append('mangle', CHAINS.inbound, '-p', 'tcp', '--dport', port, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', CHAINS.divert);
          append('mangle', CHAINS.inbound, '-p', 'tcp', '--dport', port, '-j', CHAINS.tproxy);
        } else {
          append('nat', CHAINS.inbound, '-p', 'tcp', '--dport', port, '-j', CHAINS.inRedirect);
        }
      }
    }
  }

  // Outbound.
  append('nat', 'OUTPUT', '-j', CHAINS.output);
  for (const port of c.outboundPortsExclude) {
    append('nat', CHAINS.output, '-p', 'tcp', '--dport', port, '-j', 'RETURN');
    append('nat', CHAINS.output, '-p', 'udp', '--dport', port, '-j', 'RETURN');
  }
  append('nat', CHAINS.output, '-o', 'lo', '-s', passthrough, '-j', 'RETURN');
  for (const [match, ids] of [['--uid-owner', c.proxyUids], ['--gid-owner', c.proxyGids]] as const) {
    for (const id of ids) {
      // The app calling itself through a service address: app → proxy (outbound) → proxy (inbound) → app.
      append('nat', CHAINS.output, '-o', 'lo', '!', '-d', localhost, '-p', 'tcp', '!', '--dport', tunnel,
        '-m', 'owner', match, id, '-j', CHAINS.inRedirect);
      // The app calling itself on its own address is not captured, unless -i names a loopback range.
      if (!includesLoopback) append('nat', CHAINS.output, '-o', 'lo', '-m', 'owner', '!', match, id, '-j', 'RETURN');
      // The proxy's own traffic is never captured again.
      append('nat', CHAINS.output, '-m', 'owner', match, id, '-j', 'RETURN');
    }
  }
  append('nat', CHAINS.output, '-d', localhost, '-j', 'RETURN');
  for (const cidr of ofFamily(c.outboundCidrsExclude)) append('nat', CHAINS.output, '-d', cidr.text, '-j', 'RETURN');
  for (const port of c.outboundPorts) append('nat', CHAINS.output, '-p', 'tcp', '--dport', port, '-j', CHAINS.redirect);
  if (c.outboundCidrs === '*') {
    append('nat', CHAINS.output, '-j', CHAINS.redirect);
    for (const nic of c.kubeVirtInterfaces) insert('nat', 'PREROUTING', 1, '-i', nic, '-j', CHAINS.redirect);
  } else {
    for (const cidr of ofFamily(c.outboundCidrs)) {
      for (const nic of c.kubeVirtInterfaces) insert('nat', 'PREROUTING', 1, '-i', nic, '-d', cidr.text, '-j', CHAINS.redirect);
      append('nat', CHAINS.output, '-d', cidr.text, '-j', CHAINS.redirect);
    }
  }

  if (tproxy) {
    const mark = c.tproxyMark;
    // Keep the mark of connections the proxy accepted, so replies route back through it.
    append('mangle', 'PREROUTING', '-p', 'tcp', '-m', 'mark', '--mark', mark, '-j', 'CONNMARK', '--save-mark');
    append('mangle', 'OUTPUT', '-p', 'tcp', '-o', 'lo', '-m', 'mark', '--mark', mark, '-j', 'RETURN');
    for (const [match, ids] of [['--uid-owner', c.proxyUids], ['--gid-owner', c.proxyGids]] as const) {
      for (const id of ids) {
        append('mangle', 'OUTPUT', '!', '-d', localhost, '-p', 'tcp', '-o', 'lo', '-m', 'owner', match, id, '-j', 'MARK', '--set-mark', OUTBOUND_MARK);
      }
    }
    append('mangle', 'OUTPUT', '-p', 'tcp', '-m', 'connmark', '--mark', mark, '-j', 'CONNMARK', '--restore-mark');
    insert('mangle', CHAINS.inbound, 1, '-p', 'tcp', '-m', 'mark', '--mark', mark, '-j', 'RETURN');
    insert('mangle', CHAINS.inbound, 2, '-p', 'tcp', '-s', passthrough, '-i', 'lo', '-j', 'RETURN');
    insert('mangle', CHAINS.inbound, 3, '-p', 'tcp', '-i', 'lo', '-m', 'mark', '!', '--mark', OUTBOUND_MARK, '-j', 'RETURN');
  }

  return { family, rules, restore: restoreText(rules) };
}

function jumpTarget(args: readonly string[]): string | undefined {
  return args.length >= 2 && args[args.length - 2] === '-j' ? args[args.length - 1] : undefined;
}

function restoreText(rules: readonly Rule[]): string {
  let out = '';
  for (const table of ['mangle', 'nat'] as const) {
    const inTable = rules.filter((r) => r.table === table);
    if (inTable.length === 0) continue;
    // New chains in the order istio-iptables creates them: those with rules, then jump targets.
    const chains = new Set<string>();
    for (const r of inTable) if (!BUILT_IN_CHAINS.has(r.chain)) chains.add(r.chain);
    for (const r of inTable) {
      const target = jumpTarget(r.args);
      if (target?.startsWith('ISTIO_')) chains.add(target);
    }
    out += `* ${table}\n`;
    for (const chain of chains) out += `-N ${chain}\n`;
    for (const r of inTable) out += `${r.line}\n`;
    out += 'COMMIT\n';
  }
  return out;
}

// === cleanup ===

/** Tables in which cleanup looks for ISTIO_* chains (raw holds Istio's DNS-capture chains). */
const CLEAN_TABLES = ['mangle', 'nat', 'raw'] as const;

export interface CleanupPlan {
  /**
   * Input for `iptables-restore --noflush` (empty when there is nothing to do): deletes every
   * jump to an ISTIO_* chain from another chain, then flushes and deletes the ISTIO_* chains.
   */
  readonly restore: string;
  /**
   * The builtInRuleDeletes whose chain holds rules other than jumps to ISTIO_* (in an empty chain
   * there is nothing to delete). Run each until it fails: a rule added twice is there twice.
   */
  readonly deletes: readonly (readonly string[])[];
}

interface SavedTable {
  readonly chains: readonly string[];
  /** `-A CHAIN …` lines, verbatim. */
  readonly rules: readonly { readonly chain: string; readonly line: string }[];
}

/**
 * `iptables` argument lists (`-t TABLE -D CHAIN …`) deleting each rule that `config` puts straight
 * into a built-in chain without jumping to an ISTIO_* chain (interface exclusions, TPROXY marks),
 * in either interception mode, once each.
 */
export function builtInRuleDeletes(config: IptablesConfig, family: IpFamily): (readonly string[])[] {
  const deletes = new Map<string, readonly string[]>();
  for (const mode of ['REDIRECT', 'TPROXY'] as const) {
    for (const r of familyRules({ ...config, mode }, family).rules) {
      if (!BUILT_IN_CHAINS.has(r.chain) || jumpTarget(r.args)?.startsWith('ISTIO_')) continue;
      const args = ['-t', r.table, '-D', r.chain, ...r.args];
      deletes.set(args.join(' '), args);
    }
  }
  return [...deletes.values()];
}

/** Splits `iptables-save` output into tables. */
export function parseSave(text: string): Map<string, SavedTable> {
  const tables = new Map<string, { chains: string[]; rules: { chain: string; line: string }[] }>();
  let current: { chains: string[]; rules: { chain: string; line: string }[] } | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) {
      current = { chains: [], rules: [] };
      tables.set(line.slice(1).trim(), current);
    } else if (current === undefined || line === '' || line.startsWith('#') || line === 'COMMIT') {
      continue;
    } else if (line.startsWith(':')) {
      current.chains.push(line.slice(1).split(/\s+/)[0]!);
    } else if (line.startsWith('-A ')) {
      current.rules.push({ chain: line.split(/\s+/)[1]!, line });
    }
  }
  return tables;
}

/** The words of an iptables-save rule, keeping quoted strings (comments) whole. */
function words(line: string): string[] {
  return line.match(/"(?:[^"\\]|\\.)*"|\S+/g) ?? [];
}

function jumpsToIstio(line: string): boolean {
  const w = words(line);
  return w.some((word, i) => (word === '-j' || word === '-g') && w[i + 1]?.startsWith('ISTIO_') === true);
}

/**
 * What removes skiff's rules for one family, given that family's current `iptables-save` output.
 * Idempotent: with nothing installed, the plan is empty.
 */
export function planCleanup(config: IptablesConfig, family: IpFamily, saved: string): CleanupPlan {
  const tables = parseSave(saved);
  let restore = '';
  for (const name of CLEAN_TABLES) {
    const table = tables.get(name);
    if (table === undefined) continue;
    const ours = table.chains.filter((c) => c.startsWith('ISTIO_'));
    const jumps = table.rules.filter((r) => !r.chain.startsWith('ISTIO_') && jumpsToIstio(r.line));
    if (ours.length === 0 && jumps.length === 0) continue;
    restore += `* ${name}\n`;
    for (const j of jumps) restore += `-D ${j.line.slice(3)}\n`;
    for (const c of ours) restore += `-F ${c}\n`;
    for (const c of ours) restore += `-X ${c}\n`;
    restore += 'COMMIT\n';
  }

  // Built-in chains that hold something besides jumps to ISTIO_*: only there can a rule of ours remain.
  const busy = new Set<string>();
  for (const [name, table] of tables) {
    for (const r of table.rules) if (BUILT_IN_CHAINS.has(r.chain) && !jumpsToIstio(r.line)) busy.add(`${name}/${r.chain}`);
  }
  const deletes = builtInRuleDeletes(config, family).filter((args) => busy.has(`${args[1]}/${args[3]}`));
  return { restore, deletes };
}
