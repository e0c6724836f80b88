/**
 * The rules `skiff iptables` installs, against istio-iptables' golden files
 * (istio/istio tools/istio-iptables/pkg/capture/testdata/*.golden, restore format) and the golden
 * nat rules in reference/istio-envoy-semantics.md §1.1; plus flag parsing, validation, IPv6
 * detection and the cleanup plan.
 */
import { describe, expect, it } from 'vitest';
import { SkiffError } from '../../src/core/errors.js';
import { builtInRuleDeletes, planCleanup } from '../../src/cli/iptables/cleanup.js';
import { parseCidr, parseIptablesFlags, wantsIpv6 } from '../../src/cli/iptables/flags.js';
import { buildRules } from '../../src/cli/iptables/rules.js';

const rulesFor = (argv: string[], env: Record<string, string> = {}) => buildRules(parseIptablesFlags(argv, env));

/** The args the Istio 1.3 injector passes to istio-iptables, unchanged. */
const ISTIO_13_ARGS = ['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-x', '', '-b', '*', '-d', '15020'];

/** The part of ISTIO_OUTPUT every REDIRECT config shares (uid and gid 1337, IPv4). */
const OUTPUT_OWNER_RULES = `-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
`;

const NAT_HEAD = `* nat
-N ISTIO_INBOUND
-N ISTIO_REDIRECT
-N ISTIO_IN_REDIRECT
-N ISTIO_OUTPUT
-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
`;

