/**
 * The sidecar outbound listener's L4 decisions (Istio's virtualOutbound): by VIP and port before
 * any byte is read, then by the sniffed protocol and SNI; VirtualService tcp/tls routes with
 * destinationSubnets, SNI hosts and weights; the passthrough or blackhole fallback. Then the
 * Istio YAML → TcpService translation that feeds it.
 */
import { describe, expect, it } from 'vitest';
import { L4Table, type L4Decision, type SniffedProtocol } from '../../src/compile/l4-table.js';
import { compileSnapshot } from '../../src/compile/snapshot.js';
import { formatDiagnostic } from '../../src/config/diagnostics.js';
import { loadFromSources } from '../../src/config/load.js';
import { DEFAULT_MESH, type L4Route, type MeshSettings, type Model, type PortProtocol, type TcpService } from '../../src/model/index.js';

// === helpers ===

const cl = (port: number, host: string, subset = ''): string => `outbound|${port}|${subset}|${host}`;

interface ServiceOptions {
  readonly addresses?: readonly string[];
  readonly subnets?: readonly string[];
  readonly domains?: readonly string[];
  readonly routes?: readonly L4Route[];
}

function service(hostname: string, port: number, protocol: PortProtocol, o: ServiceOptions = {}): TcpService {
  return {
    hostname,
    domains: o.domains ?? [hostname, ...(o.addresses ?? [])],
    addresses: o.addresses ?? [],
    subnets: o.subnets ?? [],
    port,
    protocol,
    cluster: cl(port, hostname),
    routes: o.routes ?? [],
  };
}

function route(destinations: ReadonlyArray<string | [string, number]>, o: { subnets?: readonly string[]; sni?: readonly string[] } = {}): L4Route {
  return {
    destinationSubnets: o.subnets ?? [],
    ...(o.sni !== undefined && { sniHosts: o.sni }),
    destinations: destinations.map((d) => (typeof d === 'string' ? { cluster: d, weight: 1 } : { cluster: d[0], weight: d[1] })),
  };
}

const HTTP: L4Decision = { kind: 'http' };
const BLACKHOLE: L4Decision = { kind: 'blackhole' };
const PASSTHROUGH: L4Decision = { kind: 'tcp', cluster: 'PassthroughCluster' };
const tcp = (cluster: string): L4Decision => ({ kind: 'tcp', cluster });

const sniffedHttp: SniffedProtocol = { kind: 'http' };
const sniffedTcp: SniffedProtocol = { kind: 'tcp' };
const tls = (sni?: string): SniffedProtocol => (sni === undefined ? { kind: 'tls' } : { kind: 'tls', sni });

const REGISTRY_ONLY: MeshSettings = { ...DEFAULT_MESH, outboundTrafficPolicy: 'REGISTRY_ONLY' };

/**
 * One mesh with every kind of port:
 * - VIPs: 240.0.0.1:80 HTTP, 240.0.0.2:5432 TCP, 240.0.0.3:443 TLS (with a tls route),
 *   240.0.0.4:8000 AUTO;
 * - no VIP: 9080 HTTP only, 9443 TCP only, 8443 TLS only (by SNI), 7000 HTTP + TCP, 7100 AUTO.
 */
const SERVICES: TcpService[] = [
  service('web.example.com', 80, 'HTTP', { addresses: ['240.0.0.1'] }),
  service('db.example.com', 5432, 'TCP', { addresses: ['240.0.0.2'] }),
  service('secure.example.com', 443, 'TLS', {
    addresses: ['240.0.0.3'],
    routes: [route([cl(443, 'secure.example.com', 'v2')], { sni: ['secure.example.com'] })],
  }),
  service('auto.example.com', 8000, 'AUTO', { addresses: ['240.0.0.4'] }),
  service('reviews.default.svc.cluster.local', 9080, 'HTTP', { domains: ['reviews.default.svc.cluster.local', 'reviews'] }),
  service('cache.example.com', 9443, 'TCP'),
  service('api.example.com', 8443, 'TLS', {
    routes: [
      // The service's own name routed elsewhere, and a name it is not known by.
      route([cl(8443, 'api.example.com', 'v2')], { sni: ['api.example.com'] }),
      route([cl(8443, 'internal.example.com')], { sni: ['*.internal.example.com'] }),
    ],
  }),
  service('other.example.com', 8443, 'TLS'),
  service('*.wild.example.com', 8443, 'TLS'),
  service('pages.example.com', 7000, 'HTTP'),
  service('queue.example.com', 7000, 'TCP'),
  service('maybe.example.com', 7100, 'AUTO'),
  // A server-first port declared by a service: it decides, not the undeclared-port rule.
  service('mysql.example.com', 3306, 'TCP'),
];

