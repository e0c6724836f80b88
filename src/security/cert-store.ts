/**
 * The workload's certificate, key and trust root, from Istio's file layout (`cert-chain.pem`,
 * `key.pem`, `root-cert.pem`), watched and reloaded when they change. New TLS handshakes use
 * the newest good set; connections already up keep theirs. A set that fails to load or verify
 * is refused and the previous one stays; with no good set at all, mTLS is unavailable and every
 * connection that needs it fails (never plaintext).
 */
import { X509Certificate } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';

/** How often a directory that cannot be watched yet is looked at again. */
const POLL_MS = 5000;

export const CERT_FILES = { chain: 'cert-chain.pem', key: 'key.pem', root: 'root-cert.pem' } as const;

/** The directories Istio mounts credentials at, in the order skiff looks for them. */
export const DEFAULT_CERT_DIRS = ['./var/run/secrets/workload-spiffe-credentials', '/etc/certs'];

export interface WorkloadCredentials {
  /** The leaf's SPIFFE URI SAN, e.g. `spiffe://cluster.local/ns/default/sa/reviews`. */
  readonly identity: string;
  readonly notAfter: Date;
  /** Key, chain and root (as the CA both ways): for clients and servers alike. */
  readonly context: SecureContext;
  /** The leaf certificate, for the XFCC `By` field and the expiry metric. */
  readonly leaf: X509Certificate;
  /** The trust roots peers' certificates must chain to. */
  readonly roots: readonly X509Certificate[];
}

/** Every certificate in a PEM bundle, in order. */
export function pemCertificates(pem: string): X509Certificate[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((block) => new X509Certificate(block));
}

/** One subject alternative name: `type` as Node prints it (`DNS`, `URI`, `IP Address`, `email`). */
export interface SanEntry {
  readonly type: string;
  /** As Node prints it: a value with special characters stays quoted and escaped. */
  readonly value: string;
}

/** The SANs of a certificate, from Node's SAN text (`DNS:a.example.com, URI:spiffe://…`). */
export function sanEntries(cert: X509Certificate | { subjectaltname?: string }): SanEntry[] {
  const text = cert instanceof X509Certificate ? cert.subjectAltName : cert.subjectaltname;
  return (text ?? '')
    .split(', ')
    .filter((e) => e !== '')
    .map((e) => {
      const colon = e.indexOf(':');
      return { type: e.slice(0, colon), value: e.slice(colon + 1) };
    });
}

/** The SPIFFE URI SAN of a certificate (`URI:spiffe://…` in Node's SAN text), if it has one. */
export function spiffeUriOf(cert: X509Certificate | { subjectaltname?: string }): string | undefined {
  return sanEntries(cert).find((e) => e.type === 'URI' && e.value.startsWith('spiffe://'))?.value;
}

/** One certificate as Envoy's admin `/certs` shows it (CertificateDetails). */
export interface CertificateDetails {
  readonly path: string;
  readonly serial_number: string;
  readonly subject_alt_names: ReadonlyArray<Readonly<Record<string, string>>>;
  /** Whole days left, as a string (a uint64 in Envoy's JSON). */
  readonly days_until_expiration: string;
  readonly valid_from: string;
  readonly expiration_time: string;
}

const SAN_KINDS: Readonly<Record<string, string>> = { URI: 'uri', DNS: 'dns', 'IP Address': 'ip_address', email: 'email' };

export function certificateDetails(cert: X509Certificate, path: string, now = Date.now()): CertificateDetails {
  const expires = new Date(cert.validTo);
  const sans = sanEntries(cert).map(({ type, value }) => ({ [SAN_KINDS[type] ?? type.toLowerCase()]: value }));
  return {
    path,
    serial_number: cert.serialNumber.toLowerCase(),
    subject_alt_names: sans,
    days_until_expiration: String(Math.max(0, Math.floor((expires.getTime() - now) / 86_400_000))),
    valid_from: new Date(cert.validFrom).toISOString(),
    expiration_time: expires.toISOString(),
  };
}

/** Whether each certificate of `chain` (leaf first) is signed by the next, and the last by a root. */
function chainsToRoot(chain: readonly X509Certificate[], roots: readonly X509Certificate[]): boolean {
  const signedBy = (c: X509Certificate, issuer: X509Certificate): boolean => c.checkIssued(issuer) && c.verify(issuer.publicKey);
  for (let i = 0; i < chain.length; i++) {
    const cert = chain[i]!;
    if (roots.some((r) => signedBy(cert, r))) return true;
    const next = chain[i + 1];
    if (next === undefined || !next.ca || !signedBy(cert, next)) return false;
  }
  return false;
}

/** Loads and checks one credential set; throws with the reason when it is unusable. */
export async function loadCredentials(dir: string, now = new Date()): Promise<WorkloadCredentials> {
  const [chain, key, root] = await Promise.all([CERT_FILES.chain, CERT_FILES.key, CERT_FILES.root].map((f) => readFile(join(dir, f), 'utf8')));
  return credentialsFromPem({ chain: chain!, key: key!, root: root! }, CERT_FILES, now);
}

/**
 * Checks one credential set given as PEM; throws with the reason when it is unusable (`names`
 * say where each part came from, for the messages).
 */