describe('golden rules (REDIRECT)', () => {
  it('Istio 1.3 injector args give the reference rules, in order', () => {
    expect(rulesFor(ISTIO_13_ARGS).ipv4.restore).toBe(`* nat
-N ISTIO_INBOUND
-N ISTIO_REDIRECT
-N ISTIO_IN_REDIRECT
-N ISTIO_OUTPUT
-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
-A PREROUTING -p tcp -j ISTIO_INBOUND
-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN
-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
-A ISTIO_OUTPUT -j ISTIO_REDIRECT
COMMIT
`);
  });

  it('no flags: Istio defaults, no inbound capture and no outbound capture by address (empty.golden)', () => {
    expect(rulesFor([]).ipv4.restore).toBe(`* nat
-N ISTIO_INBOUND
-N ISTIO_REDIRECT
-N ISTIO_IN_REDIRECT
-N ISTIO_OUTPUT
-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
COMMIT
`);
  });

  it('-b "*" alone (inbound-ports-wildcard.golden)', () => {
    expect(rulesFor(['-b', '*']).ipv4.restore).toBe(`${NAT_HEAD}-A PREROUTING -p tcp -j ISTIO_INBOUND
-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT
-A OUTPUT -j ISTIO_OUTPUT
${OUTPUT_OWNER_RULES}COMMIT
`);
  });

  it('-d excludes each port with its own RETURN, before the catch-all', () => {
    expect(rulesFor(['-b', '*', '-d', '15090,15021,15020']).ipv4.restore).toBe(`${NAT_HEAD}-A PREROUTING -p tcp -j ISTIO_INBOUND
-A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN
-A ISTIO_INBOUND -p tcp --dport 15021 -j RETURN
-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN
-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT
-A OUTPUT -j ISTIO_OUTPUT
${OUTPUT_OWNER_RULES}COMMIT
`);
  });

  it('-d is ignored unless -b is "*", as in istio-iptables (the injector always passes it)', () => {
    const withExclude = rulesFor(['-b', '8080', '-d', '15090,15021']).ipv4.restore;
    expect(withExclude).toBe(rulesFor(['-b', '8080']).ipv4.restore);
    expect(withExclude).not.toContain('15090');
  });

  it('-b with a port list captures only those ports, with no catch-all (inbound-ports-include.golden)', () => {
    expect(rulesFor(['-b', '32000,31000']).ipv4.restore).toBe(`${NAT_HEAD}-A PREROUTING -p tcp -j ISTIO_INBOUND
-A ISTIO_INBOUND -p tcp --dport 32000 -j ISTIO_IN_REDIRECT
-A ISTIO_INBOUND -p tcp --dport 31000 -j ISTIO_IN_REDIRECT
-A OUTPUT -j ISTIO_OUTPUT
${OUTPUT_OWNER_RULES}COMMIT
`);
  });

  it('-x excludes CIDRs of each family after the localhost RETURN and before the capture', () => {
    const rules = rulesFor(['-i', '*', '-x', '10.96.0.0/12, 169.254.169.254/32,FD00::/8']);
    expect(rules.ipv4.restore).toBe(`${NAT_HEAD}-A OUTPUT -j ISTIO_OUTPUT
${OUTPUT_OWNER_RULES}-A ISTIO_OUTPUT -d 10.96.0.0/12 -j RETURN
-A ISTIO_OUTPUT -d 169.254.169.254/32 -j RETURN
-A ISTIO_OUTPUT -j ISTIO_REDIRECT
COMMIT
`);
    const v6 = rules.ipv6.rules.map((r) => r.line);
    expect(v6.slice(-3)).toEqual([
      '-A ISTIO_OUTPUT -d ::1/128 -j RETURN',
      '-A ISTIO_OUTPUT -d fd00::/8 -j RETURN',
      '-A ISTIO_OUTPUT -j ISTIO_REDIRECT',
    ]);
  });

  it('-i with CIDRs captures only those, per family, with no trailing RETURN (ipnets.golden)', () => {
    const rules = rulesFor(['-i', '10.0.0.0/8,2001:db8::/32']);
    expect(rules.ipv4.rules.at(-1)!.line).toBe('-A ISTIO_OUTPUT -d 10.0.0.0/8 -j ISTIO_REDIRECT');
    expect(rules.ipv6.rules.at(-1)!.line).toBe('-A ISTIO_OUTPUT -d 2001:db8::/32 -j ISTIO_REDIRECT');
    expect(rules.ipv4.restore).not.toContain('2001:db8');
  });

  it('-i naming a loopback range keeps app→self traffic on lo capturable (no "! --uid-owner" RETURN)', () => {
    const lines = rulesFor(['-i', '127.1.2.3/32']).ipv4.rules.map((r) => r.line);
    expect(lines.filter((l) => l.includes('! --uid-owner') || l.includes('! --gid-owner'))).toEqual([]);
    expect(lines.at(-1)).toBe('-A ISTIO_OUTPUT -d 127.1.2.3/32 -j ISTIO_REDIRECT');
  });

  it('-q always captures those TCP ports (outbound-ports-include.golden)', () => {
    expect(rulesFor(['-q', '32000,31000']).ipv4.restore).toBe(`${NAT_HEAD}-A OUTPUT -j ISTIO_OUTPUT
${OUTPUT_OWNER_RULES}-A ISTIO_OUTPUT -p tcp --dport 32000 -j ISTIO_REDIRECT
-A ISTIO_OUTPUT -p tcp --dport 31000 -j ISTIO_REDIRECT
COMMIT
`);
  });

  it('-o never captures those ports, TCP or UDP, before anything else in ISTIO_OUTPUT', () => {
    expect(rulesFor(['-i', '*', '-o', '22,5432']).ipv4.restore).toBe(`${NAT_HEAD}-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -p tcp --dport 22 -j RETURN
-A ISTIO_OUTPUT -p udp --dport 22 -j RETURN
-A ISTIO_OUTPUT -p tcp --dport 5432 -j RETURN
-A ISTIO_OUTPUT -p udp --dport 5432 -j RETURN
${OUTPUT_OWNER_RULES}-A ISTIO_OUTPUT -j ISTIO_REDIRECT
COMMIT
`);
  });

  it('-k with -i "*" (kube-virt-interfaces.golden)', () => {
    expect(rulesFor(['-k', 'eth1,eth2', '-i', '*']).ipv4.restore).toBe(`* nat
-N ISTIO_INBOUND
-N ISTIO_REDIRECT
-N ISTIO_IN_REDIRECT
-N ISTIO_OUTPUT
-I PREROUTING 1 -i eth1 -j RETURN
-I PREROUTING 1 -i eth2 -j RETURN
-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
-A OUTPUT -j ISTIO_OUTPUT
${OUTPUT_OWNER_RULES}-A ISTIO_OUTPUT -j ISTIO_REDIRECT
-I PREROUTING 1 -i eth1 -j ISTIO_REDIRECT
-I PREROUTING 1 -i eth2 -j ISTIO_REDIRECT
COMMIT
`);
  });

  it('-c excludes interfaces in both directions, first in PREROUTING and OUTPUT (basic-exclude-nic)', () => {
    const lines = rulesFor(['-c', 'not-istio-nic']).ipv4.rules.map((r) => r.line);
    expect(lines.slice(0, 2)).toEqual(['-A PREROUTING -i not-istio-nic -j RETURN', '-A OUTPUT -o not-istio-nic -j RETURN']);
  });

  it('-u and -g lists give one rule group per id, gids defaulting to the uids', () => {
    const owners = (argv: string[]) => rulesFor(argv).ipv4.rules.map((r) => r.line).filter((l) => /-m owner --(uid|gid)-owner \S+ -j RETURN$/.test(l));
    expect(owners(['-u', '3,4', '-g', '1,2'])).toEqual([
      '-A ISTIO_OUTPUT -m owner --uid-owner 3 -j RETURN',
      '-A ISTIO_OUTPUT -m owner --uid-owner 4 -j RETURN',
      '-A ISTIO_OUTPUT -m owner --gid-owner 1 -j RETURN',
      '-A ISTIO_OUTPUT -m owner --gid-owner 2 -j RETURN',
    ]);
    expect(owners(['-u', '1000'])).toEqual(['-A ISTIO_OUTPUT -m owner --uid-owner 1000 -j RETURN', '-A ISTIO_OUTPUT -m owner --gid-owner 1000 -j RETURN']);
    expect(owners(['-u', '1000', '-g', ''])).toEqual(owners(['-u', '1000']));
  });

  it('ports and uids reach the rules', () => {
    const text = rulesFor(['-p', '16001', '-z', '16006', '-e', '16008', '-b', '*']).ipv4.restore;
    expect(text).toContain('-A ISTIO_INBOUND -p tcp --dport 16008 -j RETURN');
    expect(text).toContain('-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 16001');
    expect(text).toContain('-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 16006');
    expect(text).toContain('! --dport 16008 -m owner --uid-owner 1337');
  });

  it('IPv6 rules use ::6, ::1 and only IPv6 CIDRs', () => {
    expect(rulesFor(ISTIO_13_ARGS).ipv6.restore).toBe(`* nat
-N ISTIO_INBOUND
-N ISTIO_REDIRECT
-N ISTIO_IN_REDIRECT
-N ISTIO_OUTPUT
-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
-A PREROUTING -p tcp -j ISTIO_INBOUND
-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN
-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -o lo -s ::6/128 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d ::1/128 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d ::1/128 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -d ::1/128 -j RETURN
-A ISTIO_OUTPUT -j ISTIO_REDIRECT
COMMIT
`);
  });
});