interface Case {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  /** What early() answers; undefined means "sniff". */
  readonly early: L4Decision | undefined;
  /** decide() after sniffing, for each protocol given. */
  readonly decide?: ReadonlyArray<[SniffedProtocol, L4Decision]>;
}

function check(table: L4Table, c: Case): void {
  expect(table.early(c.address, c.port), `early(${c.address}, ${c.port})`).toEqual(c.early);
  for (const [sniffed, expected] of c.decide ?? []) {
    expect(table.decide(c.address, c.port, sniffed), `decide(${c.address}, ${c.port}, ${JSON.stringify(sniffed)})`).toEqual(expected);
  }
}

// === decisions ===

describe('L4Table: decisions by VIP, port and first bytes', () => {
  const allowAny = new L4Table(SERVICES, DEFAULT_MESH);
  const registryOnly = new L4Table(SERVICES, REGISTRY_ONLY);

  const cases: Case[] = [
    // VIP:port, by the service's declared protocol.
    { name: 'VIP of an HTTP port: HTTP without sniffing', address: '240.0.0.1', port: 80, early: HTTP },
    { name: 'VIP of a TCP port: straight to its cluster', address: '240.0.0.2', port: 5432, early: tcp(cl(5432, 'db.example.com')) },
    {
      name: 'VIP of a TLS port: sniffed; a tls route matching the SNI wins over the service cluster; HTTP stays opaque',
      address: '240.0.0.3',
      port: 443,
      early: undefined,
      decide: [
        [tls('secure.example.com'), tcp(cl(443, 'secure.example.com', 'v2'))],
        [tls('elsewhere.example.com'), tcp(cl(443, 'secure.example.com'))],
        [tls(), tcp(cl(443, 'secure.example.com'))],
        [sniffedHttp, tcp(cl(443, 'secure.example.com'))],
      ],
    },
    {
      name: 'VIP of an AUTO port: sniffed; HTTP served as HTTP, anything else to its cluster',
      address: '240.0.0.4',
      port: 8000,
      early: undefined,
      decide: [
        [sniffedHttp, HTTP],
        [sniffedTcp, tcp(cl(8000, 'auto.example.com'))],
        [tls('x.example.com'), tcp(cl(8000, 'auto.example.com'))],
      ],
    },
    {
      name: 'a VIP port at another address: sniffed, then the fallback',
      address: '10.9.9.9',
      port: 5432,
      early: undefined,
      decide: [
        [sniffedTcp, PASSTHROUGH],
        [sniffedHttp, HTTP],
      ],
    },
    // Services without VIPs, by port.
    { name: 'a port only HTTP services declare: HTTP at any address', address: '10.1.2.3', port: 9080, early: HTTP },
    { name: 'a port a TCP service declares: its cluster at any address', address: '10.1.2.3', port: 9443, early: tcp(cl(9443, 'cache.example.com')) },
    {
      name: 'HTTP and TCP services share a port: sniffed; HTTP as HTTP, the rest to the TCP service',
      address: '10.1.2.3',
      port: 7000,
      early: undefined,
      decide: [
        [sniffedHttp, HTTP],
        [sniffedTcp, tcp(cl(7000, 'queue.example.com'))],
        [tls('pages.example.com'), tcp(cl(7000, 'queue.example.com'))],
      ],
    },
    {
      name: 'an AUTO port without VIP: sniffed; HTTP as HTTP, the rest to the service',
      address: '10.1.2.3',
      port: 7100,
      early: undefined,
      decide: [
        [sniffedHttp, HTTP],
        [sniffedTcp, tcp(cl(7100, 'maybe.example.com'))],
        [tls(), tcp(cl(7100, 'maybe.example.com'))],
      ],
    },
    { name: 'a declared server-first port follows its service', address: '10.1.2.3', port: 3306, early: tcp(cl(3306, 'mysql.example.com')) },
    // TLS by SNI.
    {
      name: 'a TLS port without VIP: by SNI, exact and *.suffix, service names and route sniHosts',
      address: '10.1.2.3',
      port: 8443,
      early: undefined,
      decide: [
        // The route's sniHosts take the service's own name to v2.
        [tls('api.example.com'), tcp(cl(8443, 'api.example.com', 'v2'))],
        // A name only a route declares finds the service through the route.
        [tls('a.internal.example.com'), tcp(cl(8443, 'internal.example.com'))],
        [tls('other.example.com'), tcp(cl(8443, 'other.example.com'))],
        [tls('a.wild.example.com'), tcp(cl(8443, '*.wild.example.com'))],
        [tls('a.b.wild.example.com'), tcp(cl(8443, '*.wild.example.com'))],
        // `*.wild.example.com` does not cover the bare suffix.
        [tls('wild.example.com'), PASSTHROUGH],
        [tls('unknown.example.com'), PASSTHROUGH],
        [tls(), PASSTHROUGH],
        [sniffedTcp, PASSTHROUGH],
        [sniffedHttp, HTTP],
      ],
    },
    // Undeclared ports.
    {
      name: 'an undeclared port: sniffed; HTTP served (allow_any), the rest passed through',
      address: '93.184.216.34',
      port: 6000,
      early: undefined,
      decide: [
        [sniffedHttp, HTTP],
        [sniffedTcp, PASSTHROUGH],
        [tls('example.org'), PASSTHROUGH],
      ],
    },
    ...[25, 53, 27017].map((port) => ({ name: `undeclared server-first port ${port}: passed through without sniffing`, address: '93.184.216.34', port, early: PASSTHROUGH })),
  ];

  it.each(cases)('ALLOW_ANY: $name', (c) => check(allowAny, c));

  const registryOnlyCases: Case[] = [
    { name: 'declared HTTP VIP still HTTP', address: '240.0.0.1', port: 80, early: HTTP },
    { name: 'declared TCP VIP still proxied', address: '240.0.0.2', port: 5432, early: tcp(cl(5432, 'db.example.com')) },
    { name: 'declared HTTP port still HTTP', address: '10.1.2.3', port: 9080, early: HTTP },
    {
      name: 'an undeclared port: blackhole whatever the bytes, HTTP included',
      address: '93.184.216.34',
      port: 6000,
      early: undefined,
      decide: [
        [sniffedHttp, BLACKHOLE],
        [sniffedTcp, BLACKHOLE],
        [tls('example.org'), BLACKHOLE],
      ],
    },
    ...[25, 53, 27017].map((port) => ({ name: `undeclared server-first port ${port}: blackhole at once`, address: '93.184.216.34', port, early: BLACKHOLE })),
    { name: 'a declared server-first port still proxied', address: '93.184.216.34', port: 3306, early: tcp(cl(3306, 'mysql.example.com')) },
    {
      name: 'a VIP-only port at another address: blackhole',
      address: '10.9.9.9',
      port: 5432,
      early: undefined,
      decide: [
        [sniffedTcp, BLACKHOLE],
        [sniffedHttp, BLACKHOLE],
      ],
    },
    {
      name: 'a TLS port: known SNI proxied, unknown SNI and HTTP blackholed',
      address: '10.1.2.3',
      port: 8443,
      early: undefined,
      decide: [
        [tls('other.example.com'), tcp(cl(8443, 'other.example.com'))],
        [tls('unknown.example.com'), BLACKHOLE],
        [tls(), BLACKHOLE],
        [sniffedHttp, BLACKHOLE],
      ],
    },
    {
      name: 'a port with HTTP and TCP services: HTTP still served',
      address: '10.1.2.3',
      port: 7000,
      early: undefined,
      decide: [[sniffedHttp, HTTP]],
    },
  ];

  it.each(registryOnlyCases)('REGISTRY_ONLY: $name', (c) => check(registryOnly, c));

  it('the first service to claim a VIP:port keeps it', () => {
    const table = new L4Table([service('a.example.com', 5000, 'TCP', { addresses: ['240.0.0.9'] }), service('b.example.com', 5000, 'HTTP', { addresses: ['240.0.0.9'] })], DEFAULT_MESH);
    expect(table.early('240.0.0.9', 5000)).toEqual(tcp(cl(5000, 'a.example.com')));
  });

  it('the first TCP service without VIP gets the port', () => {
    const table = new L4Table([service('a.example.com', 5000, 'TCP'), service('b.example.com', 5000, 'TCP')], DEFAULT_MESH);
    expect(table.early('10.0.0.1', 5000)).toEqual(tcp(cl(5000, 'a.example.com')));
  });

  it('an HTTP service with a VIP makes its port HTTP for every address (Istio 0.0.0.0:port listener); an AUTO one does not', () => {
    const web = [service('web.example.com', 80, 'HTTP', { addresses: ['240.0.0.1'] })];
    for (const mesh of [DEFAULT_MESH, REGISTRY_ONLY]) {
      const table = new L4Table(web, mesh);
      expect(table.early('10.9.9.9', 80)).toEqual(HTTP);
    }
    const auto = new L4Table([service('auto.example.com', 8000, 'AUTO', { addresses: ['240.0.0.4'] })], REGISTRY_ONLY);
    expect(auto.early('10.9.9.9', 8000)).toBeUndefined();
    expect(auto.decide('10.9.9.9', 8000, sniffedHttp)).toEqual(BLACKHOLE);
  });

  it('HTTP bytes on a port with only TCP and TLS services go to the TCP service, not to HTTP', () => {
    const services = [service('cache.example.com', 6000, 'TCP'), service('api.example.com', 6000, 'TLS')];
    for (const mesh of [DEFAULT_MESH, REGISTRY_ONLY]) {
      expect(new L4Table(services, mesh).decide('10.0.0.1', 6000, sniffedHttp)).toEqual(tcp(cl(6000, 'cache.example.com')));
    }
  });

  it('CIDR addresses claim every destination inside them, after exact VIPs, and nothing outside', () => {
    const table = new L4Table(
      [
        service('exact.example.com', 5432, 'TCP', { addresses: ['10.5.0.7'] }),
        service('range.example.com', 5432, 'TCP', { subnets: ['10.5.0.0/16', '2001:db8::/32'] }),
      ],
      REGISTRY_ONLY,
    );
    expect(table.early('10.5.0.7', 5432)).toEqual(tcp(cl(5432, 'exact.example.com')));
    expect(table.early('10.5.200.1', 5432)).toEqual(tcp(cl(5432, 'range.example.com')));
    expect(table.early('2001:db8::9', 5432)).toEqual(tcp(cl(5432, 'range.example.com')));
    // An address outside the range is an unknown destination.
    expect(table.decide('10.6.0.1', 5432, sniffedTcp)).toEqual(BLACKHOLE);
  });
});

