/**
 * A small certificate authority for standalone meshes and tests: a self-signed root and the
 * workload certificates Istio's CA (istiod / Citadel) would issue from it
 * (IST:security/pkg/pki/util/generate_cert.go, san.go):
 *
 * - root: subject O=<organization> CN=<common name>, basicConstraints CA:true (critical),
 *   keyUsage keyCertSign+cRLSign (critical), subjectKeyIdentifier; 3650 days by default.
 * - workload leaf: empty subject, the SPIFFE id as a URI SAN (critical, because the subject is
 *   empty), keyUsage digitalSignature+keyEncipherment (critical), extKeyUsage
 *   serverAuth+clientAuth, basicConstraints CA:false (critical), authorityKeyIdentifier, a random
 *   128-bit serial; 24 hours by default.
 *
 * Keys are RSA (Istio's default, WORKLOAD_RSA_KEY_SIZE 2048), generated natively by Node and
 * written as PKCS#1 PEM as Istio writes them; node-forge builds and signs the X.509 structures,
 * which Node cannot do. The chain returned is Istio's cert-chain.pem: the leaf followed by any
 * intermediates, so with a root as issuer it is the leaf alone; the root goes in root-cert.pem.
 *
 * Bad CA material (not a CA, key not matching, not RSA, not PEM) throws
 * SkiffError('CONFIG_INVALID'); bad arguments (identity parts, durations, key sizes) throw
 * RangeError.
 */
