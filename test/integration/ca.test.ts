/**
 * The mini CA, checked by real peers: OpenSSL's `verify` and `x509`, and Node TLS servers and
 * clients doing mutual TLS with the issued certificates (identity carried only in the URI SAN,
 * as Istio does). The CLI part runs the built `skiff ca` (`npm test` builds first; run
 * `npm run build` before running this file alone).
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type PeerCertificate, type Server, type TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { caCommand } from '../../src/cli/ca.js';
import { SkiffError } from '../../src/core/errors.js';
import { createRootCa, issueWorkloadCert, type CaKeyPair, type WorkloadCert } from '../../src/security/ca.js';
import { runSkiff } from '../helpers/command.js';

const run = promisify(execFile);

let tmp: string;
let rootA: CaKeyPair;
let rootB: CaKeyPair;
let server: WorkloadCert;
let client: WorkloadCert;
let foreign: WorkloadCert;
let expired: WorkloadCert;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'skiff-ca-'));
  rootA = createRootCa();
  rootB = createRootCa({ commonName: 'other root', organization: 'elsewhere' });
  server = issueWorkloadCert({ ca: rootA, namespace: 'default', serviceAccount: 'productpage' });
  client = issueWorkloadCert({ ca: rootA, namespace: 'frontend', serviceAccount: 'sleep', ttlHours: 1 });
  foreign = issueWorkloadCert({ ca: rootB, namespace: 'frontend', serviceAccount: 'sleep' });
  expired = issueWorkloadCert({ ca: rootA, namespace: 'frontend', serviceAccount: 'sleep', notBefore: new Date(Date.now() - 2 * 86_400_000), ttlHours: 1 });
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function files(name: string, contents: Record<string, string>): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [file, text] of Object.entries(contents)) {
    out[file] = join(tmp, `${name}-${file}`);
    await writeFile(out[file]!, text);
  }
  return out;
}

describe('certificates, as OpenSSL sees them', () => {
  it('verifies the leaf against root-cert.pem and shows the SPIFFE URI SAN (critical)', async () => {
    const f = await files('openssl', { root: server.rootCertPem, chain: server.certChainPem, other: rootB.certPem });
    const ok = await run('openssl', ['verify', '-CAfile', f.root!, f.chain!]);
    expect(ok.stdout.trim()).toBe(`${f.chain}: OK`);
    const san = await run('openssl', ['x509', '-in', f.chain!, '-noout', '-ext', 'subjectAltName']);
    expect(san.stdout).toMatch(/X509v3 Subject Alternative Name: critical\s+URI:spiffe:\/\/cluster\.local\/ns\/default\/sa\/productpage\s*$/);
    await expect(run('openssl', ['verify', '-CAfile', f.other!, f.chain!])).rejects.toThrow(/unable to get local issuer certificate/);
  });

  it('has Istio\'s workload profile: empty subject, serverAuth+clientAuth, CA:false, one cert in the chain', () => {
    expect(server.spiffeId).toBe('spiffe://cluster.local/ns/default/sa/productpage');
    expect(server.certChainPem.match(/BEGIN CERTIFICATE/g)).toHaveLength(1);
    expect(server.keyPem).toMatch(/^-----BEGIN RSA PRIVATE KEY-----\n/);
    expect(server.rootCertPem).toBe(rootA.certPem);
    const leaf = new X509Certificate(server.certChainPem);
    expect(leaf.subject ?? '').toBe(''); // Node gives undefined for an empty subject
    expect(leaf.issuer).toBe('O=skiff\nCN=skiff root CA');
    expect(leaf.subjectAltName).toBe('URI:spiffe://cluster.local/ns/default/sa/productpage');
    expect(leaf.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    expect(leaf.ca).toBe(false);
    expect(leaf.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(leaf.serialNumber).toMatch(/^[0-9A-F]{1,34}$/);
    expect(leaf.serialNumber).not.toBe(new X509Certificate(client.certChainPem).serialNumber);
    expect(leaf.verify(new X509Certificate(rootA.certPem).publicKey)).toBe(true);
    const lifetime = Date.parse(leaf.validTo) - Date.parse(leaf.validFrom);
    expect(lifetime).toBe(24 * 3_600_000);
    expect(server.notAfter.getTime()).toBe(Date.parse(leaf.validTo));
    const root = new X509Certificate(rootA.certPem);
    expect(root.ca).toBe(true);
    expect(root.subject).toBe(root.issuer);
    expect(Date.parse(root.validTo) - Date.parse(root.validFrom)).toBe(3650 * 86_400_000);
  });

  it('adds DNS SANs after the URI and honours the trust domain', () => {
    const cert = issueWorkloadCert({ ca: rootB, trustDomain: 'example.org', namespace: 'istio-system', serviceAccount: 'gw', dnsNames: ['gw.example.org'] });
    expect(cert.spiffeId).toBe('spiffe://example.org/ns/istio-system/sa/gw');
    expect(new X509Certificate(cert.certChainPem).subjectAltName).toBe('URI:spiffe://example.org/ns/istio-system/sa/gw, DNS:gw.example.org');
  });

  it('refuses CA material that cannot sign', () => {
    const asCa = (ca: CaKeyPair) => () => issueWorkloadCert({ ca, namespace: 'a', serviceAccount: 'b' });
    expect(asCa({ certPem: rootA.certPem, keyPem: rootB.keyPem })).toThrow(/does not match/);
    expect(asCa({ certPem: server.certChainPem, keyPem: server.keyPem })).toThrow(/is not a CA/);
    expect(asCa({ certPem: rootA.certPem + rootB.certPem, keyPem: rootA.keyPem })).toThrow(/intermediate CAs are not supported/);
    expect(asCa({ certPem: 'nope', keyPem: rootA.keyPem })).toThrow(SkiffError);
    expect(() => issueWorkloadCert({ ca: rootA, namespace: 'a/b', serviceAccount: 'b' })).toThrow(RangeError);
    expect(() => issueWorkloadCert({ ca: rootA, namespace: 'a', serviceAccount: 'b', ttlHours: 0 })).toThrow(RangeError);
  });
});

// === mutual TLS between real Node peers ===

interface Accepted {
  readonly authorized: boolean;
  readonly authorizationError: string | undefined;
  readonly peerSan: string | undefined;
}

interface MtlsServer {
  readonly port: number;
  readonly accepted: Accepted[];
  close(): Promise<void>;
}

/** A TLS server requiring client certs; each accepted peer gets "hello <its URI SAN>". */
async function mtlsServer(creds: WorkloadCert, rejectUnauthorized = true): Promise<MtlsServer> {
  const accepted: Accepted[] = [];
  const srv: Server = createServer({ key: creds.keyPem, cert: creds.certChainPem, ca: creds.rootCertPem, requestCert: true, rejectUnauthorized }, (socket) => {
    const peer = socket.getPeerCertificate();
    const err = socket.authorizationError as unknown;
    accepted.push({
      authorized: socket.authorized,
      authorizationError: err === null || err === undefined ? undefined : String((err as { code?: string }).code ?? err),
      peerSan: peer.subjectaltname,
    });
    socket.end(`hello ${peer.subjectaltname ?? '(none)'}`);
  });
  srv.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    port: (srv.address() as AddressInfo).port,
    accepted,
    close: () => new Promise((resolve) => srv.close(() => resolve())),
  };
}

