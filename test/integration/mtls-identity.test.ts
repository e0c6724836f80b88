/**
 * Workload identity with real certificates from the mini CA and real Node TLS handshakes:
 * the inbound chain check (`chainError`) on the peer certificates a TLS server actually sees,
 * secure naming (`secureNamingError`), loading Istio's credential files (`loadCredentials`), the
 * inbound mTLS termination, and `x-forwarded-client-cert` as Envoy's APPEND_FORWARD writes it.
 */
import { spawnSync } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type DetailedPeerCertificate, type PeerCertificate, type Server, type TLSSocket } from 'node:tls';
import forge from 'node-forge';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeaderMap } from '../../src/http/headers.js';
import { setClientCertHeader } from '../../src/http/client-cert-header.js';
import { StreamInfo, type DownstreamPeer, type DownstreamStream } from '../../src/http/stream.js';
import { createRootCa, issueWorkloadCert, type CaKeyPair, type WorkloadCert } from '../../src/security/ca.js';
import { CERT_FILES, loadCredentials, pemCertificates, spiffeUriOf, type WorkloadCredentials } from '../../src/security/cert-store.js';
import { terminateMtls, type MtlsPeer } from '../../src/security/inbound-mtls.js';
import { chainError } from '../../src/security/server-handshake.js';
import { secureNamingError } from '../../src/security/peer-identity.js';

// === fixtures ===

const HOUR = 3_600_000;

let tmp: string;
let rootA: CaKeyPair;
let rootB: CaKeyPair;
/** rootA: default/productpage (the server), frontend/sleep (the client). */
let server: WorkloadCert;
let client: WorkloadCert;
/** frontend/sleep from rootB. */
let foreign: WorkloadCert;
/** rootA, valid 2 days ago for 1 hour. */
let expired: WorkloadCert;
/** rootA, trust domain example.org. */
let otherDomain: WorkloadCert;
let rootAX509: X509Certificate;
let rootBX509: X509Certificate;

/** A TLS server asking for, but not verifying, client certificates: it records what it sees. */
let observer: Server;
let observerPort: number;
let onObserved: ((peer: DetailedPeerCertificate) => void) | null = null;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'skiff-mtls-identity-'));
  rootA = createRootCa();
  rootB = createRootCa({ commonName: 'other root', organization: 'elsewhere' });
  rootAX509 = new X509Certificate(rootA.certPem);
  rootBX509 = new X509Certificate(rootB.certPem);
  server = issueWorkloadCert({ ca: rootA, namespace: 'default', serviceAccount: 'productpage' });
  client = issueWorkloadCert({ ca: rootA, namespace: 'frontend', serviceAccount: 'sleep' });
  foreign = issueWorkloadCert({ ca: rootB, namespace: 'frontend', serviceAccount: 'sleep' });
  expired = issueWorkloadCert({ ca: rootA, namespace: 'frontend', serviceAccount: 'sleep', notBefore: new Date(Date.now() - 48 * HOUR), ttlHours: 1 });
  otherDomain = issueWorkloadCert({ ca: rootA, trustDomain: 'example.org', namespace: 'default', serviceAccount: 'productpage' });

  // Both roots as `ca`: Node then fills in issuerCertificate, so the chain walk is exercised.
  observer = createServer({ key: server.keyPem, cert: server.certChainPem, ca: [rootA.certPem, rootB.certPem], requestCert: true, rejectUnauthorized: false }, (socket) => {
    onObserved?.(socket.getPeerCertificate(true));
    socket.end();
  });
  observer.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => observer.listen(0, '127.0.0.1', resolve));
  observerPort = (observer.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((resolve) => observer.close(() => resolve()));
  await rm(tmp, { recursive: true, force: true });
});

interface Observed {
  /** The client certificate as the TLS server saw it (`getPeerCertificate(true)`). */
  readonly atServer: DetailedPeerCertificate;
  /** The server certificate as the client saw it. */
  readonly atClient: PeerCertificate;
}

