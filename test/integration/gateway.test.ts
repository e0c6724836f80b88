/**
 * Gateway mode end to end: `skiff run --mode gateway` semantics through a real proxy, with curl
 * and openssl s_client as the clients and real HTTP, HTTPS and TCP servers behind it.
 *
 * One Gateway (selected by the proxy's labels) has plaintext HTTP servers (one with
 * httpsRedirect), two SIMPLE HTTPS servers told apart by SNI, a PASSTHROUGH server on the same
 * port, a MUTUAL and an ISTIO_MUTUAL server, and a TCP server. VirtualServices bind to it with
 * `gateways`; one without is for sidecars only. A second Gateway selects other proxies.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { connect, createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/core/logger.js';
import { Proxy } from '../../src/lifecycle/proxy.js';
import { createRootCa, issueWorkloadCert, type CaKeyPair } from '../../src/security/ca.js';
import { get } from '../helpers/client.js';
import { jwksJson, now, rsaKey, signJwt } from '../helpers/jwt.js';
import { closedPort } from '../helpers/ports.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

interface CurlResult {
  readonly code: number;
  readonly exit: number;
  readonly body: string;
  readonly headers: string;
  /** What curl printed on failure. */
  readonly error: string;
}

/** curl against the gateway, with `host` resolved to 127.0.0.1. */
function curl(url: string, args: readonly string[] = []): Promise<CurlResult> {
  const { hostname, port } = new URL(url);
  const p = port || (url.startsWith('https') ? '443' : '80');
  return new Promise((resolve) => {
    execFile(
      'curl',
      ['-sS', '-i', '--max-time', '5', '--resolve', `${hostname}:${p}:127.0.0.1`, '-w', '\n%{http_code}', ...args, url],
      { encoding: 'utf8' },
      (err, stdout, stderr) => {
        const lines = stdout.split('\n');
        const code = Number(lines.pop());
        const text = lines.join('\n');
        const split = text.indexOf('\r\n\r\n');
        resolve({
          code,
          exit: err === null ? 0 : ((err as { code?: number }).code ?? 1),
          headers: split < 0 ? text : text.slice(0, split),
          body: split < 0 ? '' : text.slice(split + 4),
          error: stderr,
        });
      },
    );
  });
}

/** openssl s_client: one request over TLS; returns everything it printed and what came back. */
function sClient(port: number, args: readonly string[], request: string): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-ign_eof', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(out);
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(request);
  });
}

const PEM = { cert: 'cert.pem', key: 'key.pem' };

/** Writes one request on an open connection and resolves with the status of its (content-length framed) response, or 0 if the connection closed first. */
function exchange(s: Socket, request: string): Promise<number> {
  return new Promise((resolve) => {
    let got = '';
    const done = (status: number): void => {
      s.off('data', onData);
      s.off('close', onClose);
      resolve(status);
    };
    const onData = (c: Buffer): void => {
      got += c.toString('latin1');
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = Number(/\r\ncontent-length: (\d+)/i.exec(got.slice(0, end))?.[1] ?? 0);
      if (got.length >= end + 4 + length) done(Number(got.slice(9, 12)));
    };
    const onClose = (): void => done(0);
    s.on('data', onData);
    s.once('close', onClose);
    s.write(request);
  });
}