type Dial = { ok: true; reply: string; serverSan: string | undefined } | { ok: false; code: string };

/**
 * Connects with a workload cert, verifying the server by its URI SAN (as Envoy's SAN matcher
 * does; there is no hostname to check) and reads the server's greeting.
 */
function dial(port: number, creds: WorkloadCert, expectServer: string): Promise<Dial> {
  return new Promise((resolve) => {
    let reply = '';
    let serverSan: string | undefined;
    const socket: TLSSocket = connect({
      host: '127.0.0.1',
      port,
      key: creds.keyPem,
      cert: creds.certChainPem,
      ca: creds.rootCertPem,
      checkServerIdentity: (_host: string, cert: PeerCertificate) =>
        cert.subjectaltname === `URI:${expectServer}` ? undefined : new Error(`server SAN ${cert.subjectaltname} is not ${expectServer}`),
    });
    socket.setEncoding('utf8');
    socket.on('secureConnect', () => (serverSan = socket.getPeerCertificate().subjectaltname));
    socket.on('data', (d: string) => (reply += d));
    socket.on('error', (err: NodeJS.ErrnoException) => resolve({ ok: false, code: err.code ?? err.message }));
    socket.on('close', () => resolve(reply === '' ? { ok: false, code: 'CLOSED_WITHOUT_REPLY' } : { ok: true, reply, serverSan }));
  });
}