/** One real handshake with the observer, presenting `cert` (or no certificate). */
async function handshake(cert: { certPem: string; keyPem: string } | null): Promise<Observed> {
  const atServer = new Promise<DetailedPeerCertificate>((resolve) => {
    onObserved = resolve;
  });
  const socket = connect({
    host: '127.0.0.1',
    port: observerPort,
    ...(cert !== null ? { cert: cert.certPem, key: cert.keyPem } : {}),
    rejectUnauthorized: false,
  });
  const atClient = await new Promise<PeerCertificate>((resolve, reject) => {
    socket.once('secureConnect', () => resolve(socket.getPeerCertificate()));
    socket.once('error', reject);
  });
  const seen = await atServer;
  onObserved = null;
  socket.destroy();
  return { atServer: seen, atClient };
}

const leafOf = (w: WorkloadCert): { certPem: string; keyPem: string } => ({ certPem: w.certChainPem, keyPem: w.keyPem });

/** Writes an Istio credential directory (only the files given). */
async function credentialDir(name: string, files: Partial<Record<keyof typeof CERT_FILES, string>>): Promise<string> {
  const dir = join(tmp, name);
  await mkdir(dir, { recursive: true });
  for (const [k, text] of Object.entries(files)) await writeFile(join(dir, CERT_FILES[k as keyof typeof CERT_FILES]), text);
  return dir;
}

interface ForgeOptions {
  readonly issuer: CaKeyPair;
  readonly ca: boolean;
  readonly uri?: string;
  readonly notBefore?: Date;
  readonly hours?: number;
  /** keyUsage keyCertSign without being a CA. */
  readonly keyCertSign?: boolean;
}

let forgeKeys: Array<{ publicKey: string; privateKey: string }> | undefined;

/**
 * A certificate the mini CA cannot make (an intermediate CA, or a leaf signed by a non-CA key),
 * built with node-forge as ca.ts builds its own.
 */
function forgeCert(o: ForgeOptions): CaKeyPair {
  const signer = o.ca || o.keyCertSign === true;
  // Key generation dominates the run time: signers share one key, leaves another.
  forgeKeys ??= [0, 1].map(() =>
    generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs1', format: 'pem' } }),
  );
  const keys = forgeKeys[signer ? 0 : 1]!;
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(keys.publicKey);
  cert.serialNumber = `01${randomBytes(8).toString('hex')}`;
  const from = o.notBefore ?? new Date(Date.now() - 60_000);
  cert.validity.notBefore = from;
  cert.validity.notAfter = new Date(from.getTime() + (o.hours ?? 24) * HOUR);
  const subject = signer ? [{ shortName: 'CN', value: `intermediate ${cert.serialNumber}` }] : [];
  cert.setSubject(subject);
  cert.setIssuer(forge.pki.certificateFromPem(o.issuer.certPem).subject.attributes);
  const extensions: object[] = [
    { name: 'basicConstraints', cA: o.ca, critical: true },
    signer ? { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true } : { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
  ];
  if (o.uri !== undefined) extensions.push({ name: 'subjectAltName', critical: !signer, altNames: [{ type: 6, value: o.uri }] });
  cert.setExtensions(extensions);
  cert.sign(forge.pki.privateKeyFromPem(o.issuer.keyPem), forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert).replace(/\r\n/g, '\n'), keyPem: keys.privateKey };
}

const setOf = (w: WorkloadCert): Record<keyof typeof CERT_FILES, string> => ({ chain: w.certChainPem, key: w.keyPem, root: w.rootCertPem });

// === chainError ===

