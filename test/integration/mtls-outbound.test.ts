/**
 * Outbound mutual TLS (DestinationRule `tls.mode: ISTIO_MUTUAL` and Istio auto mTLS) through a
 * real skiff proxy to real TLS peers: a node:https upstream that records what each handshake
 * carried (SNI, ALPN, the client certificate's SPIFFE SAN), an `openssl s_server -Verify 1`
 * upstream, and raw sockets that record the first bytes a connection carried. Certificates come
 * from skiff's mini CA, written in Istio's file layout (cert-chain.pem, key.pem, root-cert.pem).
 *
 * The contract: skiff presents its workload certificate, sends SNI `outbound|port|subset|host`
 * and ALPN `istio-http/1.1` (`istio` for TCP), verifies the server against root-cert.pem and its
 * SPIFFE identity against secure naming (DestinationRule subjectAltNames, else ServiceEntry
 * subjectAltNames, else the endpoints' service accounts, else any identity of the trust
 * domain). Any failure is a 503 with flag UF and a `TLS error` transport failure reason; nothing
 * is ever sent in plaintext.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { connect, createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileSnapshot } from '../../src/compile/snapshot.js';
import { formatDiagnostic } from '../../src/config/diagnostics.js';
import { loadFromSources } from '../../src/config/load.js';
import { createLogger } from '../../src/core/logger.js';
import type { StreamInfo } from '../../src/http/stream.js';
import { Proxy } from '../../src/lifecycle/proxy.js';
import { createRootCa, issueWorkloadCert, type CaKeyPair, type WorkloadCert } from '../../src/security/ca.js';
import { loadCredentials } from '../../src/security/cert-store.js';
import { TcpProxy, type TcpSessionInfo } from '../../src/tcp/tcp-proxy.js';
import { ClusterManager } from '../../src/upstream/cluster-manager.js';
import { get, type Response } from '../helpers/client.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const CLIENT_ID = 'spiffe://cluster.local/ns/default/sa/client';
const SERVER_ID = 'spiffe://cluster.local/ns/default/sa/server';
const OTHER_ID = 'spiffe://cluster.local/ns/default/sa/other';
const TLS_FAILURE = /^upstream connect error or disconnect\/reset before headers\. (retried and the latest )?reset reason: remote connection failure, transport failure reason: TLS error: \S/;

// === certificates ===

/** Writes a credential set into a new temp dir under Istio's file names. */
async function certDir(cert: WorkloadCert | null): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-mtls-certs-'));
  if (cert !== null) {
    await writeFile(join(dir, 'cert-chain.pem'), cert.certChainPem);
    await writeFile(join(dir, 'key.pem'), cert.keyPem);
    await writeFile(join(dir, 'root-cert.pem'), cert.rootCertPem);
  }
  return dir;
}

// === peers ===

interface Handshake {
  readonly servername: string | false;
  readonly alpn: string | false | null;
  /** The client certificate's SAN text (`URI:spiffe://…`), '' when none. */
  readonly clientSan: string;
}

interface TlsUpstream {
  readonly port: number;
  /** One per completed handshake, oldest first. */
  readonly handshakes: Handshake[];
  /** Requests received (method and url), with the handshake of their connection. */
  readonly requests: Array<{ readonly url: string; readonly tls: Handshake }>;
  /** Handshakes that failed on the server side. */
  readonly failures: string[];
  close(): Promise<void>;
}

/**
 * An HTTPS server as a sidecar's inbound side would be: the given workload certificate, client
 * certificates required and verified against `clientRoot`, Istio's ALPN values accepted.
 */