describe('mutual TLS with issued certificates', () => {
  it('completes a mutual handshake; each side sees the other\'s SPIFFE URI', async () => {
    const srv = await mtlsServer(server);
    try {
      const result = await dial(srv.port, client, server.spiffeId);
      expect(result).toEqual({ ok: true, reply: `hello URI:${client.spiffeId}`, serverSan: `URI:${server.spiffeId}` });
      expect(srv.accepted).toEqual([{ authorized: true, authorizationError: undefined, peerSan: 'URI:spiffe://cluster.local/ns/frontend/sa/sleep' }]);
    } finally {
      await srv.close();
    }
  });

  it('rejects a client whose cert comes from another root', async () => {
    const strict = await mtlsServer(server);
    const lenient = await mtlsServer(server, false);
    try {
      // The client trusts rootA (the server is genuine); only its own cert is foreign.
      const creds = { ...foreign, rootCertPem: rootA.certPem };
      const result = await dial(strict.port, creds, server.spiffeId);
      expect(result.ok).toBe(false);
      expect(strict.accepted).toEqual([]);
      // The reason, from a server that reports instead of closing.
      await dial(lenient.port, creds, server.spiffeId);
      expect(lenient.accepted).toEqual([{ authorized: false, authorizationError: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', peerSan: `URI:${foreign.spiffeId}` }]);
    } finally {
      await Promise.all([strict.close(), lenient.close()]);
    }
  });

  it('rejects an expired cert with CERT_HAS_EXPIRED, on either side', async () => {
    expect(expired.notAfter.getTime()).toBeLessThan(Date.now());
    const strict = await mtlsServer(server);
    const lenient = await mtlsServer(server, false);
    const expiredServer = await mtlsServer(expired);
    try {
      expect((await dial(strict.port, expired, server.spiffeId)).ok).toBe(false);
      expect(strict.accepted).toEqual([]);
      await dial(lenient.port, expired, server.spiffeId);
      expect(lenient.accepted).toEqual([expect.objectContaining({ authorized: false, authorizationError: 'CERT_HAS_EXPIRED' })]);
      // A client refuses a server presenting an expired cert.
      expect(await dial(expiredServer.port, client, expired.spiffeId)).toEqual({ ok: false, code: 'CERT_HAS_EXPIRED' });
      expect(expiredServer.accepted).toEqual([]);
    } finally {
      await Promise.all([strict.close(), lenient.close(), expiredServer.close()]);
    }
  });

  it('rejects a server whose SPIFFE id is not the expected one', async () => {
    const srv = await mtlsServer(server);
    try {
      const result = await dial(srv.port, client, 'spiffe://cluster.local/ns/default/sa/reviews');
      expect(result.ok).toBe(false);
    } finally {
      await srv.close();
    }
  });
});

// === the CLI ===

const mode = async (path: string) => (await stat(path)).mode & 0o777;

describe('skiff ca', () => {
  it('init then issue with the defaults (./ca, Istio\'s credentials dir), verified by OpenSSL', async () => {
    const cwd = await mkdtemp(join(tmp, 'cli-'));
    const init = await runSkiff(['ca', 'init'], { cwd });
    expect(init.stderr).toBe('');
    expect(init.code).toBe(0);
    expect(init.stdout).toContain(join('ca', 'root-cert.pem'));
    expect(await mode(join(cwd, 'ca/root-key.pem'))).toBe(0o600);
    expect(await mode(join(cwd, 'ca/root-cert.pem'))).toBe(0o644);

    const issue = await runSkiff(['ca', 'issue', '--ns', 'default', '--sa', 'web', '--ttl', '90m'], { cwd });
    expect(issue.stderr).toBe('');
    expect(issue.code).toBe(0);
    expect(issue.stdout).toContain('issued spiffe://cluster.local/ns/default/sa/web');
    const expiry = /expires (\S+)/.exec(issue.stdout)?.[1];
    expect(Math.abs(Date.parse(expiry!) - (Date.now() + 90 * 60_000))).toBeLessThan(60_000);

    const out = join(cwd, 'var/run/secrets/workload-spiffe-credentials');
    expect(await mode(join(out, 'key.pem'))).toBe(0o600);
    expect(await readFile(join(out, 'root-cert.pem'), 'utf8')).toBe(await readFile(join(cwd, 'ca/root-cert.pem'), 'utf8'));
    const ok = await run('openssl', ['verify', '-CAfile', join(out, 'root-cert.pem'), join(out, 'cert-chain.pem')]);
    expect(ok.stdout).toContain(': OK');
    const key = await run('openssl', ['pkey', '-in', join(out, 'key.pem'), '-pubout']);
    const certKey = await run('openssl', ['x509', '-in', join(out, 'cert-chain.pem'), '-noout', '-pubkey']);
    expect(key.stdout).toBe(certKey.stdout);
  });

  it('refuses to overwrite a CA without --force, and replaces it with --force', async () => {
    const dir = join(tmp, 'cli-force');
    expect((await runSkiff(['ca', 'init', '--dir', dir])).code).toBe(0);
    const before = await readFile(join(dir, 'root-cert.pem'), 'utf8');
    const again = await runSkiff(['ca', 'init', '--dir', dir]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already exist.*--force/);
    expect(await readFile(join(dir, 'root-cert.pem'), 'utf8')).toBe(before);
    const forced = await runSkiff(['ca', 'init', '--dir', dir, '--force']);
    expect(forced.code).toBe(0);
    expect(await readFile(join(dir, 'root-cert.pem'), 'utf8')).not.toBe(before);
    expect(await mode(join(dir, 'root-key.pem'))).toBe(0o600);
  });

  it('rejects bad flags with a usage error naming the flag', async () => {
    const caDir = join(tmp, 'cli-flags');
    const issue = (...args: string[]) => ['issue', '--ca-dir', caDir, ...args];
    const cases: Array<[string[], RegExp]> = [
      [issue('--sa', 'web'), /needs --ns/],
      [issue('--ns', 'default'), /needs --sa/],
      [issue('--ns', 'a/b', '--sa', 'web'), /--ns "a\/b"/],
      [issue('--ns', 'default', '--sa', ''), /--sa must not be empty/],
      [issue('--ns', 'default', '--sa', 'web', '--ttl', '5x'), /--ttl: invalid duration "5x"/],
      [issue('--ns', 'default', '--sa', 'web', '--ttl', '0'), /--ttl must be at least 1s/],
      [issue('--ns', 'default', '--sa', 'web', '--ttl', '2161h'), /--ttl must be at most 2160h/],
      [issue('--ns', 'default', '--sa', 'web', '--trust-domain', 'Bad:td'), /--trust-domain/],
      [issue('--ns', 'default', '--sa', 'web'), /--ca-dir .*cli-flags.*ENOENT.*skiff ca init/],
      [['init', '--dir', caDir, '--nope'], /--nope/],
      [['sign'], /unknown ca subcommand "sign"/],
      [[], /init.*issue/],
    ];
    for (const [args, message] of cases) {
      const failure = await caCommand(args).then(() => undefined, (err: unknown) => err);
      expect(failure, args.join(' ')).toBeInstanceOf(SkiffError);
      expect((failure as SkiffError).code).toBe('USAGE');
      expect((failure as SkiffError).message, args.join(' ')).toMatch(message);
    }
  });

  it('exits 1 on a bad flag, naming it', async () => {
    const [unknown, badTtl] = await Promise.all([
      runSkiff(['ca', 'issue', '--ns', 'default', '--sa', 'web', '--bogus'], { cwd: tmp }),
      runSkiff(['ca', 'issue', '--ns', 'default', '--sa', 'web', '--ttl', '1d'], { cwd: tmp }),
    ]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^skiff: .*--bogus/);
    expect(badTtl.code).toBe(1);
    expect(badTtl.stderr).toMatch(/^skiff: --ttl: invalid duration "1d"/);
    expect(unknown.stdout + badTtl.stdout).toBe('');
  });
});