describe('golden rules (TPROXY)', () => {
  it('-m TPROXY -b "*" (inbound-ports-wildcard-tproxy.golden)', () => {
    expect(rulesFor(['-m', 'TPROXY', '-b', '*']).ipv4.restore).toBe(`* mangle
-N ISTIO_DIVERT
-N ISTIO_TPROXY
-N ISTIO_INBOUND
-A ISTIO_DIVERT -j MARK --set-mark 1337
-A ISTIO_DIVERT -j ACCEPT
-A ISTIO_TPROXY ! -d 127.0.0.1/32 -p tcp -j TPROXY --tproxy-mark 1337/0xffffffff --on-port 15006
-A PREROUTING -p tcp -j ISTIO_INBOUND
-A ISTIO_INBOUND -p tcp -m conntrack --ctstate RELATED,ESTABLISHED -j ISTIO_DIVERT
-A ISTIO_INBOUND -p tcp -j ISTIO_TPROXY
-A PREROUTING -p tcp -m mark --mark 1337 -j CONNMARK --save-mark
-A OUTPUT -p tcp -o lo -m mark --mark 1337 -j RETURN
-A OUTPUT ! -d 127.0.0.1/32 -p tcp -o lo -m owner --uid-owner 1337 -j MARK --set-mark 1338
-A OUTPUT ! -d 127.0.0.1/32 -p tcp -o lo -m owner --gid-owner 1337 -j MARK --set-mark 1338
-A OUTPUT -p tcp -m connmark --mark 1337 -j CONNMARK --restore-mark
-I ISTIO_INBOUND 1 -p tcp -m mark --mark 1337 -j RETURN
-I ISTIO_INBOUND 2 -p tcp -s 127.0.0.6/32 -i lo -j RETURN
-I ISTIO_INBOUND 3 -p tcp -i lo -m mark ! --mark 1338 -j RETURN
COMMIT
${NAT_HEAD}-A OUTPUT -j ISTIO_OUTPUT
${OUTPUT_OWNER_RULES}COMMIT
`);
  });

  it('-m TPROXY with a port list, a mark and a -d list in the mangle table', () => {
    const rules = rulesFor(['-m', 'TPROXY', '-b', '32000,31000', '-t', '7', '-d', '9999']).ipv4.rules;
    const mangle = rules.filter((r) => r.table === 'mangle').map((r) => r.line);
    expect(mangle.slice(0, 8)).toEqual([
      '-A ISTIO_DIVERT -j MARK --set-mark 7',
      '-A ISTIO_DIVERT -j ACCEPT',
      '-A ISTIO_TPROXY ! -d 127.0.0.1/32 -p tcp -j TPROXY --tproxy-mark 7/0xffffffff --on-port 15006',
      '-A PREROUTING -p tcp -j ISTIO_INBOUND',
      '-A ISTIO_INBOUND -p tcp --dport 32000 -m conntrack --ctstate RELATED,ESTABLISHED -j ISTIO_DIVERT',
      '-A ISTIO_INBOUND -p tcp --dport 32000 -j ISTIO_TPROXY',
      '-A ISTIO_INBOUND -p tcp --dport 31000 -m conntrack --ctstate RELATED,ESTABLISHED -j ISTIO_DIVERT',
      '-A ISTIO_INBOUND -p tcp --dport 31000 -j ISTIO_TPROXY',
    ]);
    expect(rules.some((r) => r.line.includes('9999'))).toBe(false);
    expect(rules.filter((r) => r.table === 'nat' && r.chain === 'PREROUTING')).toEqual([]);
  });

  it('-m TPROXY -b "*" -d excludes in mangle, and -c excludes in both tables (tproxy.golden order)', () => {
    const rules = rulesFor(['-m', 'TPROXY', '-b', '*', '-d', '15020', '-c', 'not-istio-nic']).ipv6.rules;
    const mangle = rules.filter((r) => r.table === 'mangle').map((r) => r.line);
    expect(mangle.slice(0, 8)).toEqual([
      '-A PREROUTING -i not-istio-nic -j RETURN',
      '-A OUTPUT -o not-istio-nic -j RETURN',
      '-A ISTIO_DIVERT -j MARK --set-mark 1337',
      '-A ISTIO_DIVERT -j ACCEPT',
      '-A ISTIO_TPROXY ! -d ::1/128 -p tcp -j TPROXY --tproxy-mark 1337/0xffffffff --on-port 15006',
      '-A PREROUTING -p tcp -j ISTIO_INBOUND',
      '-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN',
      '-A ISTIO_INBOUND -p tcp -m conntrack --ctstate RELATED,ESTABLISHED -j ISTIO_DIVERT',
    ]);
    expect(mangle).toContain('-I ISTIO_INBOUND 2 -p tcp -s ::6/128 -i lo -j RETURN');
    expect(rules.filter((r) => r.table === 'nat').slice(0, 2).map((r) => r.line)).toEqual([
      '-A PREROUTING -i not-istio-nic -j RETURN',
      '-A OUTPUT -o not-istio-nic -j RETURN',
    ]);
  });
});

