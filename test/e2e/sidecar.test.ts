/**
 * Sidecar mode end to end, as pods on one machine: three network namespaces on a bridge, each
 * with an application, the rules of `skiff iptables` (Istio 1.3's init-container args) and skiff
 * in sidecar mode as uid 1337. The applications are configured with nothing: they use service
 * names from their /etc/hosts, which point at ServiceEntry VIPs. Needs root, iproute2 and
 * iptables (CI runs as root and installs them); elsewhere it is skipped with the reason.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, CLI } from '../helpers/cli.js';
import { netnsUnavailable, PodNetwork, type PodProcess } from '../helpers/netns.js';

const SKIP = netnsUnavailable(['iptables', 'curl', 'setpriv', 'openssl']);
const APPS = fileURLToPath(new URL('./apps.mjs', import.meta.url));
const NODE = process.execPath;
const PROXY_UID = 1337;
// Istio 1.3's init-container args, plus IPv6 rules (the pods are dual-stack).
const INIT_ARGS = ['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-x', '', '-b', '*', '-d', '15020', '--dual-stack'];

const VIPS = { reviews: '10.96.0.10', echo: '10.96.0.20', banner: '10.96.0.30' };
const POD_A = '10.100.0.2';
const POD_B = '10.100.0.3';
const POD_C = '10.100.0.4';
const POD_B6 = 'fd00:100::3';

const TCP_IDLE_MS = 1000;

const mesh = (mode: 'ALLOW_ANY' | 'REGISTRY_ONLY'): string => `
apiVersion: skiff.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  outboundTrafficPolicy: {mode: ${mode}}
  tcpIdleTimeout: ${TCP_IDLE_MS}ms
`;

const SERVICES = `
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews]
  addresses: [${VIPS.reviews}]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  location: MESH_INTERNAL
  resolution: STATIC
  endpoints:
  - {address: ${POD_B}, labels: {version: v1}}
  - {address: ${POD_C}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 70}
    - {destination: {host: reviews, subset: v2}, weight: 30}
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: echo}
spec:
  hosts: [echo]
  addresses: [${VIPS.echo}]
  ports: [{number: 7000, name: tcp-echo, protocol: TCP}]
  location: MESH_INTERNAL
  resolution: STATIC
  endpoints:
  - {address: ${POD_B}, labels: {version: v1}}
  - {address: ${POD_C}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: echo}
spec:
  host: echo
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  tcp:
  - match: [{port: 7000}]
    route:
    - {destination: {host: echo, subset: v1}, weight: 50}
    - {destination: {host: echo, subset: v2}, weight: 50}
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: banner}
spec:
  hosts: [banner]
  addresses: [${VIPS.banner}]
  ports: [{number: 3306, name: tcp-mysql, protocol: TCP}]
  location: MESH_INTERNAL
  resolution: STATIC
  endpoints: [{address: ${POD_C}}]
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: secure}
spec:
  hosts: [secure.example.com]
  ports: [{number: 8443, name: tls, protocol: TLS}]
  location: MESH_EXTERNAL
  resolution: STATIC
  endpoints:
  - {address: ${POD_B}, labels: {version: v1}}
  - {address: ${POD_C}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: secure}
spec:
  host: secure.example.com
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: secure}
spec:
  hosts: [secure.example.com]
  tls:
  - match: [{port: 8443, sniHosts: [secure.example.com]}]
    route: [{destination: {host: secure.example.com, subset: v2}}]
`;

describe.skipIf(SKIP !== undefined)(`sidecar mode across network namespaces${SKIP === undefined ? '' : ` (skipped: ${SKIP})`}`, () => {
  let net: PodNetwork;
  let configDir: string;
  let certDir: string;
  const sidecars = new Map<string, PodProcess>();

  const curl = (pod: string, args: readonly string[]) => net.exec(pod, 'curl', ['-s', '--max-time', '5', ...args]);
  const adminVersion = async (pod: string): Promise<number> => {
    const r = await curl(pod, ['http://127.0.0.1:15000/config_status']);
    return r.code === 0 ? (JSON.parse(r.stdout) as { version: number }).version : -1;
  };

  beforeAll(async () => {
    assertBuilt();
    configDir = mkdtempSync(join(tmpdir(), 'skiff-e2e-'));
    chmodSync(configDir, 0o755);
    writeFileSync(join(configDir, 'mesh.yaml'), mesh('ALLOW_ANY'));
    writeFileSync(join(configDir, 'services.yaml'), SERVICES);
    certDir = mkdtempSync(join(tmpdir(), 'skiff-e2e-certs-'));
    const key = join(certDir, 'key.pem');
    const cert = join(certDir, 'cert.pem');
    const openssl = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=secure.example.com', '-keyout', key, '-out', cert], { encoding: 'utf8' });
    expect(openssl.status, openssl.stderr).toBe(0);
    net = new PodNetwork();
    // secure.example.com resolves to an address nobody serves: the sidecar routes TLS by SNI.
    // other.example.com is outside the registry and resolves to pod B, to show TLS passthrough.
    const hosts = { reviews: VIPS.reviews, echo: VIPS.echo, banner: VIPS.banner, 'secure.example.com': '10.100.0.99', 'other.example.com': POD_B };
    net.addPod('a', 2, hosts);
    net.addPod('b', 3, hosts);
    net.addPod('c', 4, hosts);

    const apps = [
      net.start('b', NODE, [APPS, 'http', 'reviews-v1', '9080']),
      net.start('b', NODE, [APPS, 'echo', 'v1', '7000']),
      net.start('c', NODE, [APPS, 'http', 'reviews-v2', '9080']),
      net.start('c', NODE, [APPS, 'echo', 'v2', '7000']),
      net.start('c', NODE, [APPS, 'banner', '3306']),
      net.start('c', NODE, [APPS, 'http', 'unregistered', '8000']),
      net.start('c', NODE, [APPS, 'banner', '4444']),
      net.start('b', NODE, [APPS, 'tls', 'tls-v1', '8443', key, cert]),
      net.start('c', NODE, [APPS, 'tls', 'tls-v2', '8443', key, cert]),
    ];
    await Promise.all(apps.map((a) => a.waitFor(/listening/)));
    for (const pod of ['a', 'b', 'c']) {
      const init = await net.exec(pod, NODE, [CLI, 'iptables', ...INIT_ARGS]);
      expect(init.code, init.stderr).toBe(0);
      const sidecar = net.start(pod, NODE, [CLI, 'run', '--mode', 'sidecar', '-c', configDir], { uid: PROXY_UID });
      sidecars.set(pod, sidecar);
    }
    await Promise.all([...sidecars.values()].map((s) => s.waitFor(/ready: config version/)));
  }, 60_000);

  afterAll(async () => {
    await net?.destroy();
    for (const dir of [configDir, certDir]) if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('an application calling http://reviews:9080/ with no proxy settings gets the weighted routing, through both sidecars', async () => {
    const r = await curl('a', ['-w', '\\n', ...Array.from({ length: 40 }, () => 'http://reviews:9080/')]);
    expect(r.code, r.stderr).toBe(0);
    const answers = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { name: string; peer: string; host: string });
    expect(answers).toHaveLength(40);
    const names = new Set(answers.map((a) => a.name));
    expect(names).toEqual(new Set(['reviews-v1', 'reviews-v2']));
    // Each request crossed the destination pod's inbound sidecar, which connects from 127.0.0.6.
    expect(new Set(answers.map((a) => a.peer))).toEqual(new Set(['127.0.0.6']));
    expect(answers[0]!.host).toBe('reviews:9080');
  });

  it('a raw TCP service works through the sidecars, with the tcp route weights and half-close', async () => {
    const r = await net.exec('a', NODE, [APPS, 'tcp-client', 'echo', '7000', 'ping', '24']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(24);
    for (const l of lines) expect(['v1:ping', 'v2:ping']).toContain(l);
    expect(new Set(lines).size).toBe(2);
  });

  it('a server-first protocol on a port declared TCP does not hang (no sniffing outbound; inbound sniffing times out)', async () => {
    const r = await net.exec('a', NODE, [APPS, 'tcp-greeted', 'banner', '3306']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('HELLO 3306\n');
  });

  it('an undeclared destination passes through under ALLOW_ANY', async () => {
    const r = await curl('a', [`http://${POD_C}:8000/`]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: 'unregistered', peer: '127.0.0.6' });
  });

  it('a server-first protocol on an undeclared port passes through once the sniffing timeout expires', async () => {
    const r = await net.exec('a', NODE, [APPS, 'tcp-greeted', POD_C, '4444']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('HELLO 4444\n');
  });

  it('TLS is routed by SNI (a tls route with sniHosts picks the subset) and passed through opaquely', async () => {
    for (let i = 0; i < 6; i++) {
      const r = await net.exec('a', NODE, [APPS, 'tls-client', 'secure.example.com', '8443', 'secure.example.com']);
      expect(r.code, r.stderr).toBe(0);
      // The backend saw the client's own SNI: the handshake went end to end, untouched.
      expect(r.stdout).toBe('tls-v2:secure.example.com\n');
    }
  });

  it('TLS for a name outside the registry passes through to the address the client dialled', async () => {
    const r = await net.exec('a', NODE, [APPS, 'tls-client', 'other.example.com', '8443', 'other.example.com']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('tls-v1:other.example.com\n');
  });

  it('an idle TCP connection is closed after the idle timeout', async () => {
    const r = await net.exec('a', NODE, [APPS, 'tcp-idle', 'echo', '7000'], { timeoutMs: 10_000 });
    const m = /closed after (\d+)/.exec(r.stdout);
    expect(m, r.stdout + r.stderr).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThanOrEqual(TCP_IDLE_MS - 50);
  });

  it("the proxy's own traffic is not captured again: its connections hit the uid-1337 exemption, and nothing loops", async () => {
    const r = await net.exec('a', 'iptables', ['-t', 'nat', '-L', 'ISTIO_OUTPUT', '-v', '-n', '-x']);
    expect(r.code, r.stderr).toBe(0);
    const exemption = r.stdout.split('\n').find((l) => /RETURN/.test(l) && /owner UID match 1337/.test(l) && !/lo\s/.test(l) && !/!/.test(l.split('owner')[1] ?? ''));
    expect(exemption, r.stdout).toBeDefined();
    const packets = Number(exemption!.trim().split(/\s+/)[0]);
    expect(packets).toBeGreaterThan(0);
    // A loop would show as requests answered by the proxy itself (508) or never answered.
    const again = await curl('a', ['-o', '/dev/null', '-w', '%{http_code}', 'http://reviews:9080/']);
    expect(again.stdout).toBe('200');
  });

  it('IPv6 pod-to-pod traffic crosses both sidecars; the inbound one reaches the application from ::6', async () => {
    const r = await curl('a', [`http://[${POD_B6}]:9080/`]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: 'reviews-v1', peer: '::6' });
  });

  it("another pod dialling the sidecar's outbound port is not given a proxy into the pod's localhost", async () => {
    // B's sidecar passes this through to A, whose inbound sidecar hands it to A:15001 from
    // 127.0.0.6. Served as a proxy it would reach A's loopback-only status port and quit A.
    const r = await curl('b', ['-x', `http://${POD_A}:15001`, '-X', 'POST', 'http://127.0.0.1:15020/quitquitquit']);
    expect(r.stdout).not.toContain('OK');
    expect(await adminVersion('a')).toBeGreaterThan(0);
  });

  it('skiff wait succeeds against a ready sidecar', async () => {
    const r = await net.exec('a', NODE, [CLI, 'wait', '--timeoutSeconds', '5', '--periodMillis', '100']);
    expect(r.code, r.stderr).toBe(0);
  });

  it('under REGISTRY_ONLY an undeclared destination is blocked, HTTP to an unknown host gets 502, services still work', async () => {
    const before = await adminVersion('a');
    writeFileSync(join(configDir, 'mesh.yaml'), mesh('REGISTRY_ONLY'));
    const deadline = Date.now() + 10_000;
    while ((await adminVersion('a')) <= before) {
      if (Date.now() > deadline) throw new Error('the sidecar did not reload');
      await new Promise((r) => setTimeout(r, 100));
    }
    const blocked = await curl('a', ['-o', '/dev/null', '-w', '%{http_code}', `http://${POD_C}:8000/`]);
    expect(blocked.code).not.toBe(0);
    expect(blocked.stdout).toBe('000');
    const unknownHost = await curl('a', ['-o', '/dev/null', '-w', '%{http_code}', '-H', 'Host: unknown.example', 'http://reviews:9080/']);
    expect(unknownHost.stdout).toBe('502');
    const known = await curl('a', ['-o', '/dev/null', '-w', '%{http_code}', 'http://reviews:9080/']);
    expect(known.stdout).toBe('200');
    const tcp = await net.exec('a', NODE, [APPS, 'tcp-client', 'echo', '7000', 'still', '1']);
    expect(tcp.stdout).toMatch(/^v[12]:still\n$/);
  });

  it('POST /quitquitquit on the status port ends the proxy', async () => {
    const c = sidecars.get('c')!;
    const exited = new Promise<number | null>((resolve) => c.child.once('exit', (code) => resolve(code)));
    const r = await curl('c', ['-X', 'POST', 'http://127.0.0.1:15020/quitquitquit']);
    expect(r.stdout).toBe('OK\n');
    expect(await exited).toBe(0);
  });
});