describe('chainError on real peer certificates', () => {
  it('accepts a leaf issued by a trusted root', async () => {
    const { atServer } = await handshake(leafOf(client));
    expect(atServer.raw).toBeInstanceOf(Buffer);
    expect(chainError(atServer, [rootAX509])).toBeUndefined();
    // Any one trusted root is enough.
    expect(chainError(atServer, [rootBX509, rootAX509])).toBeUndefined();
  });

  it('refuses a leaf from a root that is not trusted, with or without its issuer in the chain', async () => {
    const { atServer } = await handshake(leafOf(foreign));
    expect(atServer.issuerCertificate?.raw).toBeDefined(); // the observer knows rootB
    expect(chainError(atServer, [rootAX509])).toBe('client certificate is not issued by a trusted root');
    // And ours is not accepted by a workload that trusts only rootB.
    const ours = await handshake(leafOf(client));
    expect(chainError(ours.atServer, [rootBX509])).toBe('client certificate is not issued by a trusted root');
    expect(chainError(ours.atServer, [])).toBe('client certificate is not issued by a trusted root');
  });

  it('refuses an expired leaf', async () => {
    const { atServer } = await handshake(leafOf(expired));
    expect(chainError(atServer, [rootAX509])).toBe('client certificate expired or not yet valid');
  });

  it('judges validity at `now`: before notBefore and after notAfter are refused', async () => {
    const { atServer } = await handshake(leafOf(client));
    const leaf = new X509Certificate(atServer.raw);
    const from = Date.parse(leaf.validFrom);
    const to = Date.parse(leaf.validTo);
    expect(chainError(atServer, [rootAX509], new Date(from - 1000))).toBe('client certificate expired or not yet valid');
    expect(chainError(atServer, [rootAX509], new Date(to + 1000))).toBe('client certificate expired or not yet valid');
    expect(chainError(atServer, [rootAX509], new Date(to - 1000))).toBeUndefined();
    // The expired one was valid during its hour.
    const old = await handshake(leafOf(expired));
    expect(chainError(old.atServer, [rootAX509], new Date(Date.parse(new X509Certificate(old.atServer.raw).validFrom) + 60_000))).toBeUndefined();
  });

  it('walks intermediates: a valid one leads to the root; an expired one or a non-CA issuer is refused', async () => {
    const intermediate = forgeCert({ issuer: rootA, ca: true });
    const leaf = forgeCert({ issuer: intermediate, ca: false, uri: 'spiffe://cluster.local/ns/frontend/sa/sleep' });
    const good = await handshake({ certPem: leaf.certPem + intermediate.certPem, keyPem: leaf.keyPem });
    expect(chainError(good.atServer, [rootAX509])).toBeUndefined();
    expect(chainError(good.atServer, [rootBX509])).toBe('client certificate is not issued by a trusted root');
    // Without the intermediate the leaf leads nowhere.
    const alone = await handshake(leaf);
    expect(chainError(alone.atServer, [rootAX509])).toBe('client certificate is not issued by a trusted root');

    const stale = forgeCert({ issuer: rootA, ca: true, notBefore: new Date(Date.now() - 72 * HOUR), hours: 1 });
    const underStale = forgeCert({ issuer: stale, ca: false, uri: 'spiffe://cluster.local/ns/frontend/sa/sleep' });
    const expiredChain = await handshake({ certPem: underStale.certPem + stale.certPem, keyPem: underStale.keyPem });
    expect(chainError(expiredChain.atServer, [rootAX509])).toBe('an issuer in the chain is expired');

    // A workload certificate (CA:false, no keyCertSign) used to mint another identity: Node does
    // not even link it as the issuer, so the leaf leads to no trusted root.
    const rogue = forgeCert({ issuer: { certPem: client.certChainPem, keyPem: client.keyPem }, ca: false, uri: 'spiffe://cluster.local/ns/default/sa/admin' });
    const rogueChain = await handshake({ certPem: rogue.certPem + client.certChainPem, keyPem: rogue.keyPem });
    expect(chainError(rogueChain.atServer, [rootAX509])).toBe('client certificate is not issued by a trusted root');
    // An issuer allowed to sign certificates (keyCertSign) but not a CA (basicConstraints CA:false).
    const notCa = forgeCert({ issuer: rootA, ca: false, keyCertSign: true });
    const underNotCa = forgeCert({ issuer: notCa, ca: false, uri: 'spiffe://cluster.local/ns/default/sa/admin' });
    const notCaChain = await handshake({ certPem: underNotCa.certPem + notCa.certPem, keyPem: underNotCa.keyPem });
    expect(chainError(notCaChain.atServer, [rootAX509])).toBe('an issuer in the chain is not a CA');
  });

  it('refuses a connection without a client certificate', async () => {
    const { atServer } = await handshake(null);
    expect(atServer.raw).toBeUndefined(); // Node gives an empty object
    expect(chainError(atServer, [rootAX509])).toBe('no client certificate');
    expect(chainError(undefined, [rootAX509])).toBe('no client certificate');
  });
});

// === secureNamingError ===

