/**
 * TLS origination (DestinationRule `tls.mode: SIMPLE | MUTUAL` with file paths) through a real
 * skiff proxy to real TLS servers: `openssl s_server -www` (with `-Verify 1` for MUTUAL) and a
 * node:https server that records each handshake (SNI, ALPN, client certificate).
 *
 * The contract: skiff verifies the server chain against caCertificates, the server's name
 * against subjectAltNames (any SAN type) or else the SNI (tls.sni, else the service host), sends
 * no ALPN, presents the client certificate for MUTUAL. Any failure (bad chain, wrong name, a file
 * that cannot be read) is a 503 UF with a `TLS error` reason; nothing is ever sent in plaintext.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/core/logger.js';
import type { StreamInfo } from '../../src/http/stream.js';
import { Proxy } from '../../src/lifecycle/proxy.js';
import { createRootCa, issueWorkloadCert, type WorkloadCert } from '../../src/security/ca.js';
import { get, type Response } from '../helpers/client.js';

const TLS_FAILURE = /^upstream connect error or disconnect\/reset before headers\. (retried and the latest )?reset reason: remote connection failure, transport failure reason: TLS error: \S/;

interface Handshake {
  readonly servername: string | false;
  readonly alpn: string | false | null;
  readonly clientSan: string;
}

interface HttpsUpstream {
  readonly port: number;
  readonly handshakes: Handshake[];
  close(): Promise<void>;
}

async function startHttps(cert: WorkloadCert, clientRoot?: string): Promise<HttpsUpstream> {
  const handshakes: Handshake[] = [];
  const handshakeOf = (s: TLSSocket): Handshake => ({
    servername: (s as TLSSocket & { servername?: string | false }).servername ?? false,
    alpn: s.alpnProtocol,
    clientSan: s.getPeerCertificate()?.subjectaltname ?? '',
  });
  const server: HttpsServer = createHttpsServer(
    {
      cert: cert.certChainPem,
      key: cert.keyPem,
      ...(clientRoot !== undefined ? { ca: clientRoot, requestCert: true, rejectUnauthorized: true } : {}),
    },
    (req, res) => {
      const tls = handshakeOf(req.socket as TLSSocket);
      req.resume();
      req.on('end', () => {
        const body = JSON.stringify({ url: req.url, ...tls });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
    },
  );
  server.on('secureConnection', (s: TLSSocket) => handshakes.push(handshakeOf(s)));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as AddressInfo).port, handshakes, close: () => closeServer(server) };
}

/** Counts connections and records their first bytes; answers like a plaintext HTTP server. */
async function startRawRecorder(): Promise<{ port: number; connections: number[]; firstBytes: Buffer[]; close(): Promise<void> }> {
  const firstBytes: Buffer[] = [];
  const connections: number[] = [];
  const server: NetServer = createNetServer((s: Socket) => {
    connections.push(Date.now());
    s.on('error', () => undefined);
    s.once('data', (chunk: Buffer) => {
      firstBytes.push(chunk);
      s.end('HTTP/1.1 200 OK\r\ncontent-length: 9\r\nconnection: close\r\n\r\nplaintext');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as AddressInfo).port, connections, firstBytes, close: () => closeServer(server) };
}

interface OpenSslServer {
  readonly port: number;
  output(): string;
  close(): Promise<void>;
}

async function startOpenSsl(certFile: string, keyFile: string, clientCa?: string): Promise<OpenSslServer> {
  const args = ['-o0', 'openssl', 's_server', '-accept', '127.0.0.1:0', '-cert', certFile, '-key', keyFile, '-www'];
  if (clientCa !== undefined) args.push('-CAfile', clientCa, '-Verify', '1');
  const child: ChildProcess = spawn('stdbuf', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`openssl s_server did not start:\n${out}`)), 5000);
    const check = (): void => {
      const m = /ACCEPT 127\.0\.0\.1:(\d+)/.exec(out);
      if (m === null) return;
      clearTimeout(timer);
      resolve(Number(m[1]));
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`openssl s_server exited (${code}):\n${out}`));
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

function closeServer(server: NetServer | HttpsServer): Promise<void> {
  (server as HttpsServer).closeAllConnections?.();
  return new Promise((resolve) => server.close(() => resolve()));
}

function serviceEntry(host: string, port: number, endpointPort: number): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${host.split('.')[0]}}
spec:
  hosts: [${host}]
  ports: [{number: ${port}, name: p, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {p: ${endpointPort}}}]
`;
}

function destinationRule(host: string, tls: Record<string, unknown>): string {
  return `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ${host.split('.')[0]}}
spec:
  host: ${host}
  trafficPolicy: {tls: ${JSON.stringify(tls)}}