describe('L4Table: tcp routes', () => {
  const A = 'outbound|5000|a|db.example.com';
  const B = 'outbound|5000|b|db.example.com';
  const C = 'outbound|5000|c|db.example.com';
  const table = new L4Table(
    [
      service('db.example.com', 5000, 'TCP', {
        routes: [
          route([A], { subnets: ['10.1.0.0/16', '2001:db8::/32'] }),
          // Bare addresses are single hosts.
          route([B], { subnets: ['10.2.3.4', '2001:db9::5'] }),
          // Overlaps the first route: order decides.
          route([C], { subnets: ['10.0.0.0/8'] }),
        ],
      }),
    ],
    DEFAULT_MESH,
  );

  it.each([
    ['10.1.0.1', A],
    ['10.1.255.255', A],
    ['2001:db8::1', A],
    ['2001:db8:ffff::1', A],
    ['10.2.3.4', B],
    ['2001:db9::5', B],
    ['10.2.3.5', C],
    ['10.255.0.1', C],
    // No route matches: the service port's own cluster.
    ['2001:db9::6', cl(5000, 'db.example.com')],
    ['192.168.1.1', cl(5000, 'db.example.com')],
    ['11.1.0.1', cl(5000, 'db.example.com')],
  ])('original destination %s → %s', (address, cluster) => {
    expect(table.early(address, 5000)).toEqual(tcp(cluster));
    expect(table.decide(address, 5000, sniffedTcp)).toEqual(tcp(cluster));
  });

  it('a route without subsets matches every destination, before any later route', () => {
    const t = new L4Table([service('db.example.com', 5000, 'TCP', { routes: [route([A]), route([B], { subnets: ['10.0.0.0/8'] })] })], DEFAULT_MESH);
    expect(t.early('10.0.0.1', 5000)).toEqual(tcp(A));
    expect(t.early('::1', 5000)).toEqual(tcp(A));
  });

  it('an IPv4 subnet does not match IPv6 destinations, nor the reverse', () => {
    const t = new L4Table(
      [service('db.example.com', 5000, 'TCP', { routes: [route([A], { subnets: ['0.0.0.0/0'] }), route([B], { subnets: ['::/0'] })] })],
      DEFAULT_MESH,
    );
    expect(t.early('203.0.113.7', 5000)).toEqual(tcp(A));
    expect(t.early('2001:db8::7', 5000)).toEqual(tcp(B));
  });

  it('weights split connections by independent draws (70/30)', () => {
    const t = new L4Table([service('db.example.com', 5000, 'TCP', { routes: [route([[A, 70], [B, 30]])] })], DEFAULT_MESH);
    const counts = new Map<string, number>();
    const n = 2000;
    for (let i = 0; i < n; i++) {
      const d = t.early('10.0.0.1', 5000);
      if (d?.kind !== 'tcp') throw new Error(`not a tcp decision: ${JSON.stringify(d)}`);
      counts.set(d.cluster, (counts.get(d.cluster) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual([A, B]);
    // ±7 points is about seven standard deviations of binomial(2000, 0.7).
    expect(Math.abs(counts.get(A)! / n - 0.7)).toBeLessThanOrEqual(0.07);
    expect(Math.abs(counts.get(B)! / n - 0.3)).toBeLessThanOrEqual(0.07);
  });

  it('weights split sniffed connections too, and three ways (50/25/25)', () => {
    const t = new L4Table([service('db.example.com', 5000, 'AUTO', { routes: [route([[A, 50], [B, 25], [C, 25]])] })], DEFAULT_MESH);
    const counts = new Map<string, number>();
    const n = 2000;
    for (let i = 0; i < n; i++) {
      const d = t.decide('10.0.0.1', 5000, sniffedTcp);
      if (d.kind !== 'tcp') throw new Error(`not a tcp decision: ${JSON.stringify(d)}`);
      counts.set(d.cluster, (counts.get(d.cluster) ?? 0) + 1);
    }
    expect(Math.abs(counts.get(A)! / n - 0.5)).toBeLessThanOrEqual(0.07);
    expect(Math.abs(counts.get(B)! / n - 0.25)).toBeLessThanOrEqual(0.07);
    expect(Math.abs(counts.get(C)! / n - 0.25)).toBeLessThanOrEqual(0.07);
  });

  it('a zero weight among others is never picked', () => {
    const t = new L4Table([service('db.example.com', 5000, 'TCP', { routes: [route([[A, 0], [B, 1]])] })], DEFAULT_MESH);
    for (let i = 0; i < 200; i++) expect(t.early('10.0.0.1', 5000)).toEqual(tcp(B));
  });
});

describe('L4Table: tls routes', () => {
  const V1 = cl(443, 'api.example.com', 'v1');
  const V2 = cl(443, 'api.example.com', 'v2');
  const table = new L4Table(
    [
      service('api.example.com', 443, 'TLS', {
        routes: [
          // SNI and subnet both must match.
          route([V1], { sni: ['api.example.com'], subnets: ['10.1.0.0/16'] }),
          route([V2], { sni: ['api.example.com', '*.api.example.com'] }),
        ],
      }),
    ],
    DEFAULT_MESH,
  );

  it.each([
    ['10.1.0.1', 'api.example.com', V1],
    ['10.2.0.1', 'api.example.com', V2],
    ['10.1.0.1', 'eu.api.example.com', V2],
    ['10.1.0.1', 'a.b.api.example.com', V2],
  ])('%s with SNI %s → %s', (address, sni, cluster) => {
    expect(table.early(address, 443)).toBeUndefined();
    expect(table.decide(address, 443, tls(sni))).toEqual(tcp(cluster));
  });

  it('an SNI no route or service names falls through to the fallback', () => {
    expect(table.decide('10.1.0.1', 443, tls('api.example.org'))).toEqual(PASSTHROUGH);
    expect(table.decide('10.1.0.1', 443, tls())).toEqual(PASSTHROUGH);
  });
});

// === translation from Istio YAML ===

/** Loads YAML documents (joined by ---) and requires a valid model; returns it and its printed diagnostics. */
function load(...docs: string[]): { model: Model; lines: string[] } {
  const r = loadFromSources([{ name: 'mesh.yaml', absolutePath: '/config/mesh.yaml', text: docs.join('---\n') }]);
  const lines = r.diagnostics.map((d) => formatDiagnostic(d));
  if (r.model === undefined) throw new Error(`config is invalid:\n${lines.join('\n')}`);
  return { model: r.model, lines };
}

function tcpService(m: Model, host: string, port: number): TcpService {
  const s = m.tcpServices.find((x) => x.hostname === host && x.port === port);
  if (s === undefined) throw new Error(`no tcp service ${host}:${port}; have ${m.tcpServices.map((x) => `${x.hostname}:${x.port}`).join(', ')}`);
  return s;
}

function serviceEntry(host: string, ports: string, extra = ''): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${host.replace(/[^a-z0-9-]/g, '-')}}
spec:
  hosts: ["${host}"]
  ports: ${ports}
  resolution: STATIC
  endpoints: [{address: 10.0.0.1, labels: {version: v1}}, {address: 10.0.0.2, labels: {version: v2}}]
${extra}`;
}

function virtualService(name: string, spec: string): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${name}}
spec:
${spec}`;
}

const DB = serviceEntry('db.example.com', '[{number: 5432, name: tcp, protocol: TCP}, {number: 5433, name: tcp-2, protocol: TCP}]');
const DB_SUBSETS = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db}
spec:
  host: db.example.com
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
`;

describe('translation: VirtualService tcp and tls routes', () => {
  it('tcp routes: port matches, destinationSubnets, weights and subsets as outbound|port|subset|host', () => {
    const { model, lines } = load(
      DB,
      DB_SUBSETS,
      virtualService(
        'db',
        `  hosts: [db.example.com]
  tcp:
  - match: [{port: 5432, destinationSubnets: [10.1.0.0/16, "2001:db8::/32", 10.2.3.4]}]
    route: [{destination: {host: db.example.com, subset: v1}}]
  - match: [{port: 5433}]
    route: [{destination: {host: db.example.com, subset: v2, port: {number: 5433}}}]
  - route:
    - {destination: {host: db.example.com, subset: v1}, weight: 70}
    - {destination: {host: db.example.com, subset: v2}, weight: 30}
