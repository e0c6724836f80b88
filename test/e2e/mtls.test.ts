/**
 * Mutual TLS between sidecars, end to end: two pods (network namespaces) with certificates from
 * `skiff ca`, ServiceEntry endpoints marked as sidecars (auto mTLS) and a mesh-wide
 * PeerAuthentication. A capture on the server pod's interface (tcpdump) shows TLS; its
 * application sees the client's identity in x-forwarded-client-cert; under STRICT, plaintext
 * and every bad certificate are refused (openssl s_client is the client); PERMISSIVE accepts
 * both. Needs root, iproute2, iptables, openssl and tcpdump; elsewhere it is skipped with the
 * reason.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, CLI } from '../helpers/cli.js';
import { jwksJson, now, rsaKey, signJwt } from '../helpers/jwt.js';
import { netnsUnavailable, PodNetwork } from '../helpers/netns.js';

const SKIP = netnsUnavailable(['iptables', 'curl', 'setpriv', 'openssl', 'tcpdump']);
const APPS = fileURLToPath(new URL('./apps.mjs', import.meta.url));
const NODE = process.execPath;
const PROXY_UID = 1337;
const INIT_ARGS = ['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-x', '', '-b', '*', '-d', '15020'];
const POD_B = '10.102.0.3';
const VIP = '10.96.2.10';
const ECHO_VIP = '10.96.2.20';
const GREETER_VIP = '10.96.2.30';

const peerAuthentication = (mode: string): string => `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: ${mode}}}
`;

const SERVICES = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews]
  addresses: [${VIP}]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  location: MESH_INTERNAL
  resolution: STATIC
  endpoints: [{address: ${POD_B}, serviceAccount: reviews, labels: {security.istio.io/tlsMode: istio}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo}
spec:
  hosts: [echo]
  addresses: [${ECHO_VIP}]
  ports: [{number: 7000, name: tcp, protocol: TCP}]
  location: MESH_INTERNAL
  resolution: STATIC
  endpoints: [{address: ${POD_B}, serviceAccount: reviews, labels: {security.istio.io/tlsMode: istio}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: greeter}
spec:
  hosts: [greeter]
  addresses: [${GREETER_VIP}]
  ports: [{number: 9090, name: grpc, protocol: GRPC}]
  location: MESH_INTERNAL
  resolution: STATIC
  endpoints: [{address: ${POD_B}, serviceAccount: reviews, labels: {security.istio.io/tlsMode: istio}}]
`;

describe.skipIf(SKIP !== undefined)(`mTLS between sidecars${SKIP === undefined ? '' : ` (skipped: ${SKIP})`}`, () => {
  let net: PodNetwork;
  let dir: string;
  const cfg = (): string => join(dir, 'config');

  const skiff = (args: string[]): void => {
    const r = spawnSync(NODE, [CLI, ...args], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
  };
  const issue = (caDir: string, sa: string, out: string, extra: string[] = []): void =>
    skiff(['ca', 'issue', '--ns', 'default', '--sa', sa, '--ca-dir', caDir, '--out', out, ...extra]);
  /** Files the proxy (uid 1337) must read. */
  const giveToProxy = (path: string): void => {
    chownSync(path, PROXY_UID, PROXY_UID);
    for (const f of readdirSync(path)) chownSync(join(path, f), PROXY_UID, PROXY_UID);
  };
  const adminVersion = async (pod: string): Promise<number> => {
    const r = await net.exec(pod, 'curl', ['-s', '--max-time', '2', 'http://127.0.0.1:15000/config_status']);
    return r.code === 0 ? (JSON.parse(r.stdout) as { version: number }).version : -1;
  };
  const setMode = async (mode: string): Promise<void> => {
    const before = await adminVersion('b');
    writeFileSync(join(cfg(), 'peer-authentication.yaml'), peerAuthentication(mode));
    const deadline = Date.now() + 10_000;
    while ((await adminVersion('b')) <= before) {
      if (Date.now() > deadline) throw new Error('the sidecar did not reload');
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  /** openssl s_client from pod A as uid 1337 (not captured) straight to pod B's application port. */
  const sClient = (certDir: string | null) =>
    net.exec(
      'a',
      'sh',
      [
        '-c',
        `printf 'GET / HTTP/1.1\\r\\nHost: reviews\\r\\nConnection: close\\r\\n\\r\\n' | openssl s_client -quiet -connect ${POD_B}:9080 -alpn istio-http/1.1 -servername 'outbound|9080||reviews.default.svc.cluster.local'` +
          (certDir === null ? '' : ` -cert ${certDir}/cert-chain.pem -key ${certDir}/key.pem -CAfile ${certDir}/root-cert.pem`) +
          ' 2>/dev/null',
      ],
      { uid: PROXY_UID, timeoutMs: 10_000 },
    );

  beforeAll(async () => {
    assertBuilt();
    dir = mkdtempSync(join(tmpdir(), 'skiff-mtls-'));
    chmodSync(dir, 0o755);
    skiff(['ca', 'init', '--dir', join(dir, 'ca')]);
    skiff(['ca', 'init', '--dir', join(dir, 'foreign-ca')]);
    issue(join(dir, 'ca'), 'productpage', join(dir, 'a'));
    issue(join(dir, 'ca'), 'reviews', join(dir, 'b'));
    issue(join(dir, 'foreign-ca'), 'productpage', join(dir, 'foreign'));
    for (const d of ['a', 'b', 'foreign']) giveToProxy(join(dir, d));
    spawnSync('mkdir', ['-p', cfg()]);
    chmodSync(cfg(), 0o755);
    writeFileSync(join(cfg(), 'services.yaml'), SERVICES);
    writeFileSync(join(cfg(), 'peer-authentication.yaml'), peerAuthentication('STRICT'));

    net = new PodNetwork('10.102.0', 'fd00:102::');
    const hosts = { reviews: VIP, echo: ECHO_VIP, greeter: GREETER_VIP };
    net.addPod('a', 2, hosts);
    net.addPod('b', 3, hosts);
    const apps = [
      net.start('b', NODE, [APPS, 'http', 'reviews', '9080']),
      net.start('b', NODE, [APPS, 'echo', 'echo', '7000']),
      net.start('b', NODE, [APPS, 'h2', 'greeter', '9090']),
    ];
    await Promise.all(apps.map((a) => a.waitFor(/listening/)));
    const sidecars = [];
    // Pod a's proxy runs two workers, as istio-proxy does in pods; b's one. Each has the
    // workload metadata an injected pod's environment gives it.
    const pods = [
      { pod: 'a', app: 'productpage', extra: ['--concurrency', '2'] },
      { pod: 'b', app: 'reviews', extra: [] },
    ] as const;
    for (const { pod, app, extra } of pods) {
      const init = await net.exec(pod, NODE, [CLI, 'iptables', ...INIT_ARGS]);
      expect(init.code, init.stderr).toBe(0);
      const env = {
        POD_NAME: `${app}-v1-5d8b8f7c9-x2x7q`,
        POD_NAMESPACE: 'default',
        ISTIO_METAJSON_LABELS: JSON.stringify({ app, version: 'v1' }),
        ISTIO_META_CLUSTER_ID: 'Kubernetes',
      };
      sidecars.push(net.start(pod, NODE, [CLI, 'run', '--mode', 'sidecar', '-c', cfg(), '--certs', join(dir, pod), ...extra], { uid: PROXY_UID, env }));
    }
    await Promise.all(sidecars.map((s) => s.waitFor(/ready: (config version|2 workers)/)));
    for (const s of sidecars) expect(s.output()).toMatch(/workload certificate spiffe:\/\/cluster\.local\/ns\/default\/sa\/\w+ loaded/);
  }, 60_000);

  afterAll(async () => {
    await net?.destroy();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('a capture on the pod\'s interface shows TLS between the sidecars, and none of the plaintext request', async () => {
    const pcap = join(dir, 'capture.pcap');
    const capture = net.start('b', 'tcpdump', ['-i', 'eth0', '--immediate-mode', '-U', '-w', pcap, 'tcp port 9080']);
    await capture.waitFor(/listening on eth0/);
    const r = await net.exec('a', 'curl', ['-s', '--max-time', '5', '-H', 'x-marker: plaintext-would-show-this', 'http://reviews:9080/']);
    expect(r.code, r.stderr).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 300));
    capture.child.kill('SIGINT');
    await new Promise((resolve) => capture.child.once('exit', resolve));
    const bytes = readFileSync(pcap);
    // The first connection between the sidecars: a TLS handshake record (content type 22, version
    // 3.x) with Istio's ALPN in the ClientHello…
    expect(bytes.includes(Buffer.from([0x16, 0x03]))).toBe(true);
    expect(bytes.includes(Buffer.from('istio-http/1.1'))).toBe(true);
    // …and nothing of the HTTP request in the clear.
    expect(bytes.includes(Buffer.from('plaintext-would-show-this'))).toBe(false);
    expect(bytes.includes(Buffer.from('GET / HTTP/1.1'))).toBe(false);
  });

  it('HTTP between the pods is mTLS: the application sees the caller identity in x-forwarded-client-cert, never a forged one', async () => {
    // The caller's own XFCC is dropped on the way out (Envoy's outbound SANITIZE).
    const forged = 'By=spiffe://cluster.local/ns/default/sa/reviews;URI=spiffe://cluster.local/ns/default/sa/admin';
    const r = await net.exec('a', 'curl', ['-s', '--max-time', '5', '-H', `x-forwarded-client-cert: ${forged}`, 'http://reviews:9080/']);
    expect(r.code, r.stderr).toBe(0);
    const body = JSON.parse(r.stdout) as { name: string; xfcc: string };
    expect(body.name).toBe('reviews');
    expect(body.xfcc).toMatch(/^By=spiffe:\/\/cluster\.local\/ns\/default\/sa\/reviews;Hash=[0-9a-f]{64};Subject="";URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/productpage$/);
  });

  it('HTTP/2 (a GRPC port) between the pods: h2 over istio-h2 mTLS, and HTTP/2 to the application', async () => {
    const pcap = join(dir, 'capture-h2.pcap');
    const capture = net.start('b', 'tcpdump', ['-i', 'eth0', '--immediate-mode', '-U', '-w', pcap, 'tcp port 9090']);
    await capture.waitFor(/listening on eth0/);
    const r = await net.exec('a', 'curl', ['-s', '--max-time', '5', '--http2-prior-knowledge', 'http://greeter:9090/hello']);
    await new Promise((resolve) => setTimeout(resolve, 300));
    capture.child.kill('SIGINT');
    await new Promise((resolve) => capture.child.once('exit', resolve));
    expect(r.code, r.stderr).toBe(0);
    const body = JSON.parse(r.stdout) as { name: string; protocol: string; path: string; xfcc: string };
    expect(body).toMatchObject({ name: 'greeter', protocol: 'h2', path: '/hello' });
    expect(body.xfcc).toMatch(/URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/productpage$/);
    expect(readFileSync(pcap).includes(Buffer.from('istio-h2'))).toBe(true);
  });

  it('TCP between the pods is mTLS too (STRICT would refuse it otherwise)', async () => {
    const r = await net.exec('a', NODE, [APPS, 'tcp-client', 'echo', '7000', 'ping', '3']);
    expect(r.stdout).toBe('echo:ping\n'.repeat(3));
  });

  it('both sidecars report Istio metrics: peers named by metadata exchange and mTLS identities', async () => {
    // The client's own metadata headers are dropped; the server's application sees none at all.
    const r = await net.exec('a', 'curl', ['-s', '--max-time', '5', '-H', 'x-envoy-peer-metadata: Zm9yZ2Vk', 'http://reviews:9080/metrics-check']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: 'reviews', peerMetadata: false });
    const scrape = async (pod: string, port: number): Promise<string> => (await net.exec(pod, 'curl', ['-s', '--max-time', '5', `http://127.0.0.1:${port}/stats/prometheus`])).stdout;
    const series = (text: string, metric: string, match: Record<string, string>): string | undefined =>
      text.split('\n').find((l) => l.startsWith(`${metric}{`) && Object.entries(match).every(([k, v]) => l.includes(`${k}="${v}"`)));
    const productpage = 'spiffe://cluster.local/ns/default/sa/productpage';
    const reviews = 'spiffe://cluster.local/ns/default/sa/reviews';
    // The client side (two workers, summed by the primary on 15000 and 15090).
    for (const port of [15000, 15090]) {
      const client = await scrape('a', port);
      const line = series(client, 'istio_requests_total', { reporter: 'source', response_code: '200', destination_service: 'reviews.default.svc.cluster.local' });
      expect(line, client).toBeDefined();
      for (const [k, v] of Object.entries({
        source_workload: 'productpage-v1', source_canonical_service: 'productpage', source_principal: productpage, source_app: 'productpage', source_cluster: 'Kubernetes',
        destination_workload: 'reviews-v1', destination_workload_namespace: 'default', destination_principal: reviews, destination_canonical_service: 'reviews',
        destination_service_name: 'reviews', destination_cluster: 'Kubernetes', connection_security_policy: 'unknown',
      })) expect(line).toContain(`${k}="${v}"`);
    }
    // The server side.
    const server = await scrape('b', 15000);
    const inbound = series(server, 'istio_requests_total', { reporter: 'destination', response_code: '200' });
    expect(inbound, server).toBeDefined();
    for (const [k, v] of Object.entries({
      source_workload: 'productpage-v1', source_principal: productpage, source_app: 'productpage', destination_workload: 'reviews-v1',
      destination_principal: reviews, destination_service: 'reviews.default.svc.cluster.local', connection_security_policy: 'mutual_tls',
    })) expect(inbound).toContain(`${k}="${v}"`);
    // TCP: opened and closed connections and bytes, on both sides, with the mTLS identities.
    expect(series(server, 'istio_tcp_connections_opened_total', { reporter: 'destination', source_principal: productpage, connection_security_policy: 'mutual_tls' }), server).toBeDefined();
    expect(series(server, 'istio_tcp_received_bytes_total', { reporter: 'destination', request_protocol: 'tcp' }), server).toBeDefined();
    const client = await scrape('a', 15000);
    expect(series(client, 'istio_tcp_connections_closed_total', { reporter: 'source', destination_principal: reviews, destination_service_name: 'echo' }), client).toBeDefined();
  });

  it('STRICT refuses plaintext', async () => {
    const r = await net.exec('a', 'curl', ['-s', '--max-time', '5', `http://${POD_B}:9080/`], { uid: PROXY_UID });
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('');
  });

  it('STRICT accepts openssl s_client with a mesh certificate, and the application sees its identity', async () => {
    const r = await sClient(join(dir, 'a'));
    expect(r.stdout).toMatch(/^HTTP\/1\.1 200/);
    expect(r.stdout).toContain('"xfcc":"By=spiffe://cluster.local/ns/default/sa/reviews;');
  });

  it('STRICT refuses a certificate from a foreign CA, and a client without a certificate', async () => {
    const foreign = await sClient(join(dir, 'foreign'));
    expect(foreign.stdout).not.toMatch(/HTTP\/1\.1/);
    const none = await sClient(null);
    expect(none.stdout).not.toMatch(/HTTP\/1\.1/);
  });

  it('STRICT refuses an expired certificate', async () => {
    const expired = join(dir, 'expired');
    issue(join(dir, 'ca'), 'productpage', expired, ['--ttl', '1s']);
    giveToProxy(expired);
    await new Promise((r) => setTimeout(r, 1500));
    const r = await sClient(expired);
    expect(r.stdout).not.toMatch(/HTTP\/1\.1/);
  });

  it('PERMISSIVE accepts plaintext and mTLS on the same port', async () => {
    await setMode('PERMISSIVE');
    const plain = await net.exec('a', 'curl', ['-s', '--max-time', '5', `http://${POD_B}:9080/`], { uid: PROXY_UID });
    expect(plain.code, plain.stderr).toBe(0);
    // Plaintext carries no identity: any client-supplied header is removed.
    expect(JSON.parse(plain.stdout)).toMatchObject({ name: 'reviews' });
    expect((JSON.parse(plain.stdout) as { xfcc?: string }).xfcc).toBeUndefined();
    const mutual = await sClient(join(dir, 'a'));
    expect(mutual.stdout).toMatch(/^HTTP\/1\.1 200/);
    const mesh = await net.exec('a', 'curl', ['-s', '--max-time', '5', 'http://reviews:9080/']);
    expect((JSON.parse(mesh.stdout) as { xfcc: string }).xfcc).toContain('URI=spiffe://cluster.local/ns/default/sa/productpage');
  });

  it('AuthorizationPolicy: ALLOW by principal, method and path (403 RBAC: access denied otherwise); DENY closes a TCP port', async () => {
    // A TCP connection opened before the policies exist: it must not outlive them.
    const longLived = net.start('a', NODE, [APPS, 'tcp-idle', 'echo', '7000']);
    await new Promise((r) => setTimeout(r, 500));
    expect(longLived.output()).toBe('');
    const before = await adminVersion('b');
    writeFileSync(
      join(cfg(), 'authorization.yaml'),
      `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews-viewers, namespace: default}
spec:
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/productpage]}}]
    to: [{operation: {methods: [GET], paths: ["/allowed/*"]}}]
  - to: [{operation: {ports: ["7000"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-echo-for-productpage, namespace: default}
spec:
  action: DENY
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/productpage]}}]
    to: [{operation: {ports: ["7000"]}}]
`,
    );
    const deadline = Date.now() + 10_000;
    while ((await adminVersion('b')) <= before) {
      if (Date.now() > deadline) throw new Error('the sidecar did not reload');
      await new Promise((r) => setTimeout(r, 100));
    }
    const allowed = await net.exec('a', 'curl', ['-s', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code}', 'http://reviews:9080/allowed/1']);
    expect(allowed.stdout).toBe('200');
    const otherPath = await net.exec('a', 'curl', ['-s', '--max-time', '5', '-w', ' %{http_code}', 'http://reviews:9080/secret']);
    expect(otherPath.stdout).toBe('RBAC: access denied 403');
    // The path is normalized before the check: dot segments cannot climb out of /allowed/.
    const climb = await net.exec('a', 'curl', ['-s', '--max-time', '5', '--path-as-is', '-o', '/dev/null', '-w', '%{http_code}', 'http://reviews:9080/allowed/../secret']);
    expect(climb.stdout).toBe('403');
    const otherMethod = await net.exec('a', 'curl', ['-s', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'POST', 'http://reviews:9080/allowed/1']);
    expect(otherMethod.stdout).toBe('403');
    // Plaintext (PERMISSIVE still accepts it) carries no principal: not allowed.
    const plain = await net.exec('a', 'curl', ['-s', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code}', `http://${POD_B}:9080/allowed/1`], { uid: PROXY_UID });
    expect(plain.stdout).toBe('403');
    // The DENY policy wins over the ALLOW rule for port 7000: the connection is closed.
    const tcp = await net.exec('a', NODE, [APPS, 'tcp-client', 'echo', '7000', 'ping', '1']);
    expect(tcp.stdout).not.toContain('echo:ping');
    // The connection opened before was closed when the policy arrived.
    await longLived.waitFor(/closed after/, 5000);
  });

  it('RequestAuthentication: a valid JWT gives the request principal policies require; a bad one gets 401; none gets 403 where required', async () => {
    const key = rsaKey('e2e-key');
    const issuer = 'https://issuer.example.com';
    const token = (claims: Record<string, unknown>): string => signJwt(key, { iss: issuer, sub: 'alice', aud: 'reviews', exp: now() + 600, ...claims });
    const before = await adminVersion('b');
    writeFileSync(
      join(cfg(), 'jwt.yaml'),
      `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: default}
spec:
  jwtRules:
  - issuer: ${issuer}
    audiences: [reviews]
    jwks: '${jwksJson(key)}'
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: jwt-required, namespace: default}
spec:
  action: ALLOW
  rules:
  - from: [{source: {requestPrincipals: ["${issuer}/alice"]}}]
    to: [{operation: {paths: ["/jwt/*"]}}]
`,
    );
    const deadline = Date.now() + 10_000;
    while ((await adminVersion('b')) <= before) {
      if (Date.now() > deadline) throw new Error('the sidecar did not reload');
      await new Promise((r) => setTimeout(r, 100));
    }
    const call = (path: string, jwt?: string) =>
      net.exec('a', 'curl', ['-s', '--max-time', '5', '-w', ' %{http_code}', ...(jwt === undefined ? [] : ['-H', `Authorization: Bearer ${jwt}`]), `http://reviews:9080${path}`]);
    const valid = await call('/jwt/1', token({}));
    expect(valid.stdout).toMatch(/ 200$/);
    // The token is not forwarded to the application (forwardOriginalToken is false by default).
    expect(valid.stdout).toContain('"authorization":false');
    expect((await call('/jwt/1', token({ exp: now() - 600 }))).stdout).toBe('Jwt is expired 401');
    expect((await call('/jwt/1', token({ aud: 'other' }))).stdout).toBe('Audiences in Jwt are not allowed 403');
    expect((await call('/jwt/1', signJwt(rsaKey('e2e-key'), { iss: issuer, sub: 'alice', aud: 'reviews', exp: now() + 600 }))).stdout).toMatch(/ 401$/);
    expect((await call('/jwt/1')).stdout).toBe('RBAC: access denied 403');
    expect((await call('/jwt/1', token({ sub: 'bob' }))).stdout).toBe('RBAC: access denied 403');
  });
});