async function startTlsUpstream(cert: WorkloadCert, clientRoot: string): Promise<TlsUpstream> {
  const handshakes: Handshake[] = [];
  const requests: TlsUpstream['requests'] = [];
  const failures: string[] = [];
  const handshakeOf = (s: TLSSocket): Handshake => ({
    servername: (s as TLSSocket & { servername?: string | false }).servername ?? false,
    alpn: s.alpnProtocol,
    clientSan: s.getPeerCertificate().subjectaltname ?? '',
  });
  const server: HttpsServer = createHttpsServer(
    {
      cert: cert.certChainPem,
      key: cert.keyPem,
      ca: clientRoot,
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: ['istio-http/1.1', 'istio', 'http/1.1'],
    },
    (req, res) => {
      const tls = handshakeOf(req.socket as TLSSocket);
      requests.push({ url: req.url ?? '', tls });
      req.resume();
      req.on('end', () => {
        const body = JSON.stringify({ url: req.url, ...tls });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
    },
  );
  server.on('secureConnection', (s: TLSSocket) => handshakes.push(handshakeOf(s)));
  server.on('tlsClientError', (err: Error) => failures.push(err.message));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    handshakes,
    requests,
    failures,
    close: () => closeServer(server),
  };
}

interface RawRecorder {
  readonly port: number;
  /** The first bytes of every connection, oldest first. */
  readonly firstBytes: Buffer[];
  close(): Promise<void>;
}

/**
 * Records the first bytes of each connection, then answers as a plaintext HTTP server would to
 * anything (a 400 and close), so a TLS client fails fast instead of waiting for a ServerHello.
 */
async function startRawRecorder(): Promise<RawRecorder> {
  const firstBytes: Buffer[] = [];
  const server: NetServer = createNetServer((s: Socket) => {
    s.on('error', () => undefined);
    s.once('data', (chunk: Buffer) => {
      firstBytes.push(chunk);
      s.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as AddressInfo).port, firstBytes, close: () => closeServer(server) };
}

/** A TLS record carrying a ClientHello: content type 22 (handshake), TLS 1.x, handshake type 1. */
function isClientHello(b: Buffer): boolean {
  return b.length > 5 && b[0] === 0x16 && b[1] === 0x03 && b[5] === 0x01;
}

interface OpenSslServer {
  readonly port: number;
  /** Everything s_server wrote on stdout so far (unbuffered). */
  output(): string;
  close(): Promise<void>;
}

/**
 * `openssl s_server -Verify 1 -www`: a real OpenSSL peer that requires a client certificate
 * chaining to root-cert.pem. `-servername` names a second context that never matches, which
 * makes s_server print the SNI it received (`Hostname in TLS extension: "…"`) and keep the first
 * context (and with it the ALPN setting).
 */
async function startOpenSsl(certs: string): Promise<OpenSslServer> {
  const cert = join(certs, 'cert-chain.pem');
  const key = join(certs, 'key.pem');
  const args = ['-o0', 'openssl', 's_server', '-accept', '127.0.0.1:0', '-cert', cert, '-key', key, '-cert2', cert, '-key2', key];
  args.push('-servername', 'never-matches.invalid', '-CAfile', join(certs, 'root-cert.pem'), '-Verify', '1', '-alpn', 'istio-http/1.1', '-www');
  const child: ChildProcess = spawn('stdbuf', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`openssl s_server did not start:\n${out}${err}`)), 5000);
    const check = (): void => {
      const m = /ACCEPT 127\.0\.0\.1:(\d+)/.exec(out);
      if (m === null) return;
      clearTimeout(timer);
      child.stdout!.removeListener('data', check);
      resolve(Number(m[1]));
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`openssl s_server exited (${code}):\n${out}${err}`));
    });
  });
  return {
    port,
    output: () => out,
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

function closeServer(server: NetServer | TlsServer | HttpsServer): Promise<void> {
  (server as HttpsServer).closeAllConnections?.();
  return new Promise((resolve) => server.close(() => resolve()));
}

// === config ===

interface EntryOptions {
  readonly host: string;
  readonly port: number;
  readonly endpointPort: number;
  readonly serviceAccount?: string;
  readonly labels?: Record<string, string>;
  readonly subjectAltNames?: readonly string[];
  readonly protocol?: 'HTTP' | 'TCP';
  /** Istio's default is MESH_EXTERNAL; auto mTLS applies only to MESH_INTERNAL services. */
  readonly location?: 'MESH_INTERNAL' | 'MESH_EXTERNAL';
}

function serviceEntry(o: EntryOptions): string {
  const endpoint = [
    `address: 127.0.0.1`,
    `ports: {p: ${o.endpointPort}}`,
    ...(o.serviceAccount !== undefined ? [`serviceAccount: ${o.serviceAccount}`] : []),
    ...(o.labels !== undefined ? [`labels: ${JSON.stringify(o.labels)}`] : []),
  ].join(', ');
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${o.host.split('.')[0]}}
spec:
  hosts: [${o.host}]
  ports: [{number: ${o.port}, name: p, protocol: ${o.protocol ?? 'HTTP'}}]
  resolution: STATIC
${o.location !== undefined ? `  location: ${o.location}\n` : ''}${o.subjectAltNames !== undefined ? `  subjectAltNames: ${JSON.stringify(o.subjectAltNames)}\n` : ''}  endpoints: [{${endpoint}}]
`;
}

function destinationRule(host: string, tls: Record<string, unknown>, extra = ''): string {
  return `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ${host.split('.')[0]}}
spec:
  host: ${host}
  trafficPolicy: {tls: ${JSON.stringify(tls)}}
