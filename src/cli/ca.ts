/**
 * `skiff ca`: a small CA for standalone meshes and tests.
 *
 * - `skiff ca init [--dir DIR] [--force]` creates a self-signed root: DIR/root-cert.pem and
 *   DIR/root-key.pem (0600). It never overwrites either file without --force.
 * - `skiff ca issue --ns NS --sa SA [--ca-dir DIR] [--out DIR] [--trust-domain TD] [--ttl 24h]`
 *   issues a workload certificate for `spiffe://TD/ns/NS/sa/SA` in the file layout Istio mounts
 *   for file-based certs: OUT/cert-chain.pem, OUT/key.pem (0600), OUT/root-cert.pem. Re-issuing
 *   replaces them (rotation); each file is replaced atomically, so a watcher never reads half a
 *   PEM.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatDuration, parseDuration } from '../core/duration.js';
import { SkiffError } from '../core/errors.js';
import { CA_DEFAULTS, createRootCa, issueWorkloadCert, type CaKeyPair } from '../security/ca.js';
import { DEFAULT_TRUST_DOMAIN, segmentError, trustDomainError } from '../security/spiffe.js';
import { parse } from './args.js';

export const CA_DEFAULT_DIR = './ca';
/** Istio's directory for file-mounted workload certificates (IST:pkg/security/security.go). */
export const WORKLOAD_CREDENTIALS_DIR = './var/run/secrets/workload-spiffe-credentials';

export const ROOT_CERT_FILE = 'root-cert.pem';
export const ROOT_KEY_FILE = 'root-key.pem';
export const CERT_CHAIN_FILE = 'cert-chain.pem';
export const KEY_FILE = 'key.pem';

const INIT_OPTIONS = {
  dir: { type: 'string' },
  force: { type: 'boolean' },
} as const;

const ISSUE_OPTIONS = {
  ns: { type: 'string' },
  sa: { type: 'string' },
  'ca-dir': { type: 'string' },
  out: { type: 'string' },
  'trust-domain': { type: 'string' },
  ttl: { type: 'string' },
} as const;

export async function caCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'init':
      return caInit(rest);
    case 'issue':
      return caIssue(rest);
    case undefined:
      throw new SkiffError('USAGE', 'ca needs a subcommand: "skiff ca init" or "skiff ca issue"');
    default:
      throw new SkiffError('USAGE', `unknown ca subcommand "${sub}" (expected init or issue)`);
  }
}

function caInit(argv: string[]): number {
  const { values } = parse(argv, INIT_OPTIONS);
  const dir = nonEmpty(values.dir, 'dir') ?? CA_DEFAULT_DIR;
  const certPath = join(dir, ROOT_CERT_FILE);
  const keyPath = join(dir, ROOT_KEY_FILE);
  if (values.force !== true) {
    const existing = [certPath, keyPath].filter((p) => existsSync(p));
    if (existing.length > 0) throw new SkiffError('USAGE', `${existing.join(' and ')} already exist${existing.length === 1 ? 's' : ''}; refusing to overwrite a CA without --force`);
  }
  const ca = createRootCa();
  mkdirSync(dir, { recursive: true });
  writeAtomic(keyPath, ca.keyPem, 0o600);
  writeAtomic(certPath, ca.certPem, 0o644);
  process.stdout.write(`created root CA "O=${CA_DEFAULTS.organization}, CN=${CA_DEFAULTS.commonName}" (valid ${CA_DEFAULTS.rootValidityDays} days)\n  ${certPath}\n  ${keyPath}\n`);
  return 0;
}

function caIssue(argv: string[]): number {
  const { values } = parse(argv, ISSUE_OPTIONS);
  const namespace = required(values.ns, 'ns');
  const serviceAccount = required(values.sa, 'sa');
  const trustDomain = nonEmpty(values['trust-domain'], 'trust-domain') ?? DEFAULT_TRUST_DOMAIN;
  checkPart(segmentError(namespace), 'ns');
  checkPart(segmentError(serviceAccount), 'sa');
  checkPart(trustDomainError(trustDomain), 'trust-domain');
  const ttlHours = ttlFlag(values.ttl);
  const caDir = nonEmpty(values['ca-dir'], 'ca-dir') ?? CA_DEFAULT_DIR;
  const outDir = nonEmpty(values.out, 'out') ?? WORKLOAD_CREDENTIALS_DIR;

  const ca = readCa(caDir);
  let cert;
  try {
    cert = issueWorkloadCert({ ca, trustDomain, namespace, serviceAccount, ttlHours });
  } catch (err) {
    if (err instanceof SkiffError) throw new SkiffError('USAGE', `--ca-dir ${caDir}: ${err.message}`, { cause: err });
    throw err;
  }
  mkdirSync(outDir, { recursive: true });
  writeAtomic(join(outDir, KEY_FILE), cert.keyPem, 0o600);
  writeAtomic(join(outDir, CERT_CHAIN_FILE), cert.certChainPem, 0o644);
  writeAtomic(join(outDir, ROOT_CERT_FILE), cert.rootCertPem, 0o644);
  process.stdout.write(
    `issued ${cert.spiffeId}\n  expires ${cert.notAfter.toISOString()}\n` +
      `  ${join(outDir, CERT_CHAIN_FILE)}\n  ${join(outDir, KEY_FILE)}\n  ${join(outDir, ROOT_CERT_FILE)}\n`,
  );
  return 0;
}

/** The CA's root cert and key from `dir`; a missing or unreadable file names --ca-dir. */
function readCa(dir: string): CaKeyPair {
  const read = (file: string): string => {
    const path = join(dir, file);
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      const hint = (err as NodeJS.ErrnoException).code === 'ENOENT' ? ` (run "skiff ca init --dir ${dir}" first)` : '';
      throw new SkiffError('USAGE', `--ca-dir ${dir}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}${hint}`, { cause: err });
    }
  };
  return { certPem: read(ROOT_CERT_FILE), keyPem: read(ROOT_KEY_FILE) };
}

/** --ttl as a Go duration, more than 0 and at most Istio's MAX_WORKLOAD_CERT_TTL (90 days). */
function ttlFlag(value: string | undefined): number {
  if (value === undefined) return CA_DEFAULTS.workloadTtlHours;
  const parsed = parseDuration(value);
  if ('error' in parsed) throw new SkiffError('USAGE', `--ttl: ${parsed.error}`);
  const maxMs = CA_DEFAULTS.maxWorkloadTtlHours * 3_600_000;
  if (parsed.ms < 1000) throw new SkiffError('USAGE', `--ttl must be at least 1s, got "${value}"`);
  if (parsed.ms > maxMs) throw new SkiffError('USAGE', `--ttl must be at most ${formatDuration(maxMs)} (MAX_WORKLOAD_CERT_TTL), got "${value}"`);
  return parsed.ms / 3_600_000;
}

function required(value: string | undefined, name: string): string {
  const v = nonEmpty(value, name);
  if (v === undefined) throw new SkiffError('USAGE', `ca issue needs --${name}`);
  return v;
}

function nonEmpty(value: string | undefined, name: string): string | undefined {
  if (value !== undefined && value.trim() === '') throw new SkiffError('USAGE', `--${name} must not be empty`);
  return value;
}

function checkPart(error: string | undefined, name: string): void {
  if (error !== undefined) throw new SkiffError('USAGE', `--${name} ${error}`);
}

/** Writes through a temporary file and a rename, with `mode` set before the content lands. */
function writeAtomic(path: string, content: string, mode: number): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, content, { mode, flag: 'w' });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}