`;
}

interface MeshProxy {
  readonly port: number;
  readonly records: StreamInfo[];
  close(): Promise<void>;
}

async function startMeshProxy(config: string): Promise<MeshProxy> {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-tlsorig-config-'));
  await writeFile(join(dir, 'mesh.yaml'), config);
  const records: StreamInfo[] = [];
  const proxy = await Proxy.start({
    configPath: dir,
    mode: 'standalone',
    logger: createLogger({ level: 'error', sink: () => undefined }),
    watch: false,
    ports: { outbound: 0, admin: 0, readiness: 0 },
    onRequestDone: (info) => records.push(info),
  });
  return {
    port: proxy.ports.outbound,
    records,
    async close() {
      await proxy.close(true);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function send(p: MeshProxy, host: string, port: number): Promise<{ res: Response; record: StreamInfo }> {
  const before = p.records.length;
  const res = await get(p.port, `${host}:${port}`, '/');
  for (let i = 0; i < 100 && p.records.length <= before; i++) await new Promise((r) => setTimeout(r, 10));
  expect(p.records.length).toBeGreaterThan(before);
  return { res, record: p.records[p.records.length - 1]! };
}

function expectTlsFailure(res: Response, record: StreamInfo, why?: RegExp): void {
  expect(res.status, res.text()).toBe(503);
  expect(res.text()).toMatch(TLS_FAILURE);
  if (why !== undefined) expect(res.text().replace(/^.*TLS error: /, '')).toMatch(why);
  expect(record.responseCode).toBe(503);
  expect(record.responseFlags).toContain('UF');
}

const P = {
  simpleOpenssl: 9001,
  simpleNode: 9002,
  wrongCa: 9003,
  mutualOpenssl: 9004,
  mutualNode: 9005,
  missingKey: 9006,
  sanMismatch: 9007,
  sanUri: 9008,
  sniMismatch: 9009,
  explicitSni: 9010,
  mutualNoCert: 9011,
} as const;

const HOST = (name: string): string => `${name}.example.com`;
const SERVER_DNS = ['*.example.com', 'api.example.com'];

let dir: string;
let proxy: MeshProxy;
let opensslSimple: OpenSslServer;
let opensslMutual: OpenSslServer;
let node: HttpsUpstream;
let nodeMutual: HttpsUpstream;
let otherName: HttpsUpstream;
let raw: Awaited<ReturnType<typeof startRawRecorder>>;
let clientSpiffe: string;
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  const ca = createRootCa();
  const foreignCa = createRootCa({ commonName: 'foreign root CA', organization: 'elsewhere' });
  const serverCert = issueWorkloadCert({ ca, namespace: 'default', serviceAccount: 'server', dnsNames: SERVER_DNS });
  const otherNameCert = issueWorkloadCert({ ca, namespace: 'default', serviceAccount: 'other', dnsNames: ['other.test'] });
  const clientCert = issueWorkloadCert({ ca, namespace: 'default', serviceAccount: 'client' });
  clientSpiffe = clientCert.spiffeId;
  dir = await mkdtemp(join(tmpdir(), 'skiff-tlsorig-certs-'));
  const f = (name: string): string => join(dir, name);
  await Promise.all([
    writeFile(f('root.pem'), ca.certPem),
    writeFile(f('foreign-root.pem'), foreignCa.certPem),
    writeFile(f('server.pem'), serverCert.certChainPem),
    writeFile(f('server-key.pem'), serverCert.keyPem),
    writeFile(f('client.pem'), clientCert.certChainPem),
    writeFile(f('client-key.pem'), clientCert.keyPem),
  ]);

  opensslSimple = await startOpenSsl(f('server.pem'), f('server-key.pem'));
  closers.push(opensslSimple.close);
  opensslMutual = await startOpenSsl(f('server.pem'), f('server-key.pem'), f('root.pem'));
  closers.push(opensslMutual.close);
  [node, nodeMutual, otherName, raw] = await Promise.all([
    startHttps(serverCert),
    startHttps(serverCert, ca.certPem),
    startHttps(otherNameCert),
    startRawRecorder(),
  ]);
  closers.push(node.close, nodeMutual.close, otherName.close, raw.close);

  const ca_ = { caCertificates: f('root.pem') };
  const client = { clientCertificate: f('client.pem'), privateKey: f('client-key.pem') };
  const config = [
    serviceEntry(HOST('simple-openssl'), P.simpleOpenssl, opensslSimple.port),
    destinationRule(HOST('simple-openssl'), { mode: 'SIMPLE', ...ca_ }),
    serviceEntry(HOST('simple-node'), P.simpleNode, node.port),
    destinationRule(HOST('simple-node'), { mode: 'SIMPLE', ...ca_ }),
    serviceEntry(HOST('wrong-ca'), P.wrongCa, node.port),
    destinationRule(HOST('wrong-ca'), { mode: 'SIMPLE', caCertificates: f('foreign-root.pem') }),
    serviceEntry(HOST('mutual-openssl'), P.mutualOpenssl, opensslMutual.port),
    destinationRule(HOST('mutual-openssl'), { mode: 'MUTUAL', ...ca_, ...client }),
    serviceEntry(HOST('mutual-node'), P.mutualNode, nodeMutual.port),
    destinationRule(HOST('mutual-node'), { mode: 'MUTUAL', ...ca_, ...client }),
    serviceEntry(HOST('missing-key'), P.missingKey, raw.port),
    destinationRule(HOST('missing-key'), { mode: 'MUTUAL', ...ca_, clientCertificate: f('client.pem'), privateKey: f('no-such-key.pem') }),
    serviceEntry(HOST('san-mismatch'), P.sanMismatch, node.port),
    destinationRule(HOST('san-mismatch'), { mode: 'SIMPLE', ...ca_, subjectAltNames: ['db.internal', 'spiffe://cluster.local/ns/default/sa/nobody'] }),
    serviceEntry(HOST('san-uri'), P.sanUri, node.port),
    destinationRule(HOST('san-uri'), { mode: 'SIMPLE', ...ca_, subjectAltNames: ['db.internal', serverCert.spiffeId] }),
    serviceEntry(HOST('sni-mismatch'), P.sniMismatch, otherName.port),
    destinationRule(HOST('sni-mismatch'), { mode: 'SIMPLE', ...ca_ }),
    serviceEntry(HOST('explicit-sni'), P.explicitSni, node.port),
    destinationRule(HOST('explicit-sni'), { mode: 'SIMPLE', ...ca_, sni: 'api.example.com' }),
    serviceEntry(HOST('mutual-nocert'), P.mutualNoCert, nodeMutual.port),
    destinationRule(HOST('mutual-nocert'), { mode: 'SIMPLE', ...ca_ }),
  ].join('---\n');
  proxy = await startMeshProxy(config);
  closers.push(proxy.close);
}, 30_000);

afterAll(async () => {
  for (const c of closers.reverse()) await c();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('SIMPLE', () => {
  it('originates TLS to openssl s_server, verified against caCertificates', async () => {
    const { res, record } = await send(proxy, HOST('simple-openssl'), P.simpleOpenssl);
    expect(res.status, res.text()).toBe(200);
    expect(res.text()).toContain('s_server');
    expect(record.responseFlags ?? '').not.toContain('UF');
  });

  it('sends the service host as SNI, no ALPN, no client certificate', async () => {
    const { res } = await send(proxy, HOST('simple-node'), P.simpleNode);
    expect(res.status, res.text()).toBe(200);
    const body = JSON.parse(res.text()) as Handshake;
    expect(body.servername).toBe(HOST('simple-node'));
    expect(body.alpn).toBe(false);
    expect(body.clientSan).toBe('');
  });

  it('sends tls.sni when set', async () => {
    const { res } = await send(proxy, HOST('explicit-sni'), P.explicitSni);
    expect(res.status, res.text()).toBe(200);
    expect((JSON.parse(res.text()) as Handshake).servername).toBe('api.example.com');
  });

  it('a server certificate from another CA is a 503 UF', async () => {
    const { res, record } = await send(proxy, HOST('wrong-ca'), P.wrongCa);
    expectTlsFailure(res, record);
  });

  it('subjectAltNames that the certificate does not carry are a 503 UF', async () => {
    const { res, record } = await send(proxy, HOST('san-mismatch'), P.sanMismatch);
    expectTlsFailure(res, record, /match none of db\.internal/);
  });

  it('subjectAltNames match any SAN type (a URI SAN here)', async () => {
    const { res } = await send(proxy, HOST('san-uri'), P.sanUri);
    expect(res.status, res.text()).toBe(200);
  });

  it('without subjectAltNames the certificate must match the SNI', async () => {
    const { res, record } = await send(proxy, HOST('sni-mismatch'), P.sniMismatch);
    expectTlsFailure(res, record, /sni-mismatch\.example\.com/);
  });

  it('SIMPLE presents no client certificate, so a server requiring one fails the request', async () => {
    const { res, record } = await send(proxy, HOST('mutual-nocert'), P.mutualNoCert);
    expect(res.status).toBe(503);
    expect(record.responseFlags ?? '').not.toBe('');
  });
});

describe('MUTUAL', () => {
  it('presents the client certificate to openssl s_server -Verify 1', async () => {
    const { res } = await send(proxy, HOST('mutual-openssl'), P.mutualOpenssl);
    expect(res.status, res.text()).toBe(200);
    // s_server -www lists the peer certificate on its status page.
    expect(res.text()).toMatch(/Client certificate|no client certificate available/);
    expect(res.text()).not.toContain('no client certificate available');
  });

  it('the server sees the client certificate (node https, client certificates required)', async () => {
    const { res } = await send(proxy, HOST('mutual-node'), P.mutualNode);
    expect(res.status, res.text()).toBe(200);
    const body = JSON.parse(res.text()) as Handshake;
    expect(body.clientSan).toContain(clientSpiffe);
    expect(body.alpn).toBe(false);
  });

  it('a client key file that cannot be read fails every request with 503 UF, and nothing reaches the server', async () => {
    for (let i = 0; i < 2; i++) {
      const { res, record } = await send(proxy, HOST('missing-key'), P.missingKey);
      expectTlsFailure(res, record, /^cannot read \S*no-such-key\.pem: ENOENT/);
    }
    expect(raw.connections).toEqual([]);
    expect(raw.firstBytes).toEqual([]);
  });
});