describe('secureNamingError (the client checking the server identity)', () => {
  it('passes when the server identity is one of the expected ones', async () => {
    const { atClient } = await handshake(leafOf(client));
    expect(spiffeUriOf(atClient)).toBe('spiffe://cluster.local/ns/default/sa/productpage');
    expect(secureNamingError(atClient, ['spiffe://cluster.local/ns/default/sa/productpage'], 'cluster.local')).toBeUndefined();
    expect(secureNamingError(atClient, ['spiffe://cluster.local/ns/default/sa/other', 'spiffe://cluster.local/ns/default/sa/productpage'], 'cluster.local')).toBeUndefined();
  });

  it('fails when it is not, naming both sides', async () => {
    const { atClient } = await handshake(leafOf(client));
    const why = secureNamingError(atClient, ['spiffe://cluster.local/ns/default/sa/reviews'], 'cluster.local');
    expect(why).toBe('server identity spiffe://cluster.local/ns/default/sa/productpage is not one of spiffe://cluster.local/ns/default/sa/reviews');
    // Exact match only: no prefix or case folding.
    expect(secureNamingError(atClient, ['spiffe://cluster.local/ns/default/sa/product'], 'cluster.local')).toBeDefined();
    expect(secureNamingError(atClient, ['spiffe://cluster.local/ns/default/sa/ProductPage'], 'cluster.local')).toBeDefined();
  });

  it('with nothing expected, accepts any identity of the trust domain and nothing outside it', async () => {
    const ours = (await handshake(leafOf(client))).atServer;
    expect(secureNamingError(ours, [], 'cluster.local')).toBeUndefined();
    expect(secureNamingError(ours, [], 'example.org')).toBe('server identity spiffe://cluster.local/ns/frontend/sa/sleep is outside trust domain example.org');
    const theirs = (await handshake(leafOf(otherDomain))).atServer;
    expect(spiffeUriOf(theirs)).toBe('spiffe://example.org/ns/default/sa/productpage');
    expect(secureNamingError(theirs, [], 'cluster.local')).toBe('server identity spiffe://example.org/ns/default/sa/productpage is outside trust domain cluster.local');
    expect(secureNamingError(theirs, [], 'example.org')).toBeUndefined();
  });

  it('a trust domain that merely starts with ours is another trust domain', async () => {
    const evil = issueWorkloadCert({ ca: rootA, trustDomain: 'cluster.local.evil', namespace: 'default', serviceAccount: 'productpage' });
    const { atServer } = await handshake(leafOf(evil));
    expect(secureNamingError(atServer, [], 'cluster.local')).toMatch(/outside trust domain cluster\.local$/);
  });

  it('fails for a certificate without a SPIFFE URI SAN, whatever is expected', async () => {
    // The root itself: a real certificate with a subject and no SAN at all.
    const { atServer } = await handshake(rootB);
    expect(atServer.raw).toBeDefined();
    expect(spiffeUriOf(atServer)).toBeUndefined();
    expect(secureNamingError(atServer, [], 'cluster.local')).toBe('the server certificate has no SPIFFE identity');
    expect(secureNamingError(atServer, ['spiffe://cluster.local/ns/default/sa/productpage'], 'cluster.local')).toBe('the server certificate has no SPIFFE identity');
  });
});

// === certificate helpers ===

describe('spiffeUriOf and pemCertificates', () => {
  it('reads the URI SAN from X509Certificate and peer-certificate objects alike, after DNS SANs too', async () => {
    const withDns = issueWorkloadCert({ ca: rootA, namespace: 'gw', serviceAccount: 'ingress', dnsNames: ['gw.example.com'] });
    expect(spiffeUriOf(new X509Certificate(withDns.certChainPem))).toBe('spiffe://cluster.local/ns/gw/sa/ingress');
    const { atServer } = await handshake(leafOf(withDns));
    expect(spiffeUriOf(atServer)).toBe('spiffe://cluster.local/ns/gw/sa/ingress');
    expect(spiffeUriOf({ subjectaltname: 'DNS:a.example, URI:https://not-spiffe.example, URI:spiffe://td/ns/a/sa/b' })).toBe('spiffe://td/ns/a/sa/b');
    expect(spiffeUriOf({})).toBeUndefined();
    expect(spiffeUriOf(rootAX509)).toBeUndefined();
  });

  it('splits a PEM bundle into its certificates, in order', () => {
    const bundle = `# roots\n${rootA.certPem}\nsome text\n${rootB.certPem}`;
    const certs = pemCertificates(bundle);
    expect(certs.map((c) => c.fingerprint256)).toEqual([rootAX509.fingerprint256, rootBX509.fingerprint256]);
    expect(pemCertificates('')).toEqual([]);
    expect(pemCertificates(server.keyPem)).toEqual([]);
  });
});

