/**
 * Sidecars configured only over xDS, end to end: two pods (network namespaces), each with skiff
 * as its sidecar (uid 1337 behind `skiff iptables`) and certificates from `skiff ca`, each fed
 * istiod-shaped resources by its own test ADS server on a unix socket in the root namespace (the
 * filesystem is shared). Pod A's sidecar runs as pilot-agent would start it (`skiff proxy sidecar
 * --discoveryAddress …`, credentials in Istio's file layout); pod B's with `skiff run --mode
 * sidecar --xds … --certs …`. On real traffic:
 *
 * - HTTP to a service VIP through its `<vip>_<port>` listener, the per-VIP RDS route
 *   configuration and an EDS cluster with auto mTLS reaches B's application over mTLS (it sees
 *   A's identity in x-forwarded-client-cert), through B's virtualInbound port chains and the
 *   `inbound|<port>||` cluster;
 * - a RouteConfiguration pushed over RDS (a header match and weighted clusters) moves traffic;
 * - TCP through a `<vip>_<port>` tcp_proxy listener reaches B's echo application over mTLS;
 * - a virtualInbound with only mTLS chains for a port (STRICT) refuses plaintext there while A's
 *   sidecar still gets through;
 * - a virtualOutbound whose catch-all is BlackHoleCluster (REGISTRY_ONLY) closes connections to
 *   unknown destinations while services keep working;
 * - RBAC filters on virtualInbound's chains (istiod's AuthorizationPolicy shape) are enforced: an
 *   HTTP ALLOW policy by A's SPIFFE identity, method and path (Envoy's 403 otherwise), and a
 *   network deny-all on the TCP chains; pushing the chains without them lifts both;
 * - virtualInbound's chains decide how a port is served: a port with only tcp_proxy chains
 *   proxies HTTP bytes as opaque TCP, a port with only HTTP chains closes anything not HTTP;
 * - without virtualInbound, inbound connections are closed, until it is pushed again.
 *
 * Needs root, iproute2, iptables, curl and setpriv; elsewhere it is skipped with the reason.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TypeUrl } from '../../src/config/xds/proto.js';
import { assertBuilt, CLI } from '../helpers/cli.js';
import { netnsUnavailable, PodNetwork, type PodProcess } from '../helpers/netns.js';
import {
  BLACKHOLE_CLUSTER,
  httpRbacFilter,
  INBOUND_PASSTHROUGH_CLUSTER_IPV4,
  inboundCluster,
  istioAllowRule,
  meshEdsCluster,
  networkRbacFilter,
  PASSTHROUGH_CLUSTER,
  podAssignment,
  vipHttpListener,
  vipRouteConfig,
  vipTcpListener,
  virtualInbound,
  virtualOutbound,
  withInboundRbac,
  type InboundPort,
} from '../helpers/xds-resources.js';
import { AdsServer } from '../support/ads-server.js';

const SKIP = netnsUnavailable(['iptables', 'curl', 'setpriv']);
const APPS = fileURLToPath(new URL('./apps.mjs', import.meta.url));
const NODE = process.execPath;
const PROXY_UID = 1337;
const INIT_ARGS = ['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-x', '', '-b', '*', '-d', '15020'];
const SUBNET = '10.104.0';
const POD_A = `${SUBNET}.2`;
const POD_B = `${SUBNET}.3`;
const REVIEWS_VIP = '10.96.4.10';
const ECHO_VIP = '10.96.4.20';
const REVIEWS = 'reviews.default.svc.cluster.local';
const ECHO = 'echo.default.svc.cluster.local';
const REVIEWS_ROUTE = `${REVIEWS}:9080`;
const REVIEWS_CLUSTER = `outbound|9080||${REVIEWS}`;
const REVIEWS_V1 = `outbound|9080|v1|${REVIEWS}`;
const REVIEWS_V2 = `outbound|9080|v2|${REVIEWS}`;
const ECHO_CLUSTER = `outbound|7000||${ECHO}`;
const PRODUCTPAGE_ID = 'spiffe://cluster.local/ns/default/sa/productpage';
/** Pod B's application ports: reviews v1 and v2 (HTTP), echo (TCP), and one no service names (HTTP). */
const V1_PORT = 9080;
const V2_PORT = 9081;
const ECHO_PORT = 7000;
const OTHER_PORT = 8080;

const WORKLOAD_B = 'reviews-v1;default;reviews;v1;Kubernetes';