export function credentialsFromPem(
  pem: { readonly chain: string; readonly key: string; readonly root: string },
  names: { readonly chain: string; readonly root: string } = CERT_FILES,
  now = new Date(),
): WorkloadCredentials {
  const leaf = new X509Certificate(pem.chain);
  const roots = pemCertificates(pem.root);
  if (roots.length === 0) throw new Error(`${names.root} holds no certificate`);
  const identity = spiffeUriOf(leaf);
  if (identity === undefined) throw new Error(`${names.chain} has no SPIFFE URI SAN`);
  const notAfter = new Date(leaf.validTo);
  if (notAfter <= now) throw new Error(`${names.chain} expired at ${notAfter.toISOString()}`);
  if (!chainsToRoot(pemCertificates(pem.chain), roots)) throw new Error(`${names.chain} is not issued by ${names.root}`);
  // createSecureContext checks that the key matches the certificate.
  const context = createSecureContext({ cert: pem.chain, key: pem.key, ca: pem.root, minVersion: 'TLSv1.2' });
  return { identity, notAfter, context, leaf, roots };
}

/** Where the workload credentials come from: files (CertStore) or the control plane (SDS). */
export interface CredentialSource {
  /** The newest good credentials, or null when none ever loaded. */
  current(): WorkloadCredentials | null;
  /** Where the chain and the root came from (file paths, or SDS secret names), for /certs. */
  readonly origin: { readonly chain: string; readonly root: string };
  close(): void;
}

/**
 * Credentials pushed by the control plane (SDS secrets `default` and `ROOTCA` over ADS). Each
 * good set replaces the previous one for new handshakes; a bad one is refused and the previous
 * one stays.
 */
export class PushedCredentials implements CredentialSource {
  readonly origin = { chain: 'sds:default', root: 'sds:ROOTCA' } as const;
  #current: WorkloadCredentials | null = null;
  readonly #onLoaded: ((c: WorkloadCredentials) => void) | undefined;

  constructor(onLoaded?: (c: WorkloadCredentials) => void) {
    this.#onLoaded = onLoaded;
  }

  current(): WorkloadCredentials | null {
    return this.#current;
  }

  /** Checks and takes a set; throws with the reason (and keeps the previous set) when it is unusable. */
  update(pem: { readonly chain: string; readonly key: string; readonly root: string }): void {
    const loaded = credentialsFromPem(pem, { chain: 'secret default', root: 'secret ROOTCA' });
    this.#current = loaded;
    this.#onLoaded?.(loaded);
  }

  close(): void {}
}

export interface CertStoreOptions {
  readonly onLoaded?: (c: WorkloadCredentials) => void;
  readonly onError?: (message: string) => void;
}

export class CertStore implements CredentialSource {
  readonly dir: string;
  #current: WorkloadCredentials | null = null;
  #watcher: FSWatcher | null = null;
  #timer: NodeJS.Timeout | null = null;
  #poller: NodeJS.Timeout | null = null;
  /** Bumped by every reload: a slower, older read never replaces a newer one. */
  #generation = 0;
  readonly #options: CertStoreOptions;

  private constructor(dir: string, options: CertStoreOptions) {
    this.dir = dir;
    this.#options = options;
  }

  /** Loads what is there now (a missing or bad set is reported, not thrown) and watches for changes. */
  static async open(dir: string, options: CertStoreOptions = {}): Promise<CertStore> {
    const store = new CertStore(dir, options);
    await store.reload();
    if (!store.#watch()) {
      // Not there yet (mounted later): look again every few seconds until it can be watched.
      store.#poller = setInterval(() => {
        if (!store.#watch()) return;
        clearInterval(store.#poller!);
        store.#poller = null;
        void store.reload();
      }, POLL_MS);
      store.#poller.unref();
    }
    return store;
  }

  /** The newest good credentials, or null when none ever loaded. */
  current(): WorkloadCredentials | null {
    return this.#current;
  }

  get origin(): { readonly chain: string; readonly root: string } {
    return { chain: join(this.dir, CERT_FILES.chain), root: join(this.dir, CERT_FILES.root) };
  }

  /** Kubernetes swaps secret volumes by renaming a symlinked directory: the directory is watched. */
  #watch(): boolean {
    try {
      this.#watcher = watch(this.dir, () => this.#scheduleReload());
      this.#watcher.on('error', () => undefined);
      return true;
    } catch {
      return false;
    }
  }

  async reload(): Promise<boolean> {
    const generation = ++this.#generation;
    try {
      const loaded = await loadCredentials(this.dir);
      if (generation !== this.#generation) return false;
      this.#current = loaded;
      this.#options.onLoaded?.(loaded);
      return true;
    } catch (err) {
      if (generation !== this.#generation) return false;
      const kept = this.#current === null ? 'mTLS is unavailable' : `still using ${this.#current.identity} until ${this.#current.notAfter.toISOString()}`;
      this.#options.onError?.(`certificates in ${this.dir} not loaded (${(err as Error).message}); ${kept}`);
      return false;
    }
  }

  #scheduleReload(): void {
    // Files of one rotation land in several events: load once they settle.
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.reload();
    }, 100);
    this.#timer.unref();
  }

  close(): void {
    this.#watcher?.close();
    if (this.#timer !== null) clearTimeout(this.#timer);
    if (this.#poller !== null) clearInterval(this.#poller);
  }
}