// === loadCredentials ===

describe('loadCredentials (Istio file layout)', () => {
  it('loads a good set, whose context completes mutual TLS with a peer of the same root', async () => {
    const creds = await loadCredentials(await credentialDir('good', setOf(client)));
    expect(creds.identity).toBe('spiffe://cluster.local/ns/frontend/sa/sleep');
    expect(creds.notAfter.getTime()).toBe(client.notAfter.getTime());
    expect(creds.leaf.fingerprint256).toBe(new X509Certificate(client.certChainPem).fingerprint256);
    expect(creds.roots.map((r) => r.fingerprint256)).toEqual([rootAX509.fingerprint256]);

    // A server that verifies client certificates against rootA accepts this context's.
    const verifying = createServer({ key: server.keyPem, cert: server.certChainPem, ca: rootA.certPem, requestCert: true, rejectUnauthorized: true }, (s) => {
      s.end(`${s.authorized} ${s.getPeerCertificate().subjectaltname}`);
    });
    verifying.on('tlsClientError', () => undefined);
    await new Promise<void>((resolve) => verifying.listen(0, '127.0.0.1', resolve));
    try {
      const socket = connect({ host: '127.0.0.1', port: (verifying.address() as AddressInfo).port, secureContext: creds.context, checkServerIdentity: () => undefined });
      const reply = await new Promise<string>((resolve, reject) => {
        let out = '';
        socket.on('data', (d: Buffer) => (out += d.toString()));
        socket.on('end', () => resolve(out));
        socket.on('error', reject);
      });
      expect(reply).toBe('true URI:spiffe://cluster.local/ns/frontend/sa/sleep');
      expect(socket.authorized).toBe(true); // the context's root verified the server, too
    } finally {
      await new Promise<void>((resolve) => verifying.close(() => resolve()));
    }
  });

  it('accepts a root bundle holding several roots', async () => {
    const creds = await loadCredentials(await credentialDir('bundle', { ...setOf(client), root: rootB.certPem + rootA.certPem }));
    expect(creds.roots).toHaveLength(2);
  });

  it('refuses an expired leaf, and a leaf that has expired by `now`', async () => {
    await expect(loadCredentials(await credentialDir('expired', setOf(expired)))).rejects.toThrow(/cert-chain\.pem expired at/);
    const dir = await credentialDir('later', setOf(client));
    await expect(loadCredentials(dir, new Date(client.notAfter.getTime() + 1000))).rejects.toThrow(/expired/);
    await expect(loadCredentials(dir, new Date(client.notAfter.getTime() - 1000))).resolves.toBeDefined();
  });

  it('refuses a key that does not match the certificate', async () => {
    await expect(loadCredentials(await credentialDir('mismatch', { ...setOf(client), key: server.keyPem }))).rejects.toThrow(/key values mismatch|key/i);
  });

  it('refuses a leaf issued by another root', async () => {
    await expect(loadCredentials(await credentialDir('foreign', { ...setOf(foreign), root: rootA.certPem }))).rejects.toThrow('cert-chain.pem is not issued by root-cert.pem');
  });

  // The chain is walked from the leaf through intermediates to a root of root-cert.pem.
  it('refuses a leaf from another root even when the chain carries extra certificates', async () => {
    const dir = await credentialDir('foreign-chain', { chain: foreign.certChainPem + rootB.certPem, key: foreign.keyPem, root: rootA.certPem });
    await expect(loadCredentials(dir)).rejects.toThrow(/not issued by/);
  });

  it('refuses a missing file', async () => {
    for (const missing of ['chain', 'key', 'root'] as const) {
      const files: Partial<Record<keyof typeof CERT_FILES, string>> = setOf(client);
      delete files[missing];
      await expect(loadCredentials(await credentialDir(`missing-${missing}`, files)), missing).rejects.toThrow(/ENOENT/);
    }
    await expect(loadCredentials(join(tmp, 'no-such-dir'))).rejects.toThrow(/ENOENT/);
  });

  it('refuses a root file without a certificate and a leaf without a SPIFFE URI', async () => {
    await expect(loadCredentials(await credentialDir('no-root', { ...setOf(client), root: 'not a certificate\n' }))).rejects.toThrow('root-cert.pem holds no certificate');
    await expect(loadCredentials(await credentialDir('no-spiffe', { chain: rootA.certPem, key: rootA.keyPem, root: rootA.certPem }))).rejects.toThrow(
      'cert-chain.pem has no SPIFFE URI SAN',
    );
  });
});