${extra}`;
}

const MUTUAL = { mode: 'ISTIO_MUTUAL' };
const NO_AUTO_MTLS = `apiVersion: skiff.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  enableAutoMtls: false
`;

// === proxy ===

interface MeshProxy {
  readonly port: number;
  readonly records: StreamInfo[];
  readonly logs: string[];
  close(): Promise<void>;
}

/** A standalone skiff with `certificatesDir` (test/helpers/proxy.ts cannot pass it). */
async function startMeshProxy(config: string, certificatesDir: string): Promise<MeshProxy> {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-mtls-config-'));
  await writeFile(join(dir, 'mesh.yaml'), config);
  const logs: string[] = [];
  const records: StreamInfo[] = [];
  const proxy = await Proxy.start({
    configPath: dir,
    mode: 'standalone',
    certificatesDir,
    logger: createLogger({ level: 'debug', sink: (l) => logs.push(l) }),
    watch: false,
    ports: { outbound: 0, admin: 0, readiness: 0 },
    onRequestDone: (info) => records.push(info),
  });
  return {
    port: proxy.ports.outbound,
    records,
    logs,
    async close() {
      await proxy.close(true);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The record of the request sent after `records` had `before` entries. */
async function recordAfter(records: readonly StreamInfo[], before: number): Promise<StreamInfo> {
  for (let i = 0; i < 100 && records.length <= before; i++) await new Promise((r) => setTimeout(r, 10));
  expect(records.length).toBeGreaterThan(before);
  return records[records.length - 1]!;
}

/** GETs `host:port/path` through the proxy and returns the response with its request record. */
async function send(p: MeshProxy, host: string, port: number, path = '/'): Promise<{ res: Response; record: StreamInfo }> {
  const before = p.records.length;
  const res = await get(p.port, `${host}:${port}`, path);
  return { res, record: await recordAfter(p.records, before) };
}

/** A 503 UF local reply whose transport failure reason is a TLS error (matching `why`, if given). */
function expectTlsFailure(res: Response, record: StreamInfo, clusterName: string, why?: RegExp): void {
  expect(res.status, res.text()).toBe(503);
  expect(res.text()).toMatch(TLS_FAILURE);
  if (why !== undefined) expect(res.text().replace(/^.*TLS error: /, '')).toMatch(why);
  expect(record.responseCode).toBe(503);
  expect(record.responseFlags).toContain('UF');
  expect(record.upstreamCluster).toBe(clusterName);
}

// === fixture ===

let meshCa: CaKeyPair;
let clientCert: WorkloadCert;
let serverCert: WorkloadCert;
const dirs: string[] = [];
const closers: Array<() => Promise<void>> = [];

/** Server certs: a good one, one from a foreign CA, an expired one, one of another trust domain. */
let good: TlsUpstream;
let foreign: TlsUpstream;
let expired: TlsUpstream;
let otherDomain: TlsUpstream;
let plainHttp: Upstream;
let plaintextServer: RawRecorder;
let openssl: OpenSslServer;
let main: MeshProxy;

/** Service ports (the ServiceEntry's), one service per case. */
const P = {
  ok: 8001,
  openssl: 8002,
  foreign: 8003,
  expired: 8004,
  wrongSan: 8005,
  rightSan: 8006,
  saMismatch: 8007,
  saMatch: 8008,
  seSan: 8009,
  drOverSe: 8010,
  otherDomain: 8011,
  plaintextServer: 8012,
  autoLabelled: 8013,
  autoPlain: 8014,
  disabled: 8015,
  subset: 8016,
  seSanOk: 8017,
  seSanOnly: 8018,
  autoExternal: 8019,
  customSni: 8020,
  subsetPlain: 8021,
  portLevel: 8022,
} as const;

const TLS_MODE_ISTIO = { 'security.istio.io/tlsMode': 'istio' };

const cluster = (port: number, host: string, subset = ''): string => `outbound|${port}|${subset}|${host}`;

beforeAll(async () => {
  meshCa = createRootCa();
  const foreignCa = createRootCa({ commonName: 'foreign root CA', organization: 'elsewhere' });
  clientCert = issueWorkloadCert({ ca: meshCa, namespace: 'default', serviceAccount: 'client' });
  serverCert = issueWorkloadCert({ ca: meshCa, namespace: 'default', serviceAccount: 'server' });
  const foreignCert = issueWorkloadCert({ ca: foreignCa, namespace: 'default', serviceAccount: 'server' });
  const expiredCert = issueWorkloadCert({ ca: meshCa, namespace: 'default', serviceAccount: 'server', notBefore: new Date(Date.now() - 48 * 3_600_000), ttlHours: 1 });
  const otherDomainCert = issueWorkloadCert({ ca: meshCa, trustDomain: 'other.domain', namespace: 'default', serviceAccount: 'server' });

  [good, foreign, expired, otherDomain, plainHttp, plaintextServer] = await Promise.all([
    startTlsUpstream(serverCert, meshCa.certPem),
    startTlsUpstream(foreignCert, meshCa.certPem),
    startTlsUpstream(expiredCert, meshCa.certPem),
    startTlsUpstream(otherDomainCert, meshCa.certPem),
    startUpstream('plain'),
    startRawRecorder(),
  ]);
  closers.push(good.close, foreign.close, expired.close, otherDomain.close, plainHttp.close, plaintextServer.close);
  const serverDir = await certDir(serverCert);
  dirs.push(serverDir);
  openssl = await startOpenSsl(serverDir);
  closers.push(openssl.close);

  const g = good.port;
  const config = [
    serviceEntry({ host: 'ok.example.com', port: P.ok, endpointPort: g }),
    destinationRule('ok.example.com', MUTUAL),
    serviceEntry({ host: 'openssl.example.com', port: P.openssl, endpointPort: openssl.port }),
    destinationRule('openssl.example.com', MUTUAL),
    serviceEntry({ host: 'foreign.example.com', port: P.foreign, endpointPort: foreign.port }),
    destinationRule('foreign.example.com', MUTUAL),
    serviceEntry({ host: 'expired.example.com', port: P.expired, endpointPort: expired.port }),
    destinationRule('expired.example.com', MUTUAL),
    serviceEntry({ host: 'wrongsan.example.com', port: P.wrongSan, endpointPort: g }),
    destinationRule('wrongsan.example.com', { ...MUTUAL, subjectAltNames: [OTHER_ID] }),
    serviceEntry({ host: 'rightsan.example.com', port: P.rightSan, endpointPort: g }),
    destinationRule('rightsan.example.com', { ...MUTUAL, subjectAltNames: [OTHER_ID, SERVER_ID] }),
    serviceEntry({ host: 'samismatch.example.com', port: P.saMismatch, endpointPort: g, serviceAccount: 'other' }),
    destinationRule('samismatch.example.com', MUTUAL),
    serviceEntry({ host: 'samatch.example.com', port: P.saMatch, endpointPort: g, serviceAccount: 'server' }),
    destinationRule('samatch.example.com', MUTUAL),
    serviceEntry({ host: 'sesan.example.com', port: P.seSan, endpointPort: g, serviceAccount: 'server', subjectAltNames: [OTHER_ID] }),
    destinationRule('sesan.example.com', MUTUAL),
    serviceEntry({ host: 'sesanonly.example.com', port: P.seSanOnly, endpointPort: g, subjectAltNames: [OTHER_ID] }),
    destinationRule('sesanonly.example.com', MUTUAL),
    serviceEntry({ host: 'customsni.example.com', port: P.customSni, endpointPort: g }),
    destinationRule('customsni.example.com', { ...MUTUAL, sni: 'custom.sni.example' }),
    serviceEntry({ host: 'sesanok.example.com', port: P.seSanOk, endpointPort: g, serviceAccount: 'other', subjectAltNames: [SERVER_ID] }),
    destinationRule('sesanok.example.com', MUTUAL),
    serviceEntry({ host: 'drover.example.com', port: P.drOverSe, endpointPort: g, subjectAltNames: [OTHER_ID] }),
    destinationRule('drover.example.com', { ...MUTUAL, subjectAltNames: [SERVER_ID] }),
    serviceEntry({ host: 'otherdomain.example.com', port: P.otherDomain, endpointPort: otherDomain.port }),
    destinationRule('otherdomain.example.com', MUTUAL),
    serviceEntry({ host: 'plaintext.example.com', port: P.plaintextServer, endpointPort: plaintextServer.port }),
    destinationRule('plaintext.example.com', MUTUAL),
    serviceEntry({ host: 'autolabelled.example.com', port: P.autoLabelled, endpointPort: g, labels: TLS_MODE_ISTIO, location: 'MESH_INTERNAL' }),
    serviceEntry({ host: 'autoplain.example.com', port: P.autoPlain, endpointPort: plainHttp.port, location: 'MESH_INTERNAL' }),
    serviceEntry({ host: 'autoexternal.example.com', port: P.autoExternal, endpointPort: plainHttp.port, labels: TLS_MODE_ISTIO }),
    serviceEntry({ host: 'disabled.example.com', port: P.disabled, endpointPort: plainHttp.port, labels: TLS_MODE_ISTIO, location: 'MESH_INTERNAL' }),
    destinationRule('disabled.example.com', { mode: 'DISABLE' }),
    serviceEntry({ host: 'subset.example.com', port: P.subset, endpointPort: g, labels: { version: 'v1' } }),
    destinationRule('subset.example.com', MUTUAL, '  subsets: [{name: v1, labels: {version: v1}}]\n'),
    serviceEntry({ host: 'subsetplain.example.com', port: P.subsetPlain, endpointPort: plainHttp.port, labels: { version: 'v1' } }),
    destinationRule('subsetplain.example.com', MUTUAL, '  subsets: [{name: v1, labels: {version: v1}, trafficPolicy: {tls: {mode: DISABLE}}}]\n'),
    serviceEntry({ host: 'portlevel.example.com', port: P.portLevel, endpointPort: g }),
    `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: portlevel}