`,
      ),
    );
    expect(lines).toEqual([]);
    const weighted = {
      destinationSubnets: [],
      destinations: [
        { cluster: 'outbound|5432|v1|db.example.com', weight: 70 },
        { cluster: 'outbound|5432|v2|db.example.com', weight: 30 },
      ],
    };
    expect(tcpService(model, 'db.example.com', 5432)).toEqual({
      hostname: 'db.example.com',
      domains: ['db.example.com'],
      addresses: [],
      subnets: [],
      port: 5432,
      protocol: 'TCP',
      cluster: 'outbound|5432||db.example.com',
      routes: [
        { destinationSubnets: ['10.1.0.0/16', '2001:db8::/32', '10.2.3.4'], destinations: [{ cluster: 'outbound|5432|v1|db.example.com', weight: 1 }] },
        weighted,
      ],
    });
    // The same rules narrowed to the other port: the destination port follows the service port.
    expect(tcpService(model, 'db.example.com', 5433).routes).toEqual([
      { destinationSubnets: [], destinations: [{ cluster: 'outbound|5433|v2|db.example.com', weight: 1 }] },
      {
        destinationSubnets: [],
        destinations: [
          { cluster: 'outbound|5433|v1|db.example.com', weight: 70 },
          { cluster: 'outbound|5433|v2|db.example.com', weight: 30 },
        ],
      },
    ]);
    // The subset clusters exist, so the routes' decisions reach real clusters.
    const snapshot = compileSnapshot(model, 1);
    for (const s of ['v1', 'v2']) expect(snapshot.clusters.has(`outbound|5432|${s}|db.example.com`)).toBe(true);
    expect(snapshot.l4.early('10.2.3.4', 5432)).toEqual(tcp('outbound|5432|v1|db.example.com'));
    expect(snapshot.l4.early('2001:db8::9', 5432)).toEqual(tcp('outbound|5432|v1|db.example.com'));
    expect(snapshot.l4.early('10.0.0.1', 5433)).toEqual(tcp('outbound|5433|v2|db.example.com'));
  });

  it('tls routes: sniHosts lowercased; TLS ports take tls routes, TCP ports tcp routes', () => {
    const { model, lines } = load(
      serviceEntry('api.example.com', '[{number: 443, name: tls, protocol: TLS}, {number: 5432, name: tcp, protocol: TCP}]'),
      virtualService(
        'api',
        `  hosts: [api.example.com]
  tls:
  - match: [{sniHosts: [API.Example.com, "*.EU.example.com"], destinationSubnets: [10.0.0.0/8]}]
    route: [{destination: {host: api.example.com, port: {number: 443}}}]
  tcp:
  - route: [{destination: {host: api.example.com, port: {number: 5432}}}]