// === inbound mTLS termination and XFCC ===

interface Terminated {
  readonly result: { peer: MtlsPeer } | { error: string };
}

/** A TCP listener handing every connection to terminateMtls with `creds`. */
async function withTerminator<T>(creds: WorkloadCredentials, body: (port: number, results: Array<Promise<Terminated>>) => Promise<T>): Promise<T> {
  const results: Array<Promise<Terminated>> = [];
  const open: TLSSocket[] = [];
  const srv: TcpServer = createTcpServer((socket) => {
    socket.pause();
    results.push(
      new Promise((resolve) =>
        terminateMtls(socket, null, creds, true, (r) => {
          if ('socket' in r) {
            open.push(r.socket);
            resolve({ result: { peer: r.peer } });
          } else resolve({ result: r });
        }),
      ),
    );
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  try {
    return await body((srv.address() as AddressInfo).port, results);
  } finally {
    for (const s of open) s.destroy();
    await new Promise<void>((resolve) => srv.close(() => resolve()));
  }
}

/** Connects as `who` (or with no certificate) offering Istio's HTTP ALPN; resolves on the server's verdict. */
async function dialTerminator(port: number, results: Array<Promise<Terminated>>, who: WorkloadCert | null): Promise<Terminated> {
  const socket = connect({
    host: '127.0.0.1',
    port,
    ca: rootA.certPem,
    ...(who !== null ? { cert: who.certChainPem, key: who.keyPem } : {}),
    ALPNProtocols: ['istio-http/1.1'],
    checkServerIdentity: () => undefined,
  });
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => {
    const poll = (): void => (results.length > 0 ? resolve() : void setTimeout(poll, 5));
    poll();
  });
  const verdict = await results.shift()!;
  socket.destroy();
  return verdict;
}

function streamWith(headers: HeaderMap, peer: DownstreamPeer | null): DownstreamStream {
  const stream: Pick<DownstreamStream, 'headers' | 'info'> = { headers, info: new StreamInfo({
      remoteAddress: '10.0.0.9',
      remotePort: 40000,
      localAddress: '10.0.0.1',
      localPort: 9080,
      localAddressRestored: true,
      peer,
      tls: peer !== null,
      requestedServerName: undefined,
      serverHeader: 'istio-envoy',
    }),
  };
  return stream as DownstreamStream;
}

describe('inbound mTLS termination', () => {
  it('establishes the client identity, certificate hash, own identity and ALPN; refuses foreign and missing certificates', async () => {
    const creds = await loadCredentials(await credentialDir('terminator', setOf(server)));
    await withTerminator(creds, async (port, results) => {
      const ok = await dialTerminator(port, results, client);
      expect(ok.result).toEqual({
        peer: {
          identity: 'spiffe://cluster.local/ns/frontend/sa/sleep',
          certHash: createHash('sha256').update(new X509Certificate(client.certChainPem).raw).digest('hex'),
          localIdentity: 'spiffe://cluster.local/ns/default/sa/productpage',
          alpn: 'istio-http/1.1',
        },
      });
      expect((await dialTerminator(port, results, foreign)).result).toHaveProperty('error');
      expect((await dialTerminator(port, results, expired)).result).toHaveProperty('error');
      expect((await dialTerminator(port, results, null)).result).toHaveProperty('error');
    });
  });
});

describe('inbound mTLS termination: OpenSSL verification is enforced', () => {
  it('refuses a mesh-signed client certificate that is not for client authentication (serverAuth only)', async () => {
    // Signed by the right root with a SPIFFE SAN: only the purpose is wrong.
    const dir = join(tmp, 'server-only');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'root.pem'), rootA.certPem);
    await writeFile(join(dir, 'root.key'), rootA.keyPem);
    await writeFile(join(dir, 'ext'), 'subjectAltName=critical,URI:spiffe://cluster.local/ns/default/sa/sleep\nextendedKeyUsage=serverAuth\n');
    const run = (args: string[]): void => {
      const r = spawnSync('openssl', args, { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
    };
    run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'leaf.key'), '-out', join(dir, 'leaf.csr'), '-subj', '/']);
    run(['x509', '-req', '-in', join(dir, 'leaf.csr'), '-CA', join(dir, 'root.pem'), '-CAkey', join(dir, 'root.key'), '-CAcreateserial', '-days', '1', '-extfile', join(dir, 'ext'), '-out', join(dir, 'leaf.pem')]);
    const leaf = { certChainPem: readFileSync(join(dir, 'leaf.pem'), 'utf8'), keyPem: readFileSync(join(dir, 'leaf.key'), 'utf8') } as WorkloadCert;
    const creds = await loadCredentials(await credentialDir('purpose', setOf(server)));
    await withTerminator(creds, async (port, results) => {
      const verdict = await dialTerminator(port, results, leaf);
      expect(verdict.result).toEqual({ error: 'INVALID_PURPOSE' });
    });
  });
});