spec:
  host: portlevel.example.com
  trafficPolicy:
    portLevelSettings: [{port: {number: ${P.portLevel}}, tls: {mode: ISTIO_MUTUAL}}]
`,
    `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: subsetplain}
spec:
  hosts: [subsetplain.example.com]
  http: [{route: [{destination: {host: subsetplain.example.com, subset: v1}}]}]
`,
    `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: subset}
spec:
  hosts: [subset.example.com]
  http: [{route: [{destination: {host: subset.example.com, subset: v1}}]}]
`,
  ].join('---\n');
  const clientDir = await certDir(clientCert);
  dirs.push(clientDir);
  main = await startMeshProxy(config, clientDir);
  closers.push(main.close);
});

afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

// === tests ===

describe('ISTIO_MUTUAL upstream connections', () => {
  it('connects with the workload certificate, SNI = cluster name and ALPN istio-http/1.1', async () => {
    const name = cluster(P.ok, 'ok.example.com');
    const { res, record } = await send(main, 'ok.example.com', P.ok, '/hello');
    expect(res.status, res.text()).toBe(200);
    const seen = res.json<Handshake & { url: string }>();
    expect(seen.url).toBe('/hello');
    expect(seen.servername).toBe(name);
    expect(seen.alpn).toBe('istio-http/1.1');
    expect(seen.clientSan).toBe(`URI:${CLIENT_ID}`);
    expect(good.handshakes.filter((h) => h.servername === name)).not.toHaveLength(0);
    expect(record.responseFlags).toBeNull();
    expect(record.upstreamCluster).toBe(name);
  });

  it('is accepted by a real OpenSSL peer that requires a client certificate (s_server -Verify 1)', async () => {
    const { res, record } = await send(main, 'openssl.example.com', P.openssl);
    expect(res.status, res.text()).toBe(200);
    const page = res.text();
    // s_server -www describes the session: the verified client certificate is skiff's identity.
    expect(page).toContain('Client certificate');
    expect(page).toContain(`URI:${CLIENT_ID}`);
    expect(page).toContain('Verify return code: 0 (ok)');
    expect(page).toMatch(/Protocol\s*: TLSv1\.[23]/);
    const log = openssl.output();
    expect(log).toContain(`Hostname in TLS extension: "${cluster(P.openssl, 'openssl.example.com')}"`);
    expect(log).toContain('ALPN protocols advertised by the client: istio-http/1.1');
    expect(log).toContain('ALPN protocols selected: istio-http/1.1');
    expect(record.responseFlags).toBeNull();
  });

  it('sends the DestinationRule tls.sni instead of the cluster name when one is set', async () => {
    const { res } = await send(main, 'customsni.example.com', P.customSni);
    expect(res.status, res.text()).toBe(200);
    expect(res.json<Handshake>().servername).toBe('custom.sni.example');
  });

  it('puts the subset in the SNI: outbound|port|subset|host', async () => {
    const { res } = await send(main, 'subset.example.com', P.subset);
    expect(res.status, res.text()).toBe(200);
    expect(res.json<Handshake>().servername).toBe(cluster(P.subset, 'subset.example.com', 'v1'));
  });

  it('a subset’s own tls (DISABLE) overrides the rule’s ISTIO_MUTUAL: plaintext', async () => {
    const { res } = await send(main, 'subsetplain.example.com', P.subsetPlain, '/subset-plain');
    expect(res.status, res.text()).toBe(200);
    expect(res.headers['x-server']).toBe('plain');
  });

  it('portLevelSettings tls ISTIO_MUTUAL applies to that port', async () => {
    const { res } = await send(main, 'portlevel.example.com', P.portLevel);
    expect(res.status, res.text()).toBe(200);
    expect(res.json<Handshake>().servername).toBe(cluster(P.portLevel, 'portlevel.example.com'));
  });

  it('refuses a server whose certificate chains to a foreign CA: 503 UF, TLS error', async () => {
    const { res, record } = await send(main, 'foreign.example.com', P.foreign);
    expectTlsFailure(res, record, cluster(P.foreign, 'foreign.example.com'));
    expect(foreign.requests).toHaveLength(0);
  });

  it('refuses an expired server certificate: 503 UF', async () => {
    const { res, record } = await send(main, 'expired.example.com', P.expired);
    expectTlsFailure(res, record, cluster(P.expired, 'expired.example.com'), /expired/i);
    expect(expired.requests).toHaveLength(0);
  });

  it('refuses a plaintext server: 503 UF, and what reached it was a ClientHello, never a request', async () => {
    const { res, record } = await send(main, 'plaintext.example.com', P.plaintextServer);
    expectTlsFailure(res, record, cluster(P.plaintextServer, 'plaintext.example.com'));
    expect(plaintextServer.firstBytes.length).toBeGreaterThan(0);
    for (const b of plaintextServer.firstBytes) {
      expect(isClientHello(b), b.subarray(0, 16).toString('latin1')).toBe(true);
      expect(b.includes('GET ')).toBe(false);
    }
  });
});

describe('secure naming', () => {
  it('DestinationRule subjectAltNames not naming the server: 503 UF', async () => {
    const before = good.requests.length;
    const { res, record } = await send(main, 'wrongsan.example.com', P.wrongSan);
    expectTlsFailure(res, record, cluster(P.wrongSan, 'wrongsan.example.com'), /sa\/server/);
    expect(good.requests.length).toBe(before);
  });

  it('DestinationRule subjectAltNames naming the server among others: 200', async () => {
    const { res } = await send(main, 'rightsan.example.com', P.rightSan);
    expect(res.status, res.text()).toBe(200);
  });

  it('endpoint serviceAccount other than the server certificate: 503 UF', async () => {
    const before = good.requests.length;
    const { res, record } = await send(main, 'samismatch.example.com', P.saMismatch);
    expectTlsFailure(res, record, cluster(P.saMismatch, 'samismatch.example.com'), /sa\/server/);
    expect(good.requests.length).toBe(before);
  });

  it('endpoint serviceAccount matching the server certificate: 200', async () => {
    const { res } = await send(main, 'samatch.example.com', P.saMatch);
    expect(res.status, res.text()).toBe(200);
  });

  it('ServiceEntry subjectAltNames not naming the server (no endpoint service account): 503 UF', async () => {
    const { res, record } = await send(main, 'sesanonly.example.com', P.seSanOnly);
    expectTlsFailure(res, record, cluster(P.seSanOnly, 'sesanonly.example.com'), /sa\/server/);
  });

  it('ServiceEntry subjectAltNames naming the server, endpoint service account another: 200', async () => {
    const { res } = await send(main, 'sesanok.example.com', P.seSanOk);
    expect(res.status, res.text()).toBe(200);
  });

  // istiod expects the union of the ServiceEntry's subjectAltNames and the endpoints' service
  // accounts (pilot/pkg/model/push_context.go initServiceAccounts).
  it('ServiceEntry subjectAltNames and endpoint service accounts together: either identity is accepted', async () => {
    const { res } = await send(main, 'sesan.example.com', P.seSan);
    expect(res.status, res.text()).toBe(200);
  });

  it('DestinationRule subjectAltNames win over the ServiceEntry’s', async () => {
    const { res } = await send(main, 'drover.example.com', P.drOverSe);
    expect(res.status, res.text()).toBe(200);
  });

  it('nothing expected: an identity outside the trust domain is refused', async () => {
    const { res, record } = await send(main, 'otherdomain.example.com', P.otherDomain);
    expectTlsFailure(res, record, cluster(P.otherDomain, 'otherdomain.example.com'), /other\.domain/);
    expect(otherDomain.requests).toHaveLength(0);
  });
});

describe('auto mTLS', () => {
  it('no DestinationRule, MESH_INTERNAL endpoint labelled security.istio.io/tlsMode: istio → mTLS', async () => {
    const { res, record } = await send(main, 'autolabelled.example.com', P.autoLabelled);
    expect(res.status, res.text()).toBe(200);
    const seen = res.json<Handshake>();
    expect(seen.servername).toBe(cluster(P.autoLabelled, 'autolabelled.example.com'));
    expect(seen.alpn).toBe('istio-http/1.1');
    expect(seen.clientSan).toBe(`URI:${CLIENT_ID}`);
    expect(record.responseFlags).toBeNull();
  });

  it('no DestinationRule, unlabelled MESH_INTERNAL endpoint → plaintext', async () => {
    const before = plainHttp.requests.length;
    const { res } = await send(main, 'autoplain.example.com', P.autoPlain, '/plain');
    expect(res.status, res.text()).toBe(200);
    expect(res.headers['x-server']).toBe('plain');
    expect(plainHttp.requests.slice(before).map((r) => r.url)).toEqual(['/plain']);
  });

  // Auto mTLS never applies to MESH_EXTERNAL services, Istio's default location
  // (pilot/pkg/networking/core/cluster_tls.go buildUpstreamTLSSettings).
  it('no DestinationRule, MESH_EXTERNAL endpoint labelled tlsMode istio → plaintext (auto mTLS is mesh-internal only)', async () => {
    const { res } = await send(main, 'autoexternal.example.com', P.autoExternal, '/external');
    expect(res.status, res.text()).toBe(200);
    expect(res.headers['x-server']).toBe('plain');
  });

  it('DestinationRule tls DISABLE → plaintext even to a labelled endpoint', async () => {
    const { res } = await send(main, 'disabled.example.com', P.disabled, '/disabled');
    expect(res.status, res.text()).toBe(200);
    expect(res.headers['x-server']).toBe('plain');
  });

  it('MeshConfig enableAutoMtls: false → plaintext to a labelled endpoint; explicit ISTIO_MUTUAL still mTLS', async () => {
    const dir = await certDir(clientCert);
    dirs.push(dir);
    const config = [
      NO_AUTO_MTLS,
      serviceEntry({ host: 'labelled.example.com', port: 8101, endpointPort: plainHttp.port, labels: TLS_MODE_ISTIO, location: 'MESH_INTERNAL' }),
      serviceEntry({ host: 'explicit.example.com', port: 8102, endpointPort: good.port }),
      destinationRule('explicit.example.com', MUTUAL),
    ].join('---\n');
    const p = await startMeshProxy(config, dir);
    try {
      const plain = await send(p, 'labelled.example.com', 8101, '/no-auto');
      expect(plain.res.status, plain.res.text()).toBe(200);
      expect(plain.res.headers['x-server']).toBe('plain');
      expect(plainHttp.requests.at(-1)?.url).toBe('/no-auto');
      const mtls = await send(p, 'explicit.example.com', 8102);
      expect(mtls.res.status, mtls.res.text()).toBe(200);
      expect(mtls.res.json<Handshake>().servername).toBe(cluster(8102, 'explicit.example.com'));
    } finally {
      await p.close();
    }
  });
});

describe('without usable workload credentials', () => {
  /** A proxy whose certs dir holds `cert` (null: nothing), sending to a raw recorder. */
  async function noCredentials(cert: WorkloadCert | null): Promise<void> {
    const recorder = await startRawRecorder();
    const dir = await certDir(cert);
    dirs.push(dir);
    const config = [
      serviceEntry({ host: 'svc.example.com', port: 8201, endpointPort: recorder.port }),
      destinationRule('svc.example.com', MUTUAL),
      serviceEntry({ host: 'auto.example.com', port: 8202, endpointPort: recorder.port, labels: TLS_MODE_ISTIO, location: 'MESH_INTERNAL' }),
    ].join('---\n');
    const p = await startMeshProxy(config, dir);
    try {
      const explicit = await send(p, 'svc.example.com', 8201);
      expectTlsFailure(explicit.res, explicit.record, cluster(8201, 'svc.example.com'), /certificate/i);
      const auto = await send(p, 'auto.example.com', 8202);
      expectTlsFailure(auto.res, auto.record, cluster(8202, 'auto.example.com'), /certificate/i);
      // Nothing, or at most a ClientHello; never the request in plaintext.
      for (const b of recorder.firstBytes) {
        expect(b.toString('latin1')).not.toMatch(/^GET /);
        expect(isClientHello(b)).toBe(true);
      }
    } finally {
      await p.close();
      await recorder.close();
    }
  }

  it('an empty certs dir: 503 UF, nothing sent in plaintext', async () => {
    await noCredentials(null);
  });

  it('an expired workload certificate (refused at load): 503 UF, nothing sent in plaintext', async () => {
    const stale = issueWorkloadCert({ ca: meshCa, namespace: 'default', serviceAccount: 'client', notBefore: new Date(Date.now() - 48 * 3_600_000), ttlHours: 1 });
    await noCredentials(stale);
  });
});

describe('TCP over ISTIO_MUTUAL', () => {
  it('offers ALPN istio with the cluster name as SNI and proxies bytes through the tunnel', async () => {
    const seen: Handshake[] = [];
    const echo: TlsServer = createTlsServer(
      { cert: serverCert.certChainPem, key: serverCert.keyPem, ca: meshCa.certPem, requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['istio', 'istio-http/1.1'] },
      (s) => {
        seen.push({ servername: (s as TLSSocket & { servername?: string | false }).servername ?? false, alpn: s.alpnProtocol, clientSan: s.getPeerCertificate().subjectaltname ?? '' });
        s.on('error', () => undefined);
        s.pipe(s);
      },
    );
    echo.listen(0, '127.0.0.1');
    await once(echo, 'listening');
    const front: NetServer = createNetServer({ pauseOnConnect: true });
    front.listen(0, '127.0.0.1');
    await once(front, 'listening');
    let managed: ClusterManager | null = null;
    try {
      const dir = await certDir(clientCert);
      dirs.push(dir);
      const creds = await loadCredentials(dir);
      const config = [
        serviceEntry({ host: 'tcp.example.com', port: 9100, endpointPort: (echo.address() as AddressInfo).port, protocol: 'TCP' }),
        destinationRule('tcp.example.com', MUTUAL),
      ].join('---\n');
      const loaded = loadFromSources([{ name: 'mesh.yaml', absolutePath: '/config/mesh.yaml', text: config }]);
      if (loaded.model === undefined) throw new Error(loaded.diagnostics.map((d) => formatDiagnostic(d)).join('\n'));
      const snapshot = compileSnapshot(loaded.model, 1);
      managed = new ClusterManager({ credentials: () => creds });
      (await managed.prepare(snapshot.clusters))();

      const name = cluster(9100, 'tcp.example.com');
      let done!: (info: TcpSessionInfo) => void;
      const info = new Promise<TcpSessionInfo>((resolve) => (done = resolve));
      const accepted = once(front, 'connection') as Promise<[Socket]>;
      const client = connect((front.address() as AddressInfo).port, '127.0.0.1');
      const [downstream] = await accepted;
      new TcpProxy(managed, { onDone: done }).start(downstream, null, name, { host: '240.0.0.1', port: 9100 }, snapshot, { direction: 'outbound' });
      client.write('ping over mtls');
      const echoed = await new Promise<string>((resolve) => {
        let got = '';
        client.on('data', (c: Buffer) => {
          got += c.toString();
          if (got.length >= 'ping over mtls'.length) resolve(got);
        });
      });
      expect(echoed).toBe('ping over mtls');
      expect(seen).toEqual([{ servername: name, alpn: 'istio', clientSan: `URI:${CLIENT_ID}` }]);
      client.end();
      const record = await info;
      expect(record.responseFlags ?? []).not.toContain('UF');
      // The identity the server proved is what metrics report as destination_principal.
      expect(record.upstreamPeerIdentity).toBe(SERVER_ID);
    } finally {
      managed?.close();
      await closeServer(echo);
      await closeServer(front);
    }
  });
});

describe('certificate rotation', () => {
  it('a new certificate set is used for new handshakes under load, with no failed request', async () => {
    const port = 8101;
    const dir = await certDir(clientCert);
    dirs.push(dir);
    const config = [
      serviceEntry({ host: 'rotate.example.com', port, endpointPort: good.port }),
      // One request per connection: every request is a new handshake.
      `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: rotate}