`,
      ),
    );
    expect(lines).toEqual([]);
    expect(tcpService(model, 'api.example.com', 443).routes).toEqual([
      { destinationSubnets: ['10.0.0.0/8'], sniHosts: ['api.example.com', '*.eu.example.com'], destinations: [{ cluster: 'outbound|443||api.example.com', weight: 1 }] },
    ]);
    expect(tcpService(model, 'api.example.com', 5432).routes).toEqual([{ destinationSubnets: [], destinations: [{ cluster: 'outbound|5432||api.example.com', weight: 1 }] }]);
    const l4 = compileSnapshot(model, 1).l4;
    expect(l4.decide('10.1.1.1', 443, tls('x.eu.example.com'))).toEqual(tcp('outbound|443||api.example.com'));
  });

  it('matches apply to this sidecar only: gateways must include mesh; sourceLabels and sourceNamespace must match it', () => {
    const { model } = load(
      `apiVersion: skiff.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  workloadLabels: {app: web, version: v1}
`,
      DB,
      DB_SUBSETS,
      virtualService(
        'db',
        `  hosts: [db.example.com]
  tcp:
  - match: [{port: 5432, gateways: [some-gw]}]
    route: [{destination: {host: db.example.com, subset: v2}}]
  - match: [{port: 5432, sourceLabels: {app: other}}]
    route: [{destination: {host: db.example.com, subset: v2}}]
  - match: [{port: 5432, sourceNamespace: prod}]
    route: [{destination: {host: db.example.com, subset: v2}}]
  - match: [{port: 5432, destinationSubnets: [10.9.0.0/16], gateways: [some-gw, mesh], sourceLabels: {app: web}, sourceNamespace: default}]
    route: [{destination: {host: db.example.com, subset: v1}}]