describe('x-forwarded-client-cert (APPEND_FORWARD)', () => {
  let peer: MtlsPeer;
  let element: string;

  beforeAll(async () => {
    const creds = await loadCredentials(await credentialDir('xfcc', setOf(server)));
    const verdict = await withTerminator(creds, (port, results) => dialTerminator(port, results, client));
    if (!('peer' in verdict.result)) throw new Error(`handshake refused: ${verdict.result.error}`);
    peer = verdict.result.peer;
    element = `By=spiffe://cluster.local/ns/default/sa/productpage;Hash=${peer.certHash};Subject="";URI=spiffe://cluster.local/ns/frontend/sa/sleep`;
  });

  it('sets the header from the mTLS peer when the request has none', () => {
    const headers = new HeaderMap(['host', 'accept'], ['reviews', '*/*']);
    setClientCertHeader(streamWith(headers, peer));
    expect(headers.get('x-forwarded-client-cert')).toBe(element);
    expect(headers.count('x-forwarded-client-cert')).toBe(1);
    expect(peer.certHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('appends to what an upstream proxy already forwarded', () => {
    const upstream = 'By=spiffe://cluster.local/ns/frontend/sa/sleep;Hash=abc;Subject="";URI=spiffe://cluster.local/ns/istio-system/sa/ingress';
    const headers = new HeaderMap(['host', 'x-forwarded-client-cert'], ['reviews', upstream]);
    setClientCertHeader(streamWith(headers, peer));
    expect(headers.get('x-forwarded-client-cert')).toBe(`${upstream},${element}`);
    expect(headers.count('x-forwarded-client-cert')).toBe(1);
  });

  it('an empty forwarded value is replaced, not left as a leading comma', () => {
    const headers = new HeaderMap(['x-forwarded-client-cert'], ['']);
    setClientCertHeader(streamWith(headers, peer));
    expect(headers.get('x-forwarded-client-cert')).toBe(element);
  });

  // Envoy coalesces repeated inline headers with "," before appending.
  it('appends after every forwarded line when the header is repeated', () => {
    const headers = new HeaderMap(['x-forwarded-client-cert', 'x-forwarded-client-cert'], ['By=a;URI=b', 'By=c;URI=d']);
    setClientCertHeader(streamWith(headers, peer));
    expect(headers.getJoined('x-forwarded-client-cert')).toBe(`By=a;URI=b,By=c;URI=d,${element}`);
  });

  it('removes the header, every line of it, on a plaintext connection', () => {
    const headers = new HeaderMap(
      ['host', 'x-forwarded-client-cert', 'accept', 'x-forwarded-client-cert'],
      ['reviews', 'By=spoofed;URI=spiffe://cluster.local/ns/default/sa/admin', '*/*', 'By=x'],
    );
    setClientCertHeader(streamWith(headers, null));
    expect(headers.has('x-forwarded-client-cert')).toBe(false);
    expect(headers.toObject()).toEqual({ host: 'reviews', accept: '*/*' });
    const none = new HeaderMap(['host'], ['reviews']);
    setClientCertHeader(streamWith(none, null));
    expect(none.toObject()).toEqual({ host: 'reviews' });
  });
});