spec:
  host: rotate.example.com
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
    connectionPool: {http: {maxRequestsPerConnection: 1}}
`,
    ].join('---\n');
    const p = await startMeshProxy(config, dir);
    closers.push(p.close);
    const rotated = issueWorkloadCert({ ca: meshCa, namespace: 'default', serviceAccount: 'rotated' });
    const total = 240;
    const concurrency = 6;
    let sent = 0;
    let rotatedAt = -1;
    const statuses: number[] = [];
    const handshakesBefore = good.handshakes.length;
    const worker = async (): Promise<void> => {
      while (sent < total) {
        sent++;
        if (sent === total / 3) {
          rotatedAt = sent;
          // As Kubernetes and `skiff ca issue` do: each file replaced whole by a rename.
          for (const [name, text] of [['cert-chain.pem', rotated.certChainPem], ['key.pem', rotated.keyPem], ['root-cert.pem', rotated.rootCertPem]] as const) {
            await writeFile(join(dir, `${name}.tmp`), text);
            await rename(join(dir, `${name}.tmp`), join(dir, name));
          }
        }
        const res = await get(p.port, `rotate.example.com:${port}`, '/rotate');
        statuses.push(res.status);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    expect(rotatedAt).toBeGreaterThan(0);
    expect(statuses).toHaveLength(total);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    const sans = good.handshakes.slice(handshakesBefore).map((h) => h.clientSan);
    expect(sans[0]).toBe(`URI:${CLIENT_ID}`);
    expect(sans.at(-1)).toBe('URI:spiffe://cluster.local/ns/default/sa/rotated');
    expect(p.logs.some((l) => l.includes('sa/rotated loaded'))).toBe(true);
  });
});