describe('parseIptablesFlags', () => {
  it('has Istio defaults', () => {
    expect(parseIptablesFlags([])).toEqual({
      proxyPort: 15001,
      inboundCapturePort: 15006,
      inboundTunnelPort: 15008,
      proxyUids: ['1337'],
      proxyGids: ['1337'],
      mode: 'REDIRECT',
      inboundPorts: [],
      inboundPortsExclude: [],
      outboundCidrs: [],
      outboundCidrsExclude: [],
      outboundPorts: [],
      outboundPortsExclude: [],
      excludeInterfaces: [],
      kubeVirtInterfaces: [],
      tproxyMark: '1337',
      tproxyRouteTable: '133',
      dualStack: false,
      dryRun: false,
      clean: false,
    });
  });

  it('takes the Istio 1.3 injector args unchanged, -x "" included', () => {
    const c = parseIptablesFlags(ISTIO_13_ARGS);
    expect(c).toMatchObject({ proxyPort: 15001, inboundCapturePort: 15006, mode: 'REDIRECT', inboundPorts: '*', outboundCidrs: '*', outboundCidrsExclude: [], inboundPortsExclude: ['15020'] });
    expect(c.proxyUids).toEqual(['1337']);
    expect(c.proxyGids).toEqual(['1337']);
  });

  it('takes long names, attached values and -x=value like pflag, and ignores --log_output_level', () => {
    const c = parseIptablesFlags([
      '--envoy-port=15101', '--inbound-capture-port', '15106', '-z15106', '--proxy-uid', '1', '--proxy-gid', '2',
      '--istio-inbound-interception-mode', 'TPROXY', '--istio-inbound-ports', '*', '--istio-local-exclude-ports', '1,2',
      '--istio-service-cidr', '10.0.0.0/8', '--istio-service-exclude-cidr=10.1.0.0/16', '--istio-outbound-ports', '3',
      '--istio-local-outbound-ports-exclude', '4', '--istio-exclude-interfaces', 'eth9', '--kube-virt-interfaces', 'kv0',
      '-t', '0x539', '-r', '200', '-d=15020', '--dry-run', '--dual-stack', '--log_output_level=default:info',
    ]);
    expect(c).toMatchObject({
      proxyPort: 15101, inboundCapturePort: 15106, proxyUids: ['1'], proxyGids: ['2'], mode: 'TPROXY', inboundPorts: '*',
      inboundPortsExclude: ['15020'], outboundPorts: ['3'], outboundPortsExclude: ['4'], excludeInterfaces: ['eth9'],
      kubeVirtInterfaces: ['kv0'], tproxyMark: '0x539', tproxyRouteTable: '200', dryRun: true, dualStack: true, clean: false,
    });
    expect(c.outboundCidrs).toEqual([{ text: '10.0.0.0/8', family: 4, loopback: false }]);
    expect(c.outboundCidrsExclude).toEqual([{ text: '10.1.0.0/16', family: 4, loopback: false }]);
    expect(parseIptablesFlags(['--clean']).clean).toBe(true);
    expect(parseIptablesFlags(['--cleanup-only']).clean).toBe(true);
    expect(parseIptablesFlags(['-n']).dryRun).toBe(true);
  });

  it('accepts port ranges, spaces and empty items in lists', () => {
    expect(parseIptablesFlags(['-b', ' 80, 8000:8100,,', '-o', '22,']).inboundPorts).toEqual(['80', '8000:8100']);
    expect(parseIptablesFlags(['-o', '22,']).outboundPortsExclude).toEqual(['22']);
    expect(parseIptablesFlags(['-b', '']).inboundPorts).toEqual([]);
  });

  it('reads istio-iptables environment variables for flags not given; a given flag wins, even when empty', () => {
    const env = { ISTIO_INBOUND_PORTS: '*', ISTIO_LOCAL_EXCLUDE_PORTS: '15090,15021', ISTIO_SERVICE_CIDR: '*', ISTIO_SERVICE_EXCLUDE_CIDR: '10.0.0.0/8', ENVOY_PORT: '', PROXY_UID: '999' };
    const c = parseIptablesFlags([], env);
    expect(c).toMatchObject({ inboundPorts: '*', inboundPortsExclude: ['15090', '15021'], outboundCidrs: '*', proxyPort: 15001, proxyUids: ['999'], proxyGids: ['999'] });
    expect(c.outboundCidrsExclude.map((x) => x.text)).toEqual(['10.0.0.0/8']);
    const flags = parseIptablesFlags(['-x', '', '-b', '80'], env);
    expect(flags.outboundCidrsExclude).toEqual([]);
    expect(flags.inboundPorts).toEqual(['80']);
    expect(parseIptablesFlags([], { ISTIO_AGENT_DUAL_STACK: 'true' }).dualStack).toBe(true);
  });

  it('canonicalizes IPv6 CIDRs like Go netip and marks loopback ranges', () => {
    expect(parseCidr('2001:0DB8:0::/32')).toEqual({ text: '2001:db8::/32', family: 6, loopback: false });
    expect(parseCidr('::1/128')).toEqual({ text: '::1/128', family: 6, loopback: true });
    expect(parseCidr('127.1.2.3/32')).toEqual({ text: '127.1.2.3/32', family: 4, loopback: true });
    expect(parseCidr('0.0.0.0/0')).toEqual({ text: '0.0.0.0/0', family: 4, loopback: false });
  });

  it.each([
    [['-p', 'abc'], '-p (--envoy-port): invalid value "abc": expected a port number (1-65535)'],
    [['-p', '0'], '-p (--envoy-port): invalid value "0"'],
    [['-z', '65536'], '-z (--inbound-capture-port): invalid value "65536"'],
    [['-e', '15008.5'], '-e (--inbound-tunnel-port): invalid value "15008.5"'],
    [['-d', '15020,abc'], '-d (--istio-local-exclude-ports): invalid value "abc": expected a port (1-65535) or a range a:b'],
    [['-b', '80,99999'], '-b (--istio-inbound-ports): invalid value "99999"'],
    [['-b', '*,80'], '-b (--istio-inbound-ports): invalid value "*,80": expected "*" alone or a list of ports, not both'],
    [['-q', '9000:8000'], '-q (--istio-outbound-ports): invalid value "9000:8000"'],
    [['-o', '-1'], '--istio-local-outbound-ports-exclude'],
    [['-i', '10.0.0.0'], '-i (--istio-service-cidr): invalid value "10.0.0.0": expected a CIDR'],
    [['-i', '10.0.0.0/33'], '-i (--istio-service-cidr): invalid value "10.0.0.0/33"'],
    [['-i', '300.0.0.0/8'], '-i (--istio-service-cidr): invalid value "300.0.0.0/8"'],
    [['-i', '010.0.0.0/8'], '-i (--istio-service-cidr): invalid value "010.0.0.0/8"'],
    [['-i', 'fe80::1%eth0/64'], '-i (--istio-service-cidr): invalid value "fe80::1%eth0/64"'],
    [['-i', '*,10.0.0.0/8'], '-i (--istio-service-cidr): invalid value "*,10.0.0.0/8": expected "*" alone'],
    [['-x', '*'], '-x (--istio-service-exclude-cidr): invalid value "*"'],
    [['-x', '10.0.0.0/8,nonsense'], '-x (--istio-service-exclude-cidr): invalid value "nonsense"'],
    [['-m', 'tproxy'], '-m (--istio-inbound-interception-mode): invalid value "tproxy": expected REDIRECT or TPROXY'],
    [['-m', 'NONE'], '-m (--istio-inbound-interception-mode): invalid value "NONE"'],
    [['-u', 'a b'], '-u (--proxy-uid): invalid value "a b"'],
    [['-g', '1337,-5'], '-g (--proxy-gid): invalid value "-5"'],
    [['-c', 'eth0/1'], '-c (--istio-exclude-interfaces): invalid value "eth0/1"'],
    [['-k', 'averyveryverylongname'], '-k (--kube-virt-interfaces): invalid value "averyveryverylongname"'],
    [['-t', '1e3'], '-t (--istio-inbound-tproxy-mark): invalid value "1e3"'],
    [['-r', '254'], '-r (--istio-inbound-tproxy-route-table): invalid value "254"'],
    [['--redirect-dns'], '--redirect-dns is not supported by skiff'],
    [['--no-such-flag'], "Unknown option '--no-such-flag'"],
    [['extra'], 'extra'],
  ])('rejects %j', (argv, message) => {
    let error: unknown;
    try {
      parseIptablesFlags(argv);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(SkiffError);
    expect((error as SkiffError).code).toBe('USAGE');
    expect((error as SkiffError).message).toContain(message);
  });

  it('names the environment variable when the bad value came from it', () => {
    expect(() => parseIptablesFlags([], { ISTIO_SERVICE_CIDR: 'nope' })).toThrow('ISTIO_SERVICE_CIDR: invalid value "nope"');
    expect(() => parseIptablesFlags([], { ISTIO_INBOUND_INTERCEPTION_MODE: 'X' })).toThrow('ISTIO_INBOUND_INTERCEPTION_MODE: invalid value "X"');
  });
});

describe('wantsIpv6 (istio-iptables: the first usable address decides; dual stack: any IPv6)', () => {
  it.each([
    [['127.0.0.1', '::1'], false, false],
    [['127.0.0.1', '::1', 'fe80::1', '169.254.1.1'], false, false],
    [['127.0.0.1', '10.0.0.5', '::1', 'fd00::5'], false, false],
    [['127.0.0.1', '10.0.0.5', '::1', 'fd00::5'], true, true],
    [['127.0.0.1', '::1', 'fd00::5', 'fe80::2%eth0'], false, true],
    [['::1', '2001:db8::7'], false, true],
    [['10.0.0.5'], true, false],
    [[], true, false],
  ])('%j dual-stack=%s → %s', (addresses, dualStack, expected) => {
    expect(wantsIpv6(addresses, dualStack)).toBe(expected);
  });
});

describe('planCleanup', () => {
  /** iptables-save (nf_tables) output with the Istio 1.3 rules installed plus an unrelated user rule. */
  const INSTALLED = `# Generated by iptables-save v1.8.9 (nf_tables) on Mon Jan  1 00:00:00 2026
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:ISTIO_INBOUND - [0:0]
:ISTIO_IN_REDIRECT - [0:0]
:ISTIO_OUTPUT - [0:0]
:ISTIO_REDIRECT - [0:0]
-A PREROUTING -p tcp -j ISTIO_INBOUND
-A OUTPUT -j ISTIO_OUTPUT
-A OUTPUT -o eth9 -j RETURN
-A POSTROUTING -o eth0 -j MASQUERADE
-A ISTIO_INBOUND -p tcp -m tcp --dport 15008 -j RETURN
-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT
-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
-A ISTIO_OUTPUT -j ISTIO_REDIRECT
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
COMMIT
`;

  it('deletes the jumps, then flushes and deletes every ISTIO_* chain, in one restore', () => {
    const plan = planCleanup(parseIptablesFlags([]), 4, INSTALLED);
    expect(plan.restore).toBe(`* nat
-D PREROUTING -p tcp -j ISTIO_INBOUND
-D OUTPUT -j ISTIO_OUTPUT
-F ISTIO_INBOUND
-F ISTIO_IN_REDIRECT
-F ISTIO_OUTPUT
-F ISTIO_REDIRECT
-X ISTIO_INBOUND
-X ISTIO_IN_REDIRECT
-X ISTIO_OUTPUT
-X ISTIO_REDIRECT
COMMIT
`);
  });

  it('deletes the interface exclusions it would have installed, only where the chain holds other rules', () => {
    const plan = planCleanup(parseIptablesFlags(['-c', 'eth9']), 4, INSTALLED);
    // nat PREROUTING holds only the jump to ISTIO_INBOUND, so nothing of ours can be left there.
    expect(plan.deletes).toEqual([['-t', 'nat', '-D', 'OUTPUT', '-o', 'eth9', '-j', 'RETURN']]);
    expect(builtInRuleDeletes(parseIptablesFlags(['-c', 'eth9']), 4)).toContainEqual(['-t', 'nat', '-D', 'PREROUTING', '-i', 'eth9', '-j', 'RETURN']);
  });

  it('lists the TPROXY mark rules whatever -m says, since the install may have used TPROXY', () => {
    const deletes = builtInRuleDeletes(parseIptablesFlags([]), 6).map((d) => d.join(' '));
    expect(deletes).toEqual([
      '-t mangle -D PREROUTING -p tcp -m mark --mark 1337 -j CONNMARK --save-mark',
      '-t mangle -D OUTPUT -p tcp -o lo -m mark --mark 1337 -j RETURN',
      '-t mangle -D OUTPUT ! -d ::1/128 -p tcp -o lo -m owner --uid-owner 1337 -j MARK --set-mark 1338',
      '-t mangle -D OUTPUT ! -d ::1/128 -p tcp -o lo -m owner --gid-owner 1337 -j MARK --set-mark 1338',
      '-t mangle -D OUTPUT -p tcp -m connmark --mark 1337 -j CONNMARK --restore-mark',
    ]);
  });

  it('is empty when nothing is installed', () => {
    const empty = `*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n*mangle\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n`;
    expect(planCleanup(parseIptablesFlags(['-m', 'TPROXY', '-c', 'eth9']), 4, empty)).toEqual({ restore: '', deletes: [] });
    expect(planCleanup(parseIptablesFlags([]), 4, '')).toEqual({ restore: '', deletes: [] });
  });

  it('also removes Istio DNS chains in raw and jumps from user chains', () => {
    const saved = `*raw\n:OUTPUT ACCEPT [0:0]\n:ISTIO_OUTPUT_DNS - [0:0]\n-A OUTPUT -j ISTIO_OUTPUT_DNS\n-A ISTIO_OUTPUT_DNS -p udp -m udp --dport 53 -j CT --zone 1\nCOMMIT\n*nat\n:OUTPUT ACCEPT [0:0]\n:MINE - [0:0]\n:ISTIO_OUTPUT - [0:0]\n-A MINE -m comment --comment "to -j ISTIO_X" -g ISTIO_OUTPUT\nCOMMIT\n`;
    expect(planCleanup(parseIptablesFlags([]), 4, saved).restore).toBe(`* nat
-D MINE -m comment --comment "to -j ISTIO_X" -g ISTIO_OUTPUT
-F ISTIO_OUTPUT
-X ISTIO_OUTPUT
COMMIT
* raw
-D OUTPUT -j ISTIO_OUTPUT_DNS
-F ISTIO_OUTPUT_DNS
-X ISTIO_OUTPUT_DNS
COMMIT
`);
  });
});