/** B's endpoints as A's EDS sees them: sidecar-injected (tlsMode istio). */
const endpointsForA = (): object[] => [
  podAssignment(REVIEWS_CLUSTER, [{ address: POD_B, port: V1_PORT, tlsMode: 'istio', workload: WORKLOAD_B }]),
  podAssignment(REVIEWS_V1, [{ address: POD_B, port: V1_PORT, tlsMode: 'istio', workload: WORKLOAD_B }]),
  podAssignment(REVIEWS_V2, [{ address: POD_B, port: V2_PORT, tlsMode: 'istio', workload: 'reviews-v2;default;reviews;v2;Kubernetes' }]),
  podAssignment(ECHO_CLUSTER, [{ address: POD_B, port: ECHO_PORT, tlsMode: 'istio', workload: WORKLOAD_B }]),
];

const clustersForA = (): object[] => [
  meshEdsCluster(REVIEWS, 9080, { serviceAccount: 'reviews' }),
  meshEdsCluster(REVIEWS, 9080, { serviceAccount: 'reviews', subset: 'v1' }),
  meshEdsCluster(REVIEWS, 9080, { serviceAccount: 'reviews', subset: 'v2' }),
  meshEdsCluster(ECHO, 7000, { serviceAccount: 'reviews' }),
  PASSTHROUGH_CLUSTER,
  BLACKHOLE_CLUSTER,
  INBOUND_PASSTHROUGH_CLUSTER_IPV4,
];

const listenersForA = (catchAll: 'PassthroughCluster' | 'BlackHoleCluster'): object[] => [
  virtualOutbound(catchAll),
  virtualInbound([]),
  vipHttpListener(REVIEWS_VIP, 9080, REVIEWS_ROUTE, REVIEWS_CLUSTER),
  vipTcpListener(ECHO_VIP, 7000, ECHO_CLUSTER),
];

const inboundPortsOfB = (mode: 'PERMISSIVE' | 'STRICT'): InboundPort[] => [
  { port: V1_PORT, protocol: 'http', mode, host: REVIEWS },
  { port: V2_PORT, protocol: 'http', mode: 'PERMISSIVE', host: REVIEWS, cluster: 'InboundPassthroughClusterIpv4' },
  { port: ECHO_PORT, protocol: 'tcp', mode, host: ECHO },
];

const clustersForB = (): object[] => [
  inboundCluster(V1_PORT, REVIEWS),
  inboundCluster(ECHO_PORT, ECHO),
  PASSTHROUGH_CLUSTER,
  BLACKHOLE_CLUSTER,
  INBOUND_PASSTHROUGH_CLUSTER_IPV4,
];

