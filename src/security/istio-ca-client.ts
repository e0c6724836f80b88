/**
 * A workload certificate from Istio's CA, as istio-agent gets it for istio-proxy: a fresh key and
 * a PKCS#10 request for the workload's SPIFFE identity, sent to
 * `istio.v1.auth.IstioCertificateService/CreateCertificate` on istiod (15012) over TLS with the
 * pod's service-account token as the bearer credential. The response's chain ends with the root,
 * which becomes the trust root (ROOTCA).
 *
 * Contract: `onCertificate` gets each new set (it may throw to refuse it: the request is then
 * retried). A set is renewed at half the lifetime of the certificate issued (Istio's
 * SECRET_GRACE_PERIOD_RATIO), whatever TTL was asked for; a failed request is retried with
 * jittered backoff (with the same key) while the old set stays in use. Keys are made off the
 * event loop.
 */
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { JitteredBackoff } from '../core/backoff.js';
import protobuf from 'protobufjs';
import { createCertificateRequest } from './ca.js';

export const CREATE_CERTIFICATE = '/istio.v1.auth.IstioCertificateService/CreateCertificate';
/** Istio's default workload certificate TTL (SECRET_TTL). */
const DEFAULT_TTL_SECONDS = 24 * 3600;
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Istio's security/proto/istioca.proto, the two messages the call uses. */
const root = protobuf.Root.fromJSON({
  nested: {
    IstioCertificateRequest: { fields: { csr: { type: 'string', id: 1 }, validity_duration: { type: 'int64', id: 3 } } },
    IstioCertificateResponse: { fields: { cert_chain: { rule: 'repeated', type: 'string', id: 1 } } },
  },
});
/** The call's messages (also what a test CA decodes and answers with). */
export const IstioCaMessages = { request: root.lookupType('IstioCertificateRequest'), response: root.lookupType('IstioCertificateResponse') } as const;
const Request = IstioCaMessages.request;
const Response = IstioCaMessages.response;

export interface IstioCaClientOptions {
  /** istiod's address (grpc-js target). */
  readonly target: string;
  /** TLS to istiod with the bearer token; read at each request, so a rotated token is used. */
  readonly credentials: () => grpc.ChannelCredentials;
  /** TLS name of istiod when the target is an address. */
  readonly serverName?: string;
  /** The identity asked for: `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`. */
  readonly spiffeId: string;
  /** Istio's ClusterID, sent as the `clusterid` request header (istio-agent's ClusterID). */
  readonly clusterId: string;
  readonly ttlSeconds?: number;
  readonly onCertificate: (pem: { readonly chain: string; readonly key: string; readonly root: string }) => void;
  readonly onError: (message: string) => void;
  readonly backoff?: { readonly baseMs: number; readonly maxMs: number };
}

export class IstioCaClient {
  readonly #options: IstioCaClientOptions;
  #timer: NodeJS.Timeout | null = null;
  readonly #backoff: JitteredBackoff;
  #closed = false;
  #client: grpc.Client | null = null;

  constructor(options: IstioCaClientOptions) {
    this.#options = options;
    const { baseMs, maxMs } = options.backoff ?? { baseMs: 1000, maxMs: 60_000 };
    this.#backoff = new JitteredBackoff(baseMs, maxMs);
  }

  start(): void {
    void this.#request();
  }

  close(): void {
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#client?.close();
  }

  /** The key and request of the current renewal, kept across its retries. */
  #pending: { readonly csrPem: string; readonly keyPem: string } | null = null;

  async #request(): Promise<void> {
    if (this.#closed) return;
    try {
      this.#pending ??= await createCertificateRequest(this.#options.spiffeId);
      const { csrPem, keyPem } = this.#pending;
      const chain = await this.#call(csrPem);
      if (this.#closed) return;
      if (chain.length < 2) throw new Error(`the CA answered ${chain.length} certificate(s); a leaf and its root are needed`);
      const joined = chain.map((c) => (c.endsWith('\n') ? c : `${c}\n`));
      const leaf = new X509Certificate(joined[0]!);
      this.#options.onCertificate({ chain: joined.slice(0, -1).join(''), key: keyPem, root: joined.at(-1)! });
      this.#pending = null;
      this.#backoff.reset();
      const from = Date.parse(leaf.validFrom);
      const to = Date.parse(leaf.validTo);
      // Renew at half-life, with a little jitter so workers and pods do not renew in step.
      this.#schedule(from + (to - from) * (0.5 - Math.random() * 0.05) - Date.now());
    } catch (err) {
      if (this.#closed) return;
      this.#options.onError(`workload certificate from ${this.#options.target}: ${(err as Error).message}`);
      this.#schedule(this.#backoff.next());
    }
  }

  #schedule(ms: number): void {
    if (this.#closed) return;
    // setTimeout fires at once past 2^31 − 1 ms; a longer wait is taken in steps.
    const step = Math.min(Math.max(0, ms), MAX_TIMER_MS);
    this.#timer = setTimeout(() => (step < ms ? this.#schedule(ms - step) : void this.#request()), step);
    this.#timer.unref();
  }

  /** One CreateCertificate call on a channel opened for it and closed after it. */
  #call(csrPem: string): Promise<string[]> {
    const serverName = this.#options.serverName;
    const client = new grpc.Client(this.#options.target, this.#options.credentials(), serverName === undefined ? {} : { 'grpc.ssl_target_name_override': serverName, 'grpc.default_authority': serverName });
    this.#client = client;
    const metadata = new grpc.Metadata();
    metadata.set('clusterid', this.#options.clusterId);
    const request = { csr: csrPem, validity_duration: this.#options.ttlSeconds ?? DEFAULT_TTL_SECONDS };
    return new Promise((resolve, reject) => {
      client.makeUnaryRequest(
        CREATE_CERTIFICATE,
        (r: typeof request) => Buffer.from(Request.encode(Request.fromObject(r)).finish()),
        (b: Buffer) => (Response.toObject(Response.decode(b)) as { cert_chain?: string[] }).cert_chain ?? [],
        request,
        metadata,
        { deadline: Date.now() + 10_000 },
        (err, chain) => {
          client.close();
          if (this.#client === client) this.#client = null;
          if (err !== null) reject(new Error(err.details || err.message));
          else resolve(chain ?? []);
        },
      );
    });
  }
}