`,
      ),
    );
    expect(tcpService(model, 'db.example.com', 5432).routes).toEqual([
      { destinationSubnets: ['10.9.0.0/16'], destinations: [{ cluster: 'outbound|5432|v1|db.example.com', weight: 1 }] },
    ]);
    // None of the port-5432 matches serve port 5433.
    expect(tcpService(model, 'db.example.com', 5433).routes).toEqual([]);
  });

  it('a VirtualService bound only to a gateway does not route the mesh', () => {
    const { model } = load(
      DB,
      DB_SUBSETS,
      virtualService('db', '  hosts: [db.example.com]\n  gateways: [some-gw]\n  tcp:\n  - route: [{destination: {host: db.example.com, subset: v2}}]\n'),
    );
    expect(tcpService(model, 'db.example.com', 5432).routes).toEqual([]);
  });

  it('port protocols: HTTP/HTTP2/GRPC/GRPC-WEB → HTTP, HTTPS/TLS → TLS, TCP/MONGO → TCP, unset → AUTO except server-first ports → TCP', () => {
    const { model } = load(
      serviceEntry(
        'p.example.com',
        `
  - {number: 1001, name: a, protocol: HTTP}
  - {number: 1002, name: b, protocol: HTTP2}
  - {number: 1003, name: c, protocol: GRPC}
  - {number: 1004, name: d, protocol: GRPC-WEB}
  - {number: 1005, name: e, protocol: HTTPS}
  - {number: 1006, name: f, protocol: TLS}
  - {number: 1007, name: g, protocol: TCP}
  - {number: 1008, name: h, protocol: MONGO}
  - {number: 1009, name: i}
  - {number: 3306, name: j}
  - {number: 27017, name: k}
  - {number: 25, name: l}
  - {number: 53, name: m}`,
      ),
    );
    expect(model.tcpServices.map((s) => [s.port, s.protocol])).toEqual([
      [1001, 'HTTP'],
      [1002, 'HTTP'],
      [1003, 'HTTP'],
      [1004, 'HTTP'],
      [1005, 'TLS'],
      [1006, 'TLS'],
      [1007, 'TCP'],
      [1008, 'TCP'],
      [1009, 'AUTO'],
      [3306, 'TCP'],
      [27017, 'TCP'],
      [25, 'TCP'],
      [53, 'TCP'],
    ]);
  });

  it('HTTP ports take no tcp routes; AUTO ports do', () => {
    const { model } = load(
      serviceEntry('p.example.com', '[{number: 9080, name: http, protocol: HTTP}, {number: 9090, name: auto}]'),
      virtualService('p', '  hosts: [p.example.com]\n  tcp:\n  - route: [{destination: {host: p.example.com, port: {number: 9090}}}]\n'),
    );
    expect(tcpService(model, 'p.example.com', 9080).routes).toEqual([]);
    expect(tcpService(model, 'p.example.com', 9090).routes).toEqual([{ destinationSubnets: [], destinations: [{ cluster: 'outbound|9090||p.example.com', weight: 1 }] }]);
  });
});

// === validation and canonical addresses ===

describe('L4 config is validated and canonical', () => {
  const vs = (route: string): string =>
    virtualService('db', `  hosts: [db.example.com]\n  tcp:\n  - match: [{port: 5432}]\n    route: ${route}\n`);

  // Unchecked, an out-of-range prefix would make compileSnapshot throw from BlockList.addSubnet.
  it('an invalid destinationSubnets CIDR is a load error, not a compile-time throw', () => {
    const r = loadFromSources([
      {
        name: 'mesh.yaml',
        absolutePath: '/config/mesh.yaml',
        text: [DB, virtualService('db', '  hosts: [db.example.com]\n  tcp:\n  - match: [{destinationSubnets: [10.0.0.0/33]}]\n    route: [{destination: {host: db.example.com}}]\n')].join('---\n'),
      },
    ]);
    if (r.model !== undefined) expect(() => compileSnapshot(r.model!, 1)).not.toThrow();
    expect(r.diagnostics.some((d) => d.severity === 'error' && d.field.includes('destinationSubnets'))).toBe(true);
  });

  // As for HTTP routes: "at least one weight must be greater than 0"; never an undefined cluster.
  it.each([
    ['several destinations without weights', '[{destination: {host: db.example.com, subset: v1}}, {destination: {host: db.example.com, subset: v2}}]'],
    ['no destinations', '[]'],
  ])('a tcp route with %s is refused at load', (_name, routeYaml) => {
    const r = loadFromSources([{ name: 'mesh.yaml', absolutePath: '/config/mesh.yaml', text: [DB, DB_SUBSETS, vs(routeYaml)].join('---\n') }]);
    expect(r.model).toBeUndefined();
    expect(r.diagnostics.some((d) => d.severity === 'error' && d.field.includes('route'))).toBe(true);
  });

  it('a tcp route naming an undefined subset is warned about, as an http route is', () => {
    const { lines } = load(DB, DB_SUBSETS, vs('[{destination: {host: db.example.com, subset: v3}}]'));
    expect(lines.some((l) => l.includes('subset "v3"'))).toBe(true);
  });

  // The listener reports IPv6 destinations in canonical form; VIPs are canonicalised at load.
  it('a ServiceEntry IPv6 VIP matches whatever its textual form', () => {
    const { model } = load(
      `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db6}
spec:
  hosts: [db6.example.com]
  addresses: ["2001:DB8:0::1"]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1}]
`,
    );
    expect(compileSnapshot(model, 1).l4.early('2001:db8::1', 5432)).toEqual(tcp('outbound|5432||db6.example.com'));
  });
});
