/**
 * The rules `skiff iptables` installs, as data: a parsed config turned into `iptables-restore`
 * input for IPv4 and IPv6. Pure: no processes, files or environment.
 *
 * Rule text, order and chain names follow istio-iptables (istio/istio
 * tools/istio-iptables/pkg/capture/run.go and its testdata/*.golden), so `iptables-save` in a skiff
 * pod reads like it does in an istio-proxy pod.
 */
import type { Cidr, IpFamily, IptablesConfig } from './flags.js';

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

export const BUILT_IN_CHAINS = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']);

/** In TPROXY mode, the proxy marks its own connections to the app so they are not captured again. */
const OUTBOUND_MARK = '1338';

/** Builds the rules for both families. Whether IPv6 rules are installed is the caller's choice (see wantsIpv6). */
export function buildRules(config: IptablesConfig): IptablesRules {
  return { ipv4: familyRules(config, 4), ipv6: familyRules(config, 6) };
}

export function familyRules(c: IptablesConfig, family: IpFamily): FamilyRules {
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

export function jumpTarget(args: readonly string[]): string | undefined {
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