describe('gateway mode', () => {
  let dir: string;
  let proxy: Proxy;
  let a: Upstream;
  let b: Upstream;
  let m: Upstream;
  let passBackend: HttpsServer;
  let tcpBackend: NetServer;
  let rootA: CaKeyPair;
  let rootB: CaKeyPair;
  const ports = { http: 0, tls: 0, mutual: 0, istio: 0, tcp: 0, optional: 0, pinned: 0, other: 0, added: 0 };
  const jwtKey = rsaKey('gw-1');
  const logs: string[] = [];
  const file = (name: string): string => join(dir, 'files', name);

  /** Writes a workload-style certificate (cert, key) issued by `ca` under files/<name>.{cert,key}.pem. */
  async function issue(ca: CaKeyPair, name: string, options: { dnsNames?: string[]; notBefore?: Date; ttlHours?: number; sa?: string } = {}): Promise<void> {
    const c = issueWorkloadCert({ ca, namespace: 'default', serviceAccount: options.sa ?? name, ...options });
    await writeFile(file(`${name}.${PEM.cert}`), c.certChainPem);
    await writeFile(file(`${name}.${PEM.key}`), c.keyPem);
  }

  function config(extraServers = '', extraDocs = ''): string {
    const tls = (name: string, mode = 'SIMPLE', ca = ''): string =>
      `{mode: ${mode}, serverCertificate: ${file(`${name}.${PEM.cert}`)}, privateKey: ${file(`${name}.${PEM.key}`)}${ca === '' ? '' : `, caCertificates: ${ca}`}}`;
    const se = (name: string, host: string, port: number, protocol: string, endpoint: number): string => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${name}}
spec:
  hosts: [${host}]
  ports: [{number: ${port}, name: p, protocol: ${protocol}}]
  resolution: STATIC
  location: MESH_EXTERNAL
  endpoints: [{address: 127.0.0.1, ports: {p: ${endpoint}}}]
---
`;
    return `apiVersion: skiff.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  defaultNamespace: istio-system
  workloadLabels: {istio: ingressgateway}
---
${se('a', 'a.internal', 80, 'HTTP', a.port)}${se('b', 'b.internal', 80, 'HTTP', b.port)}${se('m', 'm.internal', 80, 'HTTP', m.port)}${se('pass', 'pass.internal', 443, 'TLS', (passBackend.address() as AddressInfo).port)}${se('tcp', 'tcp.internal', 9000, 'TCP', (tcpBackend.address() as AddressInfo).port)}apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: ${ports.http}, name: http, protocol: HTTP}
    hosts: [a.example.com, b.example.com, c.example.com]
  - port: {number: ${ports.http}, name: http-redirect, protocol: HTTP}
    hosts: [secure.example.com]
    tls: {httpsRedirect: true}
  - port: {number: ${ports.tls}, name: https-a, protocol: HTTPS}
    hosts: [a.example.com]
    tls: ${tls('server-a')}
  - port: {number: ${ports.tls}, name: https-b, protocol: HTTPS}
    hosts: [b.example.com]
    tls: ${tls('server-b')}
  - port: {number: ${ports.tls}, name: tls-pass, protocol: TLS}
    hosts: [pass.example.com]
    tls: {mode: PASSTHROUGH}
  - port: {number: ${ports.mutual}, name: https-mutual, protocol: HTTPS}
    hosts: ['*']
    tls: ${tls('server-m', 'MUTUAL', file('root-a.pem'))}
  - port: {number: ${ports.istio}, name: https-istio, protocol: HTTPS}
    hosts: ['*']
    tls: {mode: ISTIO_MUTUAL}
  - port: {number: ${ports.tcp}, name: tcp, protocol: TCP}
    hosts: ['*']
  - port: {number: ${ports.optional}, name: https-optional, protocol: HTTPS}
    hosts: ['*']
    tls: ${tls('server-m', 'OPTIONAL_MUTUAL', file('root-a.pem'))}
  - port: {number: ${ports.pinned}, name: https-pinned, protocol: HTTPS}
    hosts: ['*']
    tls: {mode: MUTUAL, serverCertificate: ${file(`server-m.${PEM.cert}`)}, privateKey: ${file(`server-m.${PEM.key}`)}, caCertificates: ${file('root-a.pem')}, subjectAltNames: [spiffe://cluster.local/ns/default/sa/other]}
${extraServers}---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: elsewhere, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: ${ports.other}, name: http, protocol: HTTP}
    hosts: ['*']
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a, namespace: istio-system}
spec:
  hosts: [a.example.com]
  gateways: [ingress]
  http: [{route: [{destination: {host: a.internal}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b, namespace: default}
spec:
  hosts: [b.example.com]
  gateways: [istio-system/ingress, mesh]
  http: [{route: [{destination: {host: b.internal}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: sidecars-only}
spec:
  hosts: [c.example.com]
  http: [{route: [{destination: {host: a.internal}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: any-host, namespace: istio-system}
spec:
  hosts: ['*']
  gateways: [ingress]
  http:
  - match: [{port: ${ports.mutual}}, {port: ${ports.istio}}, {port: ${ports.optional}}, {port: ${ports.pinned}}]
    route: [{destination: {host: m.internal}}]
  tcp:
  - match: [{port: ${ports.tcp}}]
    route: [{destination: {host: tcp.internal}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: pass, namespace: istio-system}
spec:
  hosts: [pass.example.com]
  gateways: [ingress]
  tls:
  - match: [{sniHosts: [pass.example.com]}]
    route: [{destination: {host: pass.internal, port: {number: 443}}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-admin, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules: [{to: [{operation: {ports: ['${ports.http}'], paths: ['/admin*']}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: https-rules, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules:
  - to: [{operation: {ports: ['${ports.mutual}'], paths: ['/secret*']}}]
  - to: [{operation: {paths: ['/b-only*']}}]
    when: [{key: connection.sni, values: [a.example.com]}]
  - from: [{source: {notPrincipals: [cluster.local/ns/default/sa/client]}}]
    to: [{operation: {ports: ['${ports.mutual}']}}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  jwtRules: [{issuer: https://issuer.example, jwks: '${jwksJson(jwtKey)}'}]
${extraDocs}`;
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'skiff-gateway-'));
    await mkdir(join(dir, 'config'));
    await mkdir(join(dir, 'files'));
    await mkdir(join(dir, 'workload'));
    rootA = createRootCa({ commonName: 'root A' });
    rootB = createRootCa({ commonName: 'root B' });
    await writeFile(file('root-a.pem'), rootA.certPem);
    await issue(rootA, 'server-a', { dnsNames: ['a.example.com'] });
    await issue(rootA, 'server-b', { dnsNames: ['b.example.com'] });
    await issue(rootA, 'server-m', { dnsNames: ['m.example.com'] });
    await issue(rootA, 'pass-backend', { dnsNames: ['pass.example.com'] });
    await issue(rootA, 'client', { sa: 'client' });
    await issue(rootB, 'foreign-client', { sa: 'client' });
    await issue(rootA, 'expired-client', { sa: 'client', notBefore: new Date(Date.now() - 48 * 3_600_000), ttlHours: 1 });
    // A certificate of the right CA whose subject looks like a mesh principal, without any SAN.
    await writeFile(file('root-a.key'), rootA.keyPem);
    await writeFile(file('client-ext.cnf'), 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n');
    execFileSync('openssl', ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', file(`spoof.${PEM.key}`), '-subj', '/CN=cluster.local\\/ns\\/default\\/sa\\/client', '-out', file('spoof.csr')], { stdio: 'ignore' });
    execFileSync('openssl', ['x509', '-req', '-in', file('spoof.csr'), '-CA', file('root-a.pem'), '-CAkey', file('root-a.key'), '-CAcreateserial', '-days', '1', '-extfile', file('client-ext.cnf'), '-out', file(`spoof.${PEM.cert}`)], { stdio: 'ignore' });
    const workload = issueWorkloadCert({ ca: rootA, namespace: 'istio-system', serviceAccount: 'ingressgateway' });
    await writeFile(join(dir, 'workload', 'cert-chain.pem'), workload.certChainPem);
    await writeFile(join(dir, 'workload', 'key.pem'), workload.keyPem);
    await writeFile(join(dir, 'workload', 'root-cert.pem'), workload.rootCertPem);

    [a, b, m] = await Promise.all([startUpstream('a'), startUpstream('b'), startUpstream('m')]);
    const passCert = issueWorkloadCert({ ca: rootA, namespace: 'default', serviceAccount: 'pass', dnsNames: ['pass.example.com'] });
    passBackend = createHttpsServer({ cert: passCert.certChainPem, key: passCert.keyPem }, (_req, res) => res.end('pass-backend'));
    passBackend.listen(0, '127.0.0.1');
    tcpBackend = createNetServer((s) => {
      s.on('error', () => undefined);
      s.once('data', (c: Buffer) => s.end(`tcp-backend:${c.toString()}`));
    });
    tcpBackend.listen(0, '127.0.0.1');
    await Promise.all([once(passBackend, 'listening'), once(tcpBackend, 'listening')]);
    for (const k of Object.keys(ports) as Array<keyof typeof ports>) ports[k] = await closedPort();

    await writeFile(join(dir, 'config', 'gateway.yaml'), config());
    proxy = await Proxy.start({
      configPath: join(dir, 'config'),
      mode: 'gateway',
      certificatesDir: join(dir, 'workload'),
      logger: createLogger({ level: 'info', sink: (l) => logs.push(l) }),
      watch: false,
      ports: { admin: 0, readiness: 0, status: 0, stats: 0 },
    });
  });

  afterAll(async () => {
    await proxy?.close(true);
    passBackend?.closeAllConnections();
    await Promise.all([a?.close(), b?.close(), m?.close(), new Promise((r) => passBackend?.close(r)), new Promise((r) => tcpBackend?.close(r))]);
    await rm(dir, { recursive: true, force: true });
  });

  it('listens on the ports of the Gateways that select its labels, and only those', async () => {
    const numeric = (xs: readonly number[]): number[] => [...xs].sort((x, y) => x - y);
    expect(numeric(proxy.ports.gateway)).toEqual(numeric([ports.http, ports.tls, ports.mutual, ports.istio, ports.tcp, ports.optional, ports.pinned]));
    const refused = await new Promise<string>((resolve) => {
      const s = connect(ports.other, '127.0.0.1');
      s.once('connect', () => resolve('connected'));
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    });
    expect(refused).toBe('ECONNREFUSED');
  });

  it('routes plaintext HTTP by Host to the VirtualServices bound to the Gateway', async () => {
    const ra = await curl(`http://a.example.com:${ports.http}/x`, ['-H', 'x-forwarded-client-cert: By=forged', '-H', 'x-forwarded-proto: https']);
    expect(ra.code).toBe(200);
    const seen = JSON.parse(ra.body) as { server: string; headers: Record<string, string> };
    expect(seen.server).toBe('a');
    // The edge decides: the scheme the client used, and no client certificate claims.
    expect(seen.headers['x-forwarded-proto']).toBe('http');
    expect(seen.headers['x-forwarded-client-cert']).toBeUndefined();
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
    // Istio names gateway listeners istio-envoy.
    expect(ra.headers).toMatch(/^server: istio-envoy\r?$/m);
    // A VirtualService in another namespace naming the gateway as istio-system/ingress.
    expect(JSON.parse((await curl(`http://b.example.com:${ports.http}/`)).body).server).toBe('b');
  });

  it('answers 404 for a host only a sidecar VirtualService serves, and for hosts the servers do not list', async () => {
    const sidecarOnly = await get(ports.http, 'c.example.com');
    expect(sidecarOnly.status).toBe(404);
    expect(sidecarOnly.headers['server']).toBe('istio-envoy');
    expect((await get(ports.http, 'unknown.example.com')).status).toBe(404);
  });

  it('redirects every request for an httpsRedirect server to https with a 301', async () => {
    const r = await get(ports.http, 'secure.example.com', '/a/b?c=d');
    expect(r.status).toBe(301);
    expect(r.headers['location']).toBe('https://secure.example.com/a/b?c=d');
    const withPort = await get(ports.http, `secure.example.com:${ports.http}`, '/p');
    expect(withPort.headers['location']).toBe(`https://secure.example.com:${ports.http}/p`);
  });

  it('enforces AuthorizationPolicy selecting the gateway: 403 RBAC: access denied, PERMISSION_DENIED for gRPC', async () => {
    const r = await get(ports.http, 'a.example.com', '/admin/users');
    expect(r.status).toBe(403);
    expect(r.text()).toBe('RBAC: access denied');
    const grpc = await get(ports.http, 'a.example.com', '/admin/pkg.Admin/Delete', { 'content-type': 'application/grpc' });
    expect(grpc.status).toBe(200);
    expect(grpc.headers['grpc-status']).toBe('7');
    expect(grpc.headers['grpc-message']).toBe('RBAC: access denied');
    expect(grpc.headers['content-type']).toBe('application/grpc');
    expect(a.requests.some((q) => q.url.startsWith('/admin'))).toBe(false);
  });

  it('terminates SIMPLE TLS with the certificate the SNI selects, and routes by that server', async () => {
    for (const [host, server] of [['a.example.com', 'a'], ['b.example.com', 'b']] as const) {
      const r = await curl(`https://${host}:${ports.tls}/tls`, ['--cacert', file('root-a.pem')]);
      expect(r.exit, r.error).toBe(0);
      expect(r.code).toBe(200);
      const seen = JSON.parse(r.body) as { server: string; headers: Record<string, string> };
      expect(seen.server).toBe(server);
      expect(seen.headers['x-forwarded-proto']).toBe('https');
    }
    const out = await sClient(ports.tls, ['-servername', 'b.example.com', '-CAfile', file('root-a.pem')], 'GET / HTTP/1.1\r\nHost: b.example.com\r\nConnection: close\r\n\r\n');
    expect(out).toMatch(/subject=.*/);
    expect(out).toContain('Verify return code: 0 (ok)');
    expect(out).toContain('HTTP/1.1 200 OK');
  });

  it('negotiates HTTP/2 by ALPN on HTTPS servers', async () => {
    const r = await curl(`https://a.example.com:${ports.tls}/h2`, ['--http2', '--cacert', file('root-a.pem')]);
    expect(r.exit, r.error).toBe(0);
    expect(r.headers).toMatch(/^HTTP\/2 200/);
    const seen = JSON.parse(r.body) as { server: string; headers: Record<string, string> };
    expect(seen.server).toBe('a');
    expect(seen.headers['x-forwarded-proto']).toBe('https');
    const h1 = await curl(`https://a.example.com:${ports.tls}/h1`, ['--http1.1', '--cacert', file('root-a.pem')]);
    expect(h1.headers).toMatch(/^HTTP\/1\.1 200/);
  });

  it('routes a request by its server: the a.example.com certificate does not reach b.example.com routes', async () => {
    // SNI a.example.com, Host b.example.com: server a's route config has no such host.
    const out = await sClient(ports.tls, ['-servername', 'a.example.com'], 'GET / HTTP/1.1\r\nHost: b.example.com\r\nConnection: close\r\n\r\n');
    expect(out).toContain('HTTP/1.1 404 Not Found');
  });

  it('closes TLS connections whose SNI no server lists, or that send none', async () => {
    for (const args of [['-servername', 'nobody.example.com'], ['-noservername']]) {
      const out = await sClient(ports.tls, args, 'GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n');
      expect(out).not.toContain('HTTP/1.1');
      expect(out).not.toContain('BEGIN CERTIFICATE');
    }
  });

  it('passes TLS through by SNI to the backend, which terminates it', async () => {
    const r = await curl(`https://pass.example.com:${ports.tls}/`, ['--cacert', file('root-a.pem')]);
    expect(r.exit, r.error).toBe(0);
    expect(r.body).toBe('pass-backend');
  });

  it('MUTUAL: serves a client whose certificate the CA issued, with its details in XFCC', async () => {
    const r = await curl(`https://m.example.com:${ports.mutual}/m`, [
      '--cacert', file('root-a.pem'), '--cert', file(`client.${PEM.cert}`), '--key', file(`client.${PEM.key}`),
    ]);
    expect(r.exit, r.error).toBe(0);
    expect(r.code).toBe(200);
    const seen = JSON.parse(r.body) as { server: string; headers: Record<string, string> };
    expect(seen.server).toBe('m');
    expect(seen.headers['x-forwarded-client-cert']).toMatch(
      /^By=spiffe:\/\/cluster\.local\/ns\/default\/sa\/server-m;Hash=[0-9a-f]{64};Subject="[^"]*";URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/client$/,
    );
  });

  it('MUTUAL: refuses a client without a certificate, with a foreign CA, or with an expired one', async () => {
    const request = 'GET / HTTP/1.1\r\nHost: m.example.com\r\nConnection: close\r\n\r\n';
    const cases: Array<[string, string[]]> = [
      ['none', []],
      ['foreign', ['-cert', file(`foreign-client.${PEM.cert}`), '-key', file(`foreign-client.${PEM.key}`)]],
      ['expired', ['-cert', file(`expired-client.${PEM.cert}`), '-key', file(`expired-client.${PEM.key}`)]],
    ];
    for (const [name, args] of cases) {
      const out = await sClient(ports.mutual, ['-servername', 'm.example.com', ...args], request);
      expect(out, name).not.toContain('HTTP/1.1 200');
    }
    const before = m.requests.length;
    const ok = await sClient(ports.mutual, ['-servername', 'm.example.com', '-cert', file(`client.${PEM.cert}`), '-key', file(`client.${PEM.key}`)], request);
    expect(ok).toContain('HTTP/1.1 200 OK');
    expect(m.requests.length).toBe(before + 1);
  });

  it('ISTIO_MUTUAL: the workload certificate answers, a mesh client certificate is required', async () => {
    const request = 'GET / HTTP/1.1\r\nHost: anything\r\nConnection: close\r\n\r\n';
    const ok = await sClient(ports.istio, ['-CAfile', file('root-a.pem'), '-cert', file(`client.${PEM.cert}`), '-key', file(`client.${PEM.key}`)], request);
    expect(ok).toContain('Verify return code: 0 (ok)');
    expect(ok).toContain('HTTP/1.1 200 OK');
    expect(ok).toMatch(/spiffe:\/\/cluster\.local\/ns\/istio-system\/sa\/ingressgateway|ingressgateway/);
    const none = await sClient(ports.istio, [], request);
    expect(none).not.toContain('HTTP/1.1 200');
  });

  it('proxies a TCP server to its tcp route', async () => {
    const reply = await new Promise<string>((resolve, reject) => {
      const s = connect(ports.tcp, '127.0.0.1', () => s.write('hello'));
      let got = '';
      s.on('data', (c: Buffer) => (got += c.toString()));
      s.on('close', () => resolve(got));
      s.on('error', reject);
    });
    expect(reply).toBe('tcp-backend:hello');
  });

  it('OPTIONAL_MUTUAL: serves clients with or without a certificate, but refuses a bad one', async () => {
    const request = 'GET / HTTP/1.1\r\nHost: m.example.com\r\nConnection: close\r\n\r\n';
    const none = await sClient(ports.optional, ['-servername', 'm.example.com'], request);
    expect(none).toContain('HTTP/1.1 200 OK');
    const withCert = await curl(`https://m.example.com:${ports.optional}/`, [
      '--cacert', file('root-a.pem'), '--cert', file(`client.${PEM.cert}`), '--key', file(`client.${PEM.key}`),
    ]);
    expect(withCert.code).toBe(200);
    expect(JSON.parse(withCert.body).headers['x-forwarded-client-cert']).toContain('URI=spiffe://cluster.local/ns/default/sa/client');
    const foreign = await sClient(ports.optional, ['-servername', 'm.example.com', '-cert', file(`foreign-client.${PEM.cert}`), '-key', file(`foreign-client.${PEM.key}`)], request);
    expect(foreign).not.toContain('HTTP/1.1 200');
  });

  it('MUTUAL with subjectAltNames: a client of the right CA but another identity is refused', async () => {
    const out = await sClient(ports.pinned, ['-servername', 'm.example.com', '-cert', file(`client.${PEM.cert}`), '-key', file(`client.${PEM.key}`)], 'GET / HTTP/1.1\r\nHost: m.example.com\r\n\r\n');
    expect(out).not.toContain('HTTP/1.1 200');
  });

  it('applies RequestAuthentication at the gateway: a valid token passes, a bad one gets 401', async () => {
    const token = signJwt(jwtKey, { iss: 'https://issuer.example', sub: 'alice', exp: now() + 600 });
    expect((await get(ports.http, 'a.example.com', '/jwt', { authorization: `Bearer ${token}` })).status).toBe(200);
    expect((await get(ports.http, 'a.example.com', '/jwt')).status).toBe(200);
    const expired = signJwt(jwtKey, { iss: 'https://issuer.example', sub: 'alice', exp: now() - 600 });
    const r = await get(ports.http, 'a.example.com', '/jwt', { authorization: `Bearer ${expired}` });
    expect(r.status).toBe(401);
    expect(r.text()).toBe('Jwt is expired');
  });

  it('serves a rotated certificate on new handshakes, and refuses handshakes while a file is broken', async () => {
    const serial = async (): Promise<string> => {
      const out = await sClient(ports.tls, ['-servername', 'a.example.com', '-showcerts'], 'GET / HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n\r\n');
      return /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(out)?.[0] ?? '';
    };
    const before = await serial();
    expect(before).not.toBe('');
    await issue(rootA, 'server-a', { dnsNames: ['a.example.com'], sa: 'server-a-rotated' });
    await expect.poll(serial, { timeout: 5000, interval: 200 }).not.toBe(before);
    const rotated = await curl(`https://a.example.com:${ports.tls}/`, ['--cacert', file('root-a.pem')]);
    expect(rotated.code).toBe(200);

    await writeFile(file(`server-a.${PEM.key}`), 'not a key');
    await expect.poll(async () => (await curl(`https://a.example.com:${ports.tls}/`, ['--cacert', file('root-a.pem')])).exit, { timeout: 5000, interval: 200 }).not.toBe(0);
    expect(logs.some((l) => l.includes('unusable') && l.includes('server-a'))).toBe(true);
    // The other server on the port is not affected.
    expect((await curl(`https://b.example.com:${ports.tls}/`, ['--cacert', file('root-a.pem')])).code).toBe(200);
    await issue(rootA, 'server-a', { dnsNames: ['a.example.com'] });
    await expect.poll(async () => (await curl(`https://a.example.com:${ports.tls}/`, ['--cacert', file('root-a.pem')])).code, { timeout: 5000, interval: 200 }).toBe(200);
  });

  it('closes TCP connections AuthorizationPolicy denies, including open ones when a policy arrives', async () => {
    const open = connect(ports.tcp, '127.0.0.1');
    await once(open, 'connect');
    const closed = once(open, 'close');
    const deny = `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-tcp, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules: [{to: [{operation: {ports: ['${ports.tcp}']}}]}]
`;
    await writeFile(join(dir, 'config', 'gateway.yaml'), config('', deny));
    expect((await proxy.reload()).ok).toBe(true);
    await closed;
    const reply = await new Promise<string>((resolve) => {
      const s = connect(ports.tcp, '127.0.0.1', () => s.write('hello'));
      let got = '';
      s.on('data', (c: Buffer) => (got += c.toString()));
      s.on('close', () => resolve(got));
      s.on('error', () => resolve(got));
    });
    expect(reply).toBe('');
    await writeFile(join(dir, 'config', 'gateway.yaml'), config());
    expect((await proxy.reload()).ok).toBe(true);
  });

  it('shows the workload certificate and its remaining lifetime on the admin port (/certs)', async () => {
    const r = await get(proxy.ports.admin, 'localhost', '/certs');
    expect(r.status).toBe(200);
    const { certificates } = r.json<{ certificates: Array<{ ca_cert: Array<Record<string, unknown>>; cert_chain: Array<Record<string, unknown>> }> }>();
    expect(certificates).toHaveLength(1);
    const leaf = certificates[0]!.cert_chain[0]!;
    expect(leaf['subject_alt_names']).toEqual([{ uri: 'spiffe://cluster.local/ns/istio-system/sa/ingressgateway' }]);
    // A 24h certificate: less than one whole day left.
    expect(leaf['days_until_expiration']).toBe('0');
    expect(Date.parse(leaf['expiration_time'] as string) - Date.now()).toBeGreaterThan(23 * 3_600_000);
    expect(leaf['path']).toBe(join(dir, 'workload', 'cert-chain.pem'));
    expect(certificates[0]!.ca_cert[0]!['days_until_expiration']).toMatch(/^36[45]\d$/);
  });

  it('authorizes HTTPS requests with the gateway port, the SNI and the client principal', async () => {
    const client = ['--cacert', file('root-a.pem'), '--cert', file(`client.${PEM.cert}`), '--key', file(`client.${PEM.key}`)];
    expect((await curl(`https://m.example.com:${ports.mutual}/open`, client)).code).toBe(200);
    expect((await curl(`https://m.example.com:${ports.mutual}/secret`, client)).code).toBe(403);
    expect((await curl(`https://a.example.com:${ports.tls}/b-only`, ['--cacert', file('root-a.pem')])).code).toBe(403);
    expect((await curl(`https://b.example.com:${ports.tls}/b-only`, ['--cacert', file('root-a.pem')])).code).toBe(200);
  });

  it('a certificate subject that looks like a mesh principal is not one: only a SPIFFE URI is', async () => {
    const spoof = await curl(`https://m.example.com:${ports.mutual}/`, ['--cacert', file('root-a.pem'), '--cert', file(`spoof.${PEM.cert}`), '--key', file(`spoof.${PEM.key}`)]);
    expect(spoof.exit, spoof.error).toBe(0);
    expect(spoof.code).toBe(403);
  });

  it('x-forwarded-proto comes from the connection, not from an absolute-form request line', async () => {
    const s = connect(ports.http, '127.0.0.1');
    await once(s, 'connect');
    let got = '';
    s.on('data', (c: Buffer) => (got += c.toString()));
    s.write('GET https://a.example.com/abs HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n\r\n');
    await once(s, 'close');
    const body = /\{.*\}/s.exec(got)?.[0] ?? '';
    expect(JSON.parse(body).headers['x-forwarded-proto']).toBe('http');
  });

  it('a keep-alive connection is not served once its server requires what its handshake did not show', async () => {
    const s = tlsConnect({ port: ports.tls, host: '127.0.0.1', servername: 'a.example.com', ca: rootA.certPem });
    await once(s, 'secureConnect');
    const request = 'GET /keep HTTP/1.1\r\nHost: a.example.com\r\n\r\n';
    expect(await exchange(s, request)).toBe(200);
    const mutualA = config().replace(`tls: {mode: SIMPLE, serverCertificate: ${file(`server-a.${PEM.cert}`)}`, `tls: {mode: MUTUAL, caCertificates: ${file('root-a.pem')}, serverCertificate: ${file(`server-a.${PEM.cert}`)}`);
    expect(mutualA).not.toBe(config());
    await writeFile(join(dir, 'config', 'gateway.yaml'), mutualA);
    expect((await proxy.reload()).ok).toBe(true);
    expect(await exchange(s, request)).toBe(404);
    s.destroy();
    await writeFile(join(dir, 'config', 'gateway.yaml'), config());
    expect((await proxy.reload()).ok).toBe(true);
  });

  it('opens and closes ports as the Gateway changes, and keeps the old config when the new one is invalid', async () => {
    await writeFile(
      join(dir, 'config', 'gateway.yaml'),
      config(`  - port: {number: ${ports.added}, name: http-added, protocol: HTTP}\n    hosts: [a.example.com]\n`),
    );
    expect((await proxy.reload()).ok).toBe(true);
    await expect.poll(async () => (await get(ports.added, 'a.example.com').catch(() => ({ status: 0 }))).status).toBe(200);

    await writeFile(join(dir, 'config', 'gateway.yaml'), config().replace('name: tcp, protocol: TCP', 'name: tcp, protocol: SCTP'));
    const bad = await proxy.reload();
    expect(bad.ok).toBe(false);
    expect(bad.diagnostics.some((d) => d.severity === 'error' && d.field.includes('servers[7].port.protocol'))).toBe(true);
    expect((await get(ports.added, 'a.example.com')).status).toBe(200);

    await writeFile(join(dir, 'config', 'gateway.yaml'), config());
    expect((await proxy.reload()).ok).toBe(true);
    await expect.poll(async () => (await get(ports.added, 'a.example.com').catch((e: NodeJS.ErrnoException) => ({ status: e.code }))).status).toBe('ECONNREFUSED');
  });
});