import { X509Certificate, createPrivateKey, generateKeyPair, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { SkiffError } from '../core/errors.js';
import { DEFAULT_TRUST_DOMAIN, spiffeId as formatSpiffeId } from './spiffe.js';

/** Istio's defaults (IST:security/pkg/cmd/constants.go, pilot-agent options.go). */
export const CA_DEFAULTS = {
  rootValidityDays: 3650,
  workloadTtlHours: 24,
  /** MAX_WORKLOAD_CERT_TTL: the longest TTL Istio's CA grants. */
  maxWorkloadTtlHours: 90 * 24,
  keyBits: 2048,
  commonName: 'skiff root CA',
  organization: 'skiff',
} as const;

/** A CA's certificate and private key, PEM-encoded. */
export interface CaKeyPair {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface RootCaOptions {
  readonly commonName?: string;
  readonly organization?: string;
  readonly validityDays?: number;
  readonly keyBits?: number;
  /** Start of validity (default now). */
  readonly notBefore?: Date;
}

export interface WorkloadCertOptions {
  readonly ca: CaKeyPair;
  readonly trustDomain?: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  /** Lifetime in hours, fractions allowed (default 24). */
  readonly ttlHours?: number;
  readonly keyBits?: number;
  /** Start of validity (default now); a past date with a short TTL makes an expired cert. */
  readonly notBefore?: Date;
  /** Extra DNS SANs after the SPIFFE URI (gateways, plain-TLS clients). */
  readonly dnsNames?: readonly string[];
}

export interface WorkloadCert {
  /** cert-chain.pem: the leaf, then intermediates (none when the CA is a root). */
  readonly certChainPem: string;
  /** key.pem: the leaf's private key (PKCS#1 PEM). */
  readonly keyPem: string;
  /** root-cert.pem: the trust anchor. */
  readonly rootCertPem: string;
  readonly spiffeId: string;
  readonly notAfter: Date;
}

/** Creates a self-signed root CA. */
export function createRootCa(options: RootCaOptions = {}): CaKeyPair {
  const validityDays = options.validityDays ?? CA_DEFAULTS.rootValidityDays;
  if (!(validityDays > 0) || !Number.isFinite(validityDays)) throw new RangeError(`validityDays must be a positive number, got ${validityDays}`);
  const keys = rsaKeyPair(options.keyBits ?? CA_DEFAULTS.keyBits);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(keys.publicKeyPem);
  cert.serialNumber = randomSerial();
  const { notBefore, notAfter } = validity(options.notBefore, validityDays * 24 * 3_600_000);
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
  const subject = [
    { shortName: 'O', value: options.organization ?? CA_DEFAULTS.organization },
    { shortName: 'CN', value: options.commonName ?? CA_DEFAULTS.commonName },
  ].filter((a) => a.value !== '');
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(keys.privateKeyPem), forge.md.sha256.create());
  return { certPem: toPem(cert), keyPem: keys.privateKeyPem };
}

/** Issues a workload certificate for `spiffe://<td>/ns/<ns>/sa/<sa>` signed by `ca`. */
export function issueWorkloadCert(options: WorkloadCertOptions): WorkloadCert {
  const id = formatSpiffeId(options.trustDomain ?? DEFAULT_TRUST_DOMAIN, options.namespace, options.serviceAccount);
  const ttlHours = options.ttlHours ?? CA_DEFAULTS.workloadTtlHours;
  if (!(ttlHours > 0) || !Number.isFinite(ttlHours)) throw new RangeError(`ttlHours must be a positive number, got ${ttlHours}`);
  const dnsNames = options.dnsNames ?? [];
  for (const name of dnsNames) {
    if (!/^(?:\*\.)?[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(name)) throw new RangeError(`invalid DNS name "${name}"`);
  }
  const issuer = loadCa(options.ca);
  const keys = rsaKeyPair(options.keyBits ?? CA_DEFAULTS.keyBits);
  const { certPem, notAfter } = signLeaf(issuer, keys.publicKeyPem, [{ type: 6, value: id }, ...dnsNames.map((value) => ({ type: 2, value }))], ttlHours, options.notBefore);
  return { certChainPem: certPem, keyPem: keys.privateKeyPem, rootCertPem: issuer.certPem, spiffeId: id, notAfter };
}

/**
 * A workload key and a PKCS#10 request for `spiffeId` (as istio-agent sends Istio's CA): the
 * SPIFFE URI as the only SAN, an empty subject. The key is made off the event loop.
 */
export async function createCertificateRequest(spiffeId: string, keyBits: number = CA_DEFAULTS.keyBits): Promise<{ readonly csrPem: string; readonly keyPem: string }> {
  const keys = await rsaKeyPairAsync(keyBits);
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.publicKeyFromPem(keys.publicKeyPem);
  csr.setSubject([]);
  csr.setAttributes([{ name: 'extensionRequest', extensions: [{ name: 'subjectAltName', altNames: [{ type: 6, value: spiffeId }] }] }]);
  csr.sign(forge.pki.privateKeyFromPem(keys.privateKeyPem), forge.md.sha256.create());
  return { csrPem: forge.pki.certificationRequestToPem(csr).replace(/\r\n/g, '\n'), keyPem: keys.privateKeyPem };
}

/**
 * Signs a PKCS#10 request as a workload certificate with the SANs it asks for (URIs and DNS
 * names); throws when its signature does not verify. Returns the chain, leaf first, and the root.
 * It checks no identity: a CA built on it must decide who may ask for what (the tests' Istio CA
 * checks a bearer token).
 */
export function signCertificateRequest(ca: CaKeyPair, csrPem: string, ttlHours: number = CA_DEFAULTS.workloadTtlHours): { readonly certChainPem: string; readonly rootCertPem: string } {
  const issuer = loadCa(ca);
  const csr = forge.pki.certificationRequestFromPem(csrPem);
  if (!csr.verify()) throw new SkiffError('CONFIG_INVALID', 'certificate request: the signature does not verify');
  const request = csr.getAttribute({ name: 'extensionRequest' }) as { extensions?: Array<{ name: string; altNames?: Array<{ type: number; value: string }> }> } | null;
  const sans = (request?.extensions?.find((e) => e.name === 'subjectAltName')?.altNames ?? []).filter((a) => a.type === 6 || a.type === 2);
  if (sans.length === 0) throw new SkiffError('CONFIG_INVALID', 'certificate request: no URI or DNS SAN');
  const { certPem } = signLeaf(issuer, forge.pki.publicKeyToPem(csr.publicKey!), sans, ttlHours, undefined);
  return { certChainPem: certPem, rootCertPem: issuer.certPem };
}

/** A leaf for `publicKeyPem` with the given SANs, signed by `issuer`. */
function signLeaf(issuer: LoadedCa, publicKeyPem: string, altNames: ReadonlyArray<{ type: number; value: string }>, ttlHours: number, start: Date | undefined): { certPem: string; notAfter: Date } {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKeyPem);
  cert.serialNumber = randomSerial();
  const { notBefore, notAfter } = validity(start, ttlHours * 3_600_000);
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
  cert.setSubject([]);
  cert.setIssuer(issuer.cert.subject.attributes);
  const extensions: object[] = [
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    { name: 'subjectAltName', critical: true, altNames: [...altNames] },
  ];
  if (issuer.subjectKeyId !== undefined) extensions.push({ name: 'authorityKeyIdentifier', keyIdentifier: issuer.subjectKeyId });
  cert.setExtensions(extensions);
  cert.sign(issuer.key, forge.md.sha256.create());
  return { certPem: toPem(cert), notAfter };
}

// === impl ===

interface LoadedCa {
  readonly cert: forge.pki.Certificate;
  readonly key: forge.pki.rsa.PrivateKey;
  /** The root's own PEM, normalised. */
  readonly certPem: string;
  /** Raw bytes of the CA's subjectKeyIdentifier, if it has one. */
  readonly subjectKeyId: string | undefined;
}

/** Checks the CA material with Node's X.509 parser, then hands it to forge for signing. */
function loadCa(ca: CaKeyPair): LoadedCa {
  const blocks = ca.certPem.replace(/\r\n/g, '\n').match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new SkiffError('CONFIG_INVALID', 'CA certificate: no PEM CERTIFICATE block found');
  if (blocks.length > 1) throw new SkiffError('CONFIG_INVALID', `CA certificate: expected one root certificate, found ${blocks.length} (intermediate CAs are not supported)`);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(blocks[0]!);
  } catch (err) {
    throw new SkiffError('CONFIG_INVALID', `CA certificate: ${(err as Error).message}`, { cause: err });
  }
  if (!x509.ca) {
    // Node reports an empty subject (as workload certs have) as undefined.
    const subject = (x509.subject as string | undefined)?.replace(/\n/g, ', ');
    throw new SkiffError('CONFIG_INVALID', `CA certificate ${subject ? `"${subject}"` : 'with an empty subject'} is not a CA (basicConstraints CA:false or missing)`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(ca.keyPem);
  } catch (err) {
    throw new SkiffError('CONFIG_INVALID', `CA key: ${(err as Error).message}`, { cause: err });
  }
  if (key.asymmetricKeyType !== 'rsa') throw new SkiffError('CONFIG_INVALID', `CA key: only RSA keys are supported, got ${key.asymmetricKeyType ?? 'unknown'}`);
  if (!x509.checkPrivateKey(key)) throw new SkiffError('CONFIG_INVALID', 'CA key does not match the CA certificate');

  const cert = forge.pki.certificateFromPem(blocks[0]!);
  const ski = cert.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier?: string } | null;
  return {
    cert,
    key: forge.pki.privateKeyFromPem(key.export({ type: 'pkcs1', format: 'pem' }) as string),
    certPem: `${blocks[0]!}\n`,
    subjectKeyId: ski?.subjectKeyIdentifier === undefined ? undefined : forge.util.hexToBytes(ski.subjectKeyIdentifier),
  };
}