describe.skipIf(SKIP !== undefined)(`sidecars configured over xDS${SKIP === undefined ? '' : ` (skipped: ${SKIP})`}`, () => {
  let net: PodNetwork | undefined;
  let dir: string | undefined;
  const ads: { a?: AdsServer; b?: AdsServer } = {};
  const sidecars: Record<string, PodProcess> = {};

  const skiff = (args: string[]): void => {
    const r = spawnSync(NODE, [CLI, ...args], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
  };
  const giveToProxy = (path: string): void => {
    chownSync(path, PROXY_UID, PROXY_UID);
    for (const f of readdirSync(path)) chownSync(join(path, f), PROXY_UID, PROXY_UID);
  };
  const pod = (): PodNetwork => net!;
  const adminVersion = async (name: string): Promise<number> => {
    const r = await pod().exec(name, 'curl', ['-s', '--max-time', '2', 'http://127.0.0.1:15000/config_status']);
    return r.code === 0 ? (JSON.parse(r.stdout) as { version: number }).version : -1;
  };
  /**
   * Replaces one type's resources on a pod's ADS server, and resolves once the sidecar has ACKed
   * them and reloaded (its config version moved). A NACK fails with skiff's reason.
   */
  const push = async (name: 'a' | 'b', typeUrl: string, resources: readonly object[]): Promise<void> => {
    const server = ads[name]!;
    const before = await adminVersion(name);
    server.setResources(typeUrl, resources);
    const version = server.version(typeUrl);
    const answer = await server.waitFor((r) => r.typeUrl === typeUrl && r.nonce !== '' && (r.errorDetail !== undefined || r.versionInfo === version), 10_000);
    expect(answer.errorDetail?.message, `pod ${name} rejected ${typeUrl} version ${version}`).toBeUndefined();
    const deadline = Date.now() + 10_000;
    while ((await adminVersion(name)) <= before) {
      if (Date.now() > deadline) throw new Error(`pod ${name}'s sidecar did not reload after ${typeUrl} version ${version}:\n${sidecars[name]?.output() ?? ''}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const curl = (args: string[], options: { uid?: number } = {}) => pod().exec('a', 'curl', ['-s', '--max-time', '5', ...args], options);
  /** One curl GETting `url` `n` times (on one connection): each response body, parsed. */
  const getMany = async (url: string, n: number, headers: string[] = []): Promise<Array<{ name: string; xfcc?: string }>> => {
    const r = await pod().exec('a', 'curl', ['-s', '--max-time', '10', '-w', '\\n', ...headers.flatMap((h) => ['-H', h]), ...Array.from({ length: n }, () => url)]);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { name: string; xfcc?: string });
  };

  /** One curl from A's namespace: the status and the body. */
  const request = async (args: string[], options: { uid?: number } = {}): Promise<{ status: number; body: string }> => {
    const r = await curl(['-w', '\\n%{http_code}', ...args], options);
    expect(r.code, r.stderr).toBe(0);
    const end = r.stdout.lastIndexOf('\n');
    return { status: Number(r.stdout.slice(end + 1)), body: r.stdout.slice(0, end) };
  };
  /**
   * From A's namespace as uid 1337 (not captured, so no sidecar on A's side): connects to B's
   * `port`, sends `message`, half-closes, and returns all it read until the end, then a newline
   * ("error <code>" when the connection was reset).
   */
  const rawToB = async (port: number, message: string): Promise<string> => (await pod().exec('a', NODE, [APPS, 'tcp-client', POD_B, String(port), message, '1'], { uid: PROXY_UID })).stdout;
  /** A's TCP echo through its sidecar (echo VIP, mTLS to B): what came back. */
  const echoThroughA = async (): Promise<string> => (await pod().exec('a', NODE, [APPS, 'tcp-client', 'echo', String(ECHO_PORT), 'ping', '1'])).stdout;

  beforeAll(async () => {
    assertBuilt();
    dir = mkdtempSync(join(tmpdir(), 'skiff-xds-sidecar-'));
    chmodSync(dir, 0o755);
    skiff(['ca', 'init', '--dir', join(dir, 'ca')]);
    // Pod A: Istio's file layout under its working directory (pilot-agent's), found by default.
    const aRoot = join(dir, 'a');
    const aCerts = join(aRoot, 'var/run/secrets/workload-spiffe-credentials');
    mkdirSync(aCerts, { recursive: true });
    for (const d of [aRoot, join(aRoot, 'var'), join(aRoot, 'var/run'), join(aRoot, 'var/run/secrets')]) chmodSync(d, 0o755);
    skiff(['ca', 'issue', '--ns', 'default', '--sa', 'productpage', '--ca-dir', join(dir, 'ca'), '--out', aCerts]);
    giveToProxy(aCerts);
    // Pod B: a directory given with --certs.
    skiff(['ca', 'issue', '--ns', 'default', '--sa', 'reviews', '--ca-dir', join(dir, 'ca'), '--out', join(dir, 'b-certs')]);
    giveToProxy(join(dir, 'b-certs'));

    // One ADS server per pod, on unix sockets the proxy (uid 1337) may connect to.
    for (const name of ['a', 'b'] as const) {
      const socketPath = join(dir, `ads-${name}.sock`);
      ads[name] = await AdsServer.start({ socketPath });
      chmodSync(socketPath, 0o777);
    }
    const a = ads.a!;
    a.setResources(TypeUrl.cluster, clustersForA());
    a.setResources(TypeUrl.endpoints, endpointsForA());
    a.setResources(TypeUrl.listener, listenersForA('PassthroughCluster'));
    a.setResources(TypeUrl.routes, [vipRouteConfig(REVIEWS, 9080, [{ to: REVIEWS_CLUSTER }])]);
    const b = ads.b!;
    b.setResources(TypeUrl.cluster, clustersForB());
    b.setResources(TypeUrl.endpoints, []);
    b.setResources(TypeUrl.listener, [virtualOutbound(), virtualInbound(inboundPortsOfB('PERMISSIVE'))]);
    b.setResources(TypeUrl.routes, []);

    net = new PodNetwork(SUBNET, 'fd00:104::');
    const hosts = { reviews: REVIEWS_VIP, [REVIEWS]: REVIEWS_VIP, echo: ECHO_VIP, [ECHO]: ECHO_VIP };
    net.addPod('a', 2, hosts);
    net.addPod('b', 3, hosts);
    const apps = [
      net.start('b', NODE, [APPS, 'http', 'reviews-v1', String(V1_PORT)]),
      net.start('b', NODE, [APPS, 'http', 'reviews-v2', String(V2_PORT)]),
      net.start('b', NODE, [APPS, 'echo', 'echo', String(ECHO_PORT)]),
      net.start('b', NODE, [APPS, 'http', 'other', String(OTHER_PORT)]),
    ];
    await Promise.all(apps.map((p) => p.waitFor(/listening/)));
    for (const name of ['a', 'b']) {
      const init = await net.exec(name, NODE, [CLI, 'iptables', ...INIT_ARGS]);
      expect(init.code, init.stderr).toBe(0);
    }
    const env = (app: string, ip: string): Record<string, string> => ({
      POD_NAME: `${app}-v1-5d8b8f7c9-x2x7q`,
      POD_NAMESPACE: 'default',
      INSTANCE_IP: ip,
      ISTIO_METAJSON_LABELS: JSON.stringify({ app, version: 'v1' }),
      ISTIO_META_CLUSTER_ID: 'Kubernetes',
    });
    // A: pilot-agent's command line, in its working directory (where Istio mounts the credentials).
    sidecars['a'] = net.start(
      'a',
      'sh',
      ['-c', `cd '${aRoot}' && exec "$0" "$@"`, NODE, CLI, 'proxy', 'sidecar', '--discoveryAddress', join(dir, 'ads-a.sock'), '--controlPlaneAuthPolicy', 'NONE', '--domain', 'default.svc.cluster.local', '--concurrency', '1',
        // The rest of Istio's injection template: accepted and logged.
        '--proxyLogLevel=info', '--proxyComponentLogLevel=misc:error', '--log_output_level=default:info'],
      { uid: PROXY_UID, env: env('productpage', POD_A) },
    );
    sidecars['b'] = net.start('b', NODE, [CLI, 'run', '--mode', 'sidecar', '--xds', join(dir, 'ads-b.sock'), '--certs', join(dir, 'b-certs')], { uid: PROXY_UID, env: env('reviews', POD_B) });
    await Promise.all(Object.values(sidecars).map((s) => s.waitFor(/ready: config version/, 20_000)));
    // Each sidecar loaded its workload certificate and ACKed every type its server sent.
    for (const name of ['a', 'b'] as const) {
      const server = ads[name]!;
      expect(server.nacks(TypeUrl.listener).concat(server.nacks(TypeUrl.cluster), server.nacks(TypeUrl.routes), server.nacks(TypeUrl.endpoints)), server.describe()).toEqual([]);
    }
  }, 60_000);

  afterAll(async () => {
    await net?.destroy();
    await ads.a?.close();
    await ads.b?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('HTTP to a service VIP goes through its <vip>_<port> listener, per-VIP RDS and EDS over mTLS to B’s inbound port chain', async () => {
    // The node each sidecar presented: pilot-agent's id for a sidecar at its pod address.
    expect(ads.a!.requests.find((r) => r.node !== undefined)?.node).toMatchObject({ id: `sidecar~${POD_A}~productpage-v1-5d8b8f7c9-x2x7q.default~default.svc.cluster.local` });
    expect(ads.b!.requests.find((r) => r.node !== undefined)?.node).toMatchObject({ id: `sidecar~${POD_B}~reviews-v1-5d8b8f7c9-x2x7q.default~default.svc.cluster.local` });
    // A's sidecar asked for the per-VIP route configuration and the EDS assignments by name.
    expect(ads.a!.acks(TypeUrl.routes).some((r) => r.resourceNames.includes(REVIEWS_ROUTE))).toBe(true);
    expect(ads.a!.acks(TypeUrl.endpoints).some((r) => r.resourceNames.includes(REVIEWS_CLUSTER) && r.resourceNames.includes(ECHO_CLUSTER))).toBe(true);

    const forged = `By=spiffe://cluster.local/ns/default/sa/reviews;URI=spiffe://cluster.local/ns/default/sa/admin`;
    const r = await curl(['-H', `x-forwarded-client-cert: ${forged}`, 'http://reviews:9080/productpage']);
    expect(r.code, r.stderr).toBe(0);
    const body = JSON.parse(r.stdout) as { name: string; peer: string; xfcc: string };
    expect(body.name).toBe('reviews-v1');
    // B's sidecar terminated A's mTLS (A's identity, never the forged one) and connected to the
    // application from 127.0.0.6 (the inbound|9080|| cluster's upstream_bind_config).
    expect(body.xfcc).toMatch(/^By=spiffe:\/\/cluster\.local\/ns\/default\/sa\/reviews;Hash=[0-9a-f]{64};Subject="";URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/productpage$/);
    expect(body.peer).toBe('127.0.0.6');
    // Auto mTLS follows the endpoint metadata: the same endpoint without tlsMode istio (pushed
    // over EDS) gets plaintext, which B's PERMISSIVE port takes without a client identity.
    await push('a', TypeUrl.endpoints, [podAssignment(REVIEWS_CLUSTER, [{ address: POD_B, port: V1_PORT }]), ...endpointsForA().slice(1)]);
    const plaintext = await curl(['http://reviews:9080/productpage']);
    expect(plaintext.code, plaintext.stderr).toBe(0);
    expect(JSON.parse(plaintext.stdout)).toMatchObject({ name: 'reviews-v1' });
    expect((JSON.parse(plaintext.stdout) as { xfcc?: string }).xfcc).toBeUndefined();
    await push('a', TypeUrl.endpoints, endpointsForA());
    expect((JSON.parse((await curl(['http://reviews:9080/'])).stdout) as { xfcc?: string }).xfcc).toMatch(/URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/productpage$/);
    // Under PERMISSIVE (B's raw_buffer chain for the port) plaintext from outside the mesh is
    // served too, without a client identity: A's namespace as uid 1337 is not captured.
    const plain = await curl([`http://${POD_B}:${V1_PORT}/`], { uid: PROXY_UID });
    expect(plain.code, plain.stderr).toBe(0);
    expect(JSON.parse(plain.stdout)).toMatchObject({ name: 'reviews-v1' });
    expect((JSON.parse(plain.stdout) as { xfcc?: string }).xfcc).toBeUndefined();
  });

  it('routes follow a RouteConfiguration pushed over RDS: a header match, then weighted clusters', async () => {
    await push('a', TypeUrl.routes, [
      vipRouteConfig(REVIEWS, 9080, [
        { header: { name: 'end-user', exact: 'jason' }, to: REVIEWS_V2 },
        {
          to: [
            { name: REVIEWS_V1, weight: 50 },
            { name: REVIEWS_V2, weight: 50 },
          ],
        },
      ]),
    ]);
    const jason = await getMany('http://reviews:9080/', 5, ['end-user: jason']);
    expect(jason.map((b) => b.name)).toEqual(Array(5).fill('reviews-v2'));
    // v2's endpoint is reached over mTLS too (its subset cluster's SNI and the same identity).
    for (const b of jason) expect(b.xfcc).toMatch(/URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/productpage$/);
    const split = await getMany('http://reviews:9080/', 30);
    const counts = { v1: split.filter((b) => b.name === 'reviews-v1').length, v2: split.filter((b) => b.name === 'reviews-v2').length };
    expect(counts.v1 + counts.v2).toBe(30);
    // 50/50 over 30 requests: both are chosen (all on one side has probability 2^-29).
    expect(counts.v1, JSON.stringify(counts)).toBeGreaterThan(0);
    expect(counts.v2, JSON.stringify(counts)).toBeGreaterThan(0);

    // All of it to v2, then back to the service's own cluster.
    await push('a', TypeUrl.routes, [vipRouteConfig(REVIEWS, 9080, [{ to: [{ name: REVIEWS_V2, weight: 100 }] }])]);
    expect((await getMany('http://reviews:9080/', 5)).map((b) => b.name)).toEqual(Array(5).fill('reviews-v2'));
    await push('a', TypeUrl.routes, [vipRouteConfig(REVIEWS, 9080, [{ to: REVIEWS_CLUSTER }])]);
    expect((await getMany('http://reviews:9080/', 3)).map((b) => b.name)).toEqual(Array(3).fill('reviews-v1'));
  });

  it('TCP to a service VIP goes through its tcp_proxy listener and EDS cluster, mTLS between the sidecars', async () => {
    const r = await pod().exec('a', NODE, [APPS, 'tcp-client', 'echo', String(ECHO_PORT), 'ping', '3']);
    expect(r.stdout, r.stderr).toBe('echo:ping\n'.repeat(3));
    // B's sidecar saw these connections over mTLS, from A's identity.
    const stats = await pod().exec('b', 'curl', ['-s', '--max-time', '5', 'http://127.0.0.1:15000/stats/prometheus']);
    const opened = stats.stdout
      .split('\n')
      .find((l) => l.startsWith('istio_tcp_connections_opened_total{') && l.includes('reporter="destination"') && l.includes(`source_principal="${PRODUCTPAGE_ID}"`) && l.includes('connection_security_policy="mutual_tls"'));
    expect(opened, stats.stdout).toBeDefined();
    expect(Number(opened!.split(' ').pop())).toBeGreaterThanOrEqual(3);
  });

  it('STRICT: a virtualInbound with only mTLS chains for a port refuses plaintext there; A’s sidecar still gets through', async () => {
    await push('b', TypeUrl.listener, [virtualOutbound(), virtualInbound(inboundPortsOfB('STRICT'))]);
    // Plaintext from A's namespace as uid 1337 (not captured): refused on the STRICT ports…
    const plainHttp = await curl([`http://${POD_B}:${V1_PORT}/`], { uid: PROXY_UID });
    expect(plainHttp.code).not.toBe(0);
    expect(plainHttp.stdout).toBe('');
    const plainTcp = await pod().exec('a', NODE, [APPS, 'tcp-client', POD_B, String(ECHO_PORT), 'ping', '1'], { uid: PROXY_UID });
    expect(plainTcp.stdout).not.toContain('echo:ping');
    // …but not on a port that stayed PERMISSIVE (v2's), nor on one only the catch-all chains serve.
    const permissive = await curl([`http://${POD_B}:${V2_PORT}/`], { uid: PROXY_UID });
    expect(JSON.parse(permissive.stdout)).toMatchObject({ name: 'reviews-v2' });
    const other = await curl([`http://${POD_B}:${OTHER_PORT}/`], { uid: PROXY_UID });
    expect(JSON.parse(other.stdout)).toMatchObject({ name: 'other' });
    // A's sidecar speaks mTLS: HTTP and TCP still get through.
    const r = await curl(['http://reviews:9080/']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: 'reviews-v1' });
    expect((JSON.parse(r.stdout) as { xfcc: string }).xfcc).toMatch(/URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/productpage$/);
    const tcp = await pod().exec('a', NODE, [APPS, 'tcp-client', 'echo', String(ECHO_PORT), 'ping', '1']);
    expect(tcp.stdout).toBe('echo:ping\n');
  });

  it('REGISTRY_ONLY: a virtualOutbound whose catch-all is BlackHoleCluster closes connections to unknown destinations; services still work', async () => {
    // Under ALLOW_ANY, an address no listener names passes through (to B's catch-all inbound).
    const before = await curl([`http://${POD_B}:${OTHER_PORT}/`]);
    expect(before.code, before.stderr).toBe(0);
    expect(JSON.parse(before.stdout)).toMatchObject({ name: 'other' });

    await push('a', TypeUrl.listener, listenersForA('BlackHoleCluster'));
    const unknown = await curl([`http://${POD_B}:${OTHER_PORT}/`]);
    // curl: 52 (empty reply) or 56 (connection reset): closed, nothing answered.
    expect([52, 56], unknown.stderr).toContain(unknown.code);
    expect(unknown.stdout).toBe('');
    // The services A's listeners name still work.
    const known = await curl(['http://reviews:9080/']);
    expect(known.code, known.stderr).toBe(0);
    expect(JSON.parse(known.stdout)).toMatchObject({ name: 'reviews-v1' });
    const tcp = await pod().exec('a', NODE, [APPS, 'tcp-client', 'echo', String(ECHO_PORT), 'ping', '1']);
    expect(tcp.stdout).toBe('echo:ping\n');
  });

  it('RBAC over xDS on B’s inbound: an HTTP ALLOW policy for A’s identity on GET /allowed, a network deny-all on TCP; lifted by a push without them', async () => {
    const inboundOfB = (): object => virtualInbound(inboundPortsOfB('PERMISSIVE'));
    // Both principal forms istiod has written (filter_state since 1.20, authenticated before),
    // and both forms of a deny-all network RBAC (istiod's `rules: {}`, and ALLOW spelled out).
    for (const [principalForm, denyAll] of [
      ['filter_state', {}],
      ['authenticated', { action: 'ALLOW' }],
    ] as const) {
      // (The policy is named after the form: both forms mean the same, and a push that changes
      // nothing in skiff's model is not applied again.)
      const http = httpRbacFilter({ action: 'ALLOW', policies: { [`ns[default]-policy[reviews-${principalForm}]-rule[0]`]: istioAllowRule({ principal: PRODUCTPAGE_ID, method: 'GET', pathPrefix: '/allowed', principalForm }) } });
      await push('b', TypeUrl.listener, [virtualOutbound(), withInboundRbac(inboundOfB(), { http, tcp: networkRbacFilter(denyAll) })]);
      // A's identity (over mTLS, through A's sidecar), GET, /allowed: reaches B's application.
      const allowed = await request(['http://reviews:9080/allowed/x']);
      expect(allowed.status, `${principalForm}: ${allowed.body}`).toBe(200);
      expect(JSON.parse(allowed.body)).toMatchObject({ name: 'reviews-v1' });
      expect((JSON.parse(allowed.body) as { xfcc: string }).xfcc).toMatch(/URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/productpage$/);
      // Another path, or another method: Envoy's 403 from B's sidecar.
      expect(await request(['http://reviews:9080/other']), principalForm).toEqual({ status: 403, body: 'RBAC: access denied' });
      expect(await request(['-X', 'POST', 'http://reviews:9080/allowed']), principalForm).toEqual({ status: 403, body: 'RBAC: access denied' });
      // The catch-all HTTP chains carry the policy too: the same path as A's identity, then
      // without any identity (plaintext from A as uid 1337, not captured), on a port of its own
      // and on a port only the catch-all serves.
      expect(await request([`http://${POD_B}:${V1_PORT}/allowed`], { uid: PROXY_UID }), principalForm).toEqual({ status: 403, body: 'RBAC: access denied' });
      expect(await request([`http://${POD_B}:${OTHER_PORT}/allowed`], { uid: PROXY_UID }), principalForm).toEqual({ status: 403, body: 'RBAC: access denied' });
      // TCP: A's mTLS connection and a plaintext one are closed without reaching the echo.
      expect(await echoThroughA(), principalForm).not.toContain('echo:');
      expect(await rawToB(ECHO_PORT, 'ping'), principalForm).not.toContain('echo:');
    }
    // The same chains without RBAC filters: everything is allowed again.
    await push('b', TypeUrl.listener, [virtualOutbound(), inboundOfB()]);
    const other = await request(['http://reviews:9080/other']);
    expect(other.status, other.body).toBe(200);
    expect(JSON.parse(other.body)).toMatchObject({ name: 'reviews-v1' });
    expect((await request([`http://${POD_B}:${V1_PORT}/other`], { uid: PROXY_UID })).status).toBe(200);
    expect(await echoThroughA()).toBe('echo:ping\n');
    expect(await rawToB(ECHO_PORT, 'ping')).toBe('echo:ping\n');
  });

  it('per-route RBAC (RBACPerRoute) on B’s inbound routes: one route turns the policies off, another replaces them', async () => {
    const T = 'type.googleapis.com/';
    const perRoute = (rbac?: object): object => ({ 'envoy.filters.http.rbac': { '@type': `${T}envoy.extensions.filters.http.rbac.v3.RBACPerRoute`, ...(rbac !== undefined ? { rbac } : {}) } });
    const postOnly = { rules: { action: 'ALLOW', policies: { 'post-only': { permissions: [{ header: { name: ':method', string_match: { exact: 'POST' } } }], principals: [{ any: true }] } } } };
    const extraRoutes = [
      { match: { prefix: '/open' }, route: { cluster: `inbound|${V1_PORT}||`, timeout: '0s' }, name: 'open', typed_per_filter_config: perRoute() },
      { match: { prefix: '/post-only' }, route: { cluster: `inbound|${V1_PORT}||`, timeout: '0s' }, name: 'post-only', typed_per_filter_config: perRoute(postOnly) },
    ];
    // Port 9080's chains get the two routes first; the listener denies everything else.
    const listener = JSON.parse(JSON.stringify(withInboundRbac(virtualInbound(inboundPortsOfB('PERMISSIVE')), { http: httpRbacFilter({ action: 'ALLOW' }) }))) as {
      filter_chains: Array<{ filter_chain_match?: { destination_port?: number }; filters: Array<{ typed_config: { route_config?: { virtual_hosts: Array<{ routes: object[] }> } } }> }>;
    };
    for (const chain of listener.filter_chains) {
      if (chain.filter_chain_match?.destination_port !== V1_PORT) continue;
      for (const f of chain.filters) {
        const vh = f.typed_config.route_config?.virtual_hosts[0];
        if (vh !== undefined) vh.routes = [...extraRoutes, ...vh.routes];
      }
    }
    await push('b', TypeUrl.listener, [virtualOutbound(), listener]);
    const open = await request(['http://reviews:9080/open']);
    expect(open.status, open.body).toBe(200);
    expect(JSON.parse(open.body)).toMatchObject({ name: 'reviews-v1' });
    expect(await request(['http://reviews:9080/post-only'])).toEqual({ status: 403, body: 'RBAC: access denied' });
    expect((await request(['-X', 'POST', 'http://reviews:9080/post-only'])).status).toBe(200);
    expect(await request(['http://reviews:9080/other'])).toEqual({ status: 403, body: 'RBAC: access denied' });
    // Without a route of its own, plaintext to the catch-all is held to the listener's policies.
    expect(await request([`http://${POD_B}:${OTHER_PORT}/open`], { uid: PROXY_UID })).toEqual({ status: 403, body: 'RBAC: access denied' });
    await push('b', TypeUrl.listener, [virtualOutbound(), virtualInbound(inboundPortsOfB('PERMISSIVE'))]);
  });

  it('inbound protocols by chain: a port with only tcp_proxy chains proxies HTTP bytes as TCP; a port with only HTTP chains closes other bytes', async () => {
    // 9080: HTTP chains only (mTLS and plaintext); 7000: tcp_proxy chains only; the catch-all
    // chains (8080) hold both.
    await push('b', TypeUrl.listener, [
      virtualOutbound(),
      virtualInbound([
        { port: V1_PORT, protocol: 'http', mode: 'PERMISSIVE', host: REVIEWS },
        { port: ECHO_PORT, protocol: 'tcp', mode: 'PERMISSIVE', host: ECHO },
      ]),
    ]);
    // Plaintext HTTP bytes to the TCP port: proxied as they are (Envoy would not parse them; an
    // HTTP hop would have rewritten the request and added headers), echoed back verbatim.
    const get = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n';
    const echoed = await rawToB(ECHO_PORT, get);
    expect(echoed.startsWith('echo:GET / HTTP/1.1\r\nHost: x\r\n'), JSON.stringify(echoed)).toBe(true);
    // (the echo prefixes each chunk it reads; the bytes may arrive in more than one)
    expect(echoed.replaceAll('echo:', '')).toBe(`${get}\n`);
    // Bytes that are not HTTP to the HTTP-only port: closed, never reaching the application
    // (whose HTTP server would have answered 400).
    const garbage = await rawToB(V1_PORT, 'hello\n');
    expect(garbage, JSON.stringify(garbage)).toMatch(/^(error \w+)?\n$/);
    // The same bytes to a port the catch-all serves (HTTP and TCP chains): proxied to its
    // application, which answers them with a 400.
    expect(await rawToB(OTHER_PORT, 'hello\n')).toContain('HTTP/1.1 400');
    // The HTTP port still serves HTTP, plaintext and over mTLS from A's sidecar.
    const plain = await request([`http://${POD_B}:${V1_PORT}/`], { uid: PROXY_UID });
    expect(plain.status, plain.body).toBe(200);
    expect(JSON.parse(plain.body)).toMatchObject({ name: 'reviews-v1' });
    const meshed = await request(['http://reviews:9080/']);
    expect(meshed.status, meshed.body).toBe(200);
    expect(JSON.parse(meshed.body)).toMatchObject({ name: 'reviews-v1' });
  });

  it('without virtualInbound, inbound connections are closed; pushing it back restores service', async () => {
    await push('b', TypeUrl.listener, [virtualOutbound()]);
    // Plaintext from A as uid 1337: closed without an answer (curl 52: empty reply, 56: reset).
    const direct = await curl([`http://${POD_B}:${V1_PORT}/`], { uid: PROXY_UID });
    expect([52, 56], `${direct.code} ${direct.stderr}`).toContain(direct.code);
    expect(direct.stdout).toBe('');
    expect(await rawToB(ECHO_PORT, 'ping')).not.toContain('echo:');
    // From A's sidecar too: TCP through the echo VIP (mTLS) is closed, and HTTP gets no answer
    // from B's app, even over a pooled connection opened before the push (B's sidecar resets
    // requests on connections whose listener is gone).
    expect(await echoThroughA()).not.toContain('echo:');
    const refused = await request(['http://reviews:9080/']);
    expect(refused.status, refused.body).toBe(503);

    await push('b', TypeUrl.listener, [virtualOutbound(), virtualInbound(inboundPortsOfB('PERMISSIVE'))]);
    const back = await request([`http://${POD_B}:${V1_PORT}/`], { uid: PROXY_UID });
    expect(back.status, back.body).toBe(200);
    expect(JSON.parse(back.body)).toMatchObject({ name: 'reviews-v1' });
    const viaA = await request(['http://reviews:9080/']);
    expect(viaA.status, viaA.body).toBe(200);
    expect((JSON.parse(viaA.body) as { xfcc: string }).xfcc).toMatch(/URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/productpage$/);
    expect(await echoThroughA()).toBe('echo:ping\n');
  });
});