/** PEM with LF line ends, as Go's encoding/pem writes it (forge writes CRLF). */
function toPem(cert: forge.pki.Certificate): string {
  return forge.pki.certificateToPem(cert).replace(/\r\n/g, '\n');
}

/** An RSA key pair from Node's native generator (forge's pure-JS one takes seconds). */
function rsaKeyPair(bits: number): { publicKeyPem: string; privateKeyPem: string } {
  if (!Number.isInteger(bits) || bits < 2048 || bits > 8192) throw new RangeError(`keyBits must be an integer from 2048 to 8192, got ${bits}`);
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: bits,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
  });
  return { publicKeyPem: publicKey, privateKeyPem: privateKey };
}

function rsaKeyPairAsync(bits: number): Promise<{ publicKeyPem: string; privateKeyPem: string }> {
  if (!Number.isInteger(bits) || bits < 2048 || bits > 8192) throw new RangeError(`keyBits must be an integer from 2048 to 8192, got ${bits}`);
  return new Promise((resolve, reject) =>
    generateKeyPair('rsa', { modulusLength: bits, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs1', format: 'pem' } }, (err, publicKey, privateKey) =>
      err !== null ? reject(err) : resolve({ publicKeyPem: publicKey, privateKeyPem: privateKey }),
    ),
  );
}

/** 128 random bits as a positive, minimally encoded DER INTEGER (hex), as Istio's genSerialNum. */
function randomSerial(): string {
  let hex = randomBytes(16).toString('hex').replace(/^(?:00)+/, '');
  if (hex === '') hex = '01';
  return /^[89a-f]/.test(hex) ? `00${hex}` : hex;
}

/** Validity bounds in whole seconds, as X.509 encodes them. */
function validity(start: Date | undefined, lifetimeMs: number): { notBefore: Date; notAfter: Date } {
  const from = Math.floor((start ?? new Date()).getTime() / 1000) * 1000;
  if (!Number.isFinite(from)) throw new RangeError('notBefore is not a valid date');
  return { notBefore: new Date(from), notAfter: new Date(Math.floor((from + lifetimeMs) / 1000) * 1000) };
}
