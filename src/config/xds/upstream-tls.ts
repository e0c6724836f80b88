/**
 * Envoy v3 upstream transport sockets (a Cluster's `transport_socket` and
 * `transport_socket_matches`) → the model's `UpstreamTls`.
 *
 * Contract: `UpstreamTlsTranslator.upstreamTls` reads the two fields of a Cluster already read
 * by the cluster translator, and records problems with the same snake_case paths, rooted at the
 * Cluster (`transport_socket…`, `transport_socket_matches[i]…`). The cluster translator appends
 * them to its own: any problem refuses the whole cluster (a NACK).
 *
 * What maps to what:
 * - no transport socket, or raw_buffer (by `@type`, or by name without typed_config) → plaintext
 *   (no `UpstreamTls`);
 * - Istio's auto-mTLS matches: `{tlsMode: istio}` → Istio mTLS, then optionally `{}` →
 *   raw_buffer, with the cluster's own `transport_socket` raw or unset → ISTIO_MUTUAL with
 *   `auto` (only endpoints whose metadata says tlsMode istio get mTLS);
 * - an UpstreamTlsContext using Istio's SDS secrets (`default` certificate and `ROOTCA` root,
 *   together) → ISTIO_MUTUAL for every endpoint, with its sni and exact subject alt names and
 *   the translator's trust domain; ALPN only Istio's values;
 * - an UpstreamTlsContext with certificates from files (inline `filename`s, or Istio's
 *   `file-cert:<cert>~<key>` / `file-root:<path>` SDS names) or system roots → TLS origination:
 *   SIMPLE, or MUTUAL with a client certificate; ALPN only h2 and http/1.1.
 *
 * Refused: any other transport socket or match pattern; a `transport_socket` other than raw
 * next to `transport_socket_matches`; TLS without a validation context (skiff always verifies the
 * server); protocol versions outside TLS 1.2–1.3; more than one client certificate; other SDS
 * secret names; inline or environment certificate data; SAN matchers other than exact; cipher,
 * curve and signature settings, certificate providers, pinning, CRLs and the other options
 * marked refused in the specs below.
 */
import type { IstioMutualTls, OriginatedTls, UpstreamTls } from '../../model/security.js';
import { FieldReader, isObject, typeName, type Fields, type Obj, type Spec } from './fields.js';

// === field specs ===

const ISTIO_SDS = "skiff's workload certificate and roots come from its own certificate store (Istio's SDS secrets `default` and `ROOTCA`)";

const TRANSPORT_SOCKET_MATCH: Spec = { handled: ['name', 'match', 'transport_socket'] };
const TRANSPORT_SOCKET: Spec = { handled: ['name', 'typed_config'] };
const UPSTREAM_TLS_CONTEXT: Spec = {
  handled: ['common_tls_context', 'sni'],
  ignored: { max_session_keys: 'the size of the session resumption cache only' },
  refused: {
    allow_renegotiation: 'TLS renegotiation is not supported',
    enforce_rsa_key_usage: 'enforcing RSA key usage is not supported',
  },
};
const COMMON_TLS_CONTEXT: Spec = {
  handled: [
    'tls_params', 'tls_certificates', 'tls_certificate_sds_secret_configs', 'validation_context',
    'validation_context_sds_secret_config', 'combined_validation_context', 'alpn_protocols',
  ],
  refused: {
    tls_certificate_provider_instance: 'certificate providers are not supported',
    tls_certificate_certificate_provider: 'certificate providers are not supported',
    tls_certificate_certificate_provider_instance: 'certificate providers are not supported',
    validation_context_certificate_provider: 'certificate providers are not supported',
    validation_context_certificate_provider_instance: 'certificate providers are not supported',
    custom_handshaker: 'custom TLS handshakers are not supported',
    key_log: 'TLS key logging is not supported',
    custom_tls_certificate_selector: 'custom certificate selectors are not supported',
  },
};
const TLS_PARAMS: Spec = {
  handled: ['tls_minimum_protocol_version', 'tls_maximum_protocol_version'],
  refused: {
    cipher_suites: 'configuring cipher suites is not supported',
    ecdh_curves: 'configuring ECDH curves is not supported',
    signature_algorithms: 'configuring signature algorithms is not supported',
    compliance_policies: 'TLS compliance policies are not supported',
  },
};
const SDS_SECRET_CONFIG: Spec = { handled: ['name'], ignored: { sds_config: ISTIO_SDS } };
const COMBINED_VALIDATION_CONTEXT: Spec = {
  handled: ['default_validation_context', 'validation_context_sds_secret_config'],
  refused: {
    validation_context_certificate_provider: 'certificate providers are not supported',
    validation_context_certificate_provider_instance: 'certificate providers are not supported',
  },
};
const CERTIFICATE_VALIDATION_CONTEXT: Spec = {
  handled: ['trusted_ca', 'match_subject_alt_names', 'match_typed_subject_alt_names', 'system_root_certs'],
  refused: {
    ca_certificate_provider_instance: 'certificate providers are not supported',
    watched_directory: 'watched certificate directories are not supported',
    verify_certificate_spki: 'certificate pinning is not supported',
    verify_certificate_hash: 'certificate pinning is not supported',
    require_signed_certificate_timestamp: 'certificate transparency checks are not supported',
    crl: 'certificate revocation lists are not supported',
    allow_expired_certificate: 'accepting expired certificates is not supported',
    trust_chain_verification: 'skipping chain verification is not supported',
    custom_validator_config: 'custom certificate validators are not supported',
    only_verify_leaf_cert_crl: 'certificate revocation lists are not supported',
    max_verify_depth: 'a maximum verification depth is not supported',
  },
};
const SYSTEM_ROOT_CERTS: Spec = { handled: [] };
const TLS_CERTIFICATE: Spec = {
  handled: ['certificate_chain', 'private_key'],
  refused: {
    pkcs12: 'PKCS#12 certificates are not supported',
    watched_directory: 'watched certificate directories are not supported',
    private_key_provider: 'private key providers are not supported',
    password: 'encrypted private keys are not supported',
    ocsp_staple: 'OCSP stapling is not supported',
    signed_certificate_timestamp: 'certificate transparency is not supported',
  },
};
const DATA_SOURCE: Spec = {
  handled: ['filename'],
  refused: {
    inline_bytes: 'only certificate files are supported',
    inline_string: 'only certificate files are supported',
    environment_variable: 'only certificate files are supported',
  },
};
const STRING_MATCHER: Spec = {
  handled: ['exact'],
  refused: {
    prefix: 'only exact subject alt names are supported',
    suffix: 'only exact subject alt names are supported',
    safe_regex: 'only exact subject alt names are supported',
    contains: 'only exact subject alt names are supported',
    custom: 'only exact subject alt names are supported',
    ignore_case: 'only exact subject alt names are supported',
  },
};
// SAN type is not checked: skiff matches a name against every SAN of the certificate (ISTIO_MUTUAL
// against its SPIFFE URI).
const TYPED_SAN_MATCHER: Spec = { handled: ['matcher'], ignored: { san_type: 'skiff matches names against every SAN type' }, refused: { oid: 'OTHER_NAME SANs are not supported' } };
const RAW_BUFFER: Spec = { handled: [] };

const TLS_VERSIONS = ['TLS_AUTO', 'TLSv1_0', 'TLSv1_1', 'TLSv1_2', 'TLSv1_3'] as const;

const UPSTREAM_TLS_TYPE = 'envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
const RAW_BUFFER_TYPE = 'envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer';
const RAW_BUFFER_NAME = 'envoy.transport_sockets.raw_buffer';
/**
 * ALPN values Istio offers over mTLS (istiod adds `h2` for HTTP/2 clusters); skiff offers
 * Istio's values for what each connection carries (`istio-h2`, `istio-http/1.1`, `istio`),
 * which Istio's inbound listeners accept alike.
 */
const ISTIO_ALPN = new Set(['istio-peer-exchange', 'istio', 'istio-http/1.0', 'istio-http/1.1', 'istio-h2', 'h2', 'http/1.1']);
const ORIGINATION_ALPN = new Set(['h2', 'http/1.1']);
/** Istio's SDS resource names (IST:pkg/security/security.go) and file-backed forms. */
const ISTIO_CERT = 'default';
const ISTIO_ROOT = 'ROOTCA';
const FILE_CERT = 'file-cert:';
const FILE_ROOT = 'file-root:';

// === translator ===

/** What a transport socket does to a connection. */
type Transport =
  | { readonly kind: 'raw' }
  | { readonly kind: 'istio'; readonly sni: string; readonly subjectAltNames: readonly string[] }
  | { readonly kind: 'originated'; readonly tls: OriginatedTls };

/** Where a TLS context's client certificate and trust roots come from. */
type CertSource = { readonly kind: 'none' } | { readonly kind: 'istio' } | { readonly kind: 'files'; readonly cert: string; readonly key: string };
type RootSource = { readonly kind: 'none' } | { readonly kind: 'istio' } | { readonly kind: 'system' } | { readonly kind: 'file'; readonly path: string };

/** Reads a Cluster's transport sockets into its upstream TLS; `problems` as for every FieldReader. */
export class UpstreamTlsTranslator extends FieldReader {
  readonly #trustDomain: string;

  /** `trustDomain`: the trust domain of ISTIO_MUTUAL identities. */
  constructor(trustDomain: string) {
    super();
    this.#trustDomain = trustDomain;
  }

  /**
   * The cluster's upstream TLS. `transport_socket_matches` must be Istio's auto-mTLS pattern:
   * `{tlsMode: istio}` → Istio mTLS, then optionally `{}` → raw_buffer, with the cluster's own
   * transport_socket raw or unset (hosts without tlsMode istio get plaintext either way).
   */
  upstreamTls(f: Fields): UpstreamTls | undefined {
    const own: Transport = f.has('transport_socket') ? this.#transportSocket(f.get('transport_socket'), 'transport_socket') : { kind: 'raw' };
    const matches = this.list(f.get('transport_socket_matches'), 'transport_socket_matches');
    if (matches.length === 0) return this.#toTls(own, false);
    let istio: Transport | undefined;
    let catchAll = false;
    matches.forEach((m, i) => {
      const at = `transport_socket_matches[${i}]`;
      const g = this.message(m, at, TRANSPORT_SOCKET_MATCH);
      const match = g.get('match') ?? {};
      const socket = this.#transportSocket(g.get('transport_socket'), `${at}.transport_socket`);
      if (!isObject(match)) {
        this.problem(`${at}.match`, 'must be an object');
        return;
      }
      const keys = Object.keys(match);
      if (catchAll) this.problem(at, 'follows a match of every host, so it is never used');
      else if (keys.length === 0 && socket.kind === 'raw') catchAll = true;
      else if (keys.length === 1 && match['tlsMode'] === 'istio' && socket.kind === 'istio' && istio === undefined) istio = socket;
      else this.problem(at, "not supported: only Istio's auto-mTLS matches ({tlsMode: istio} → Istio mTLS, then {} → raw_buffer) are supported");
    });
    if (own.kind !== 'raw') this.problem('transport_socket', 'not supported together with transport_socket_matches (only plaintext for unmatched hosts)');
    return istio !== undefined ? this.#toTls(istio, true) : undefined;
  }

  #toTls(t: Transport, auto: boolean): UpstreamTls | undefined {
    switch (t.kind) {
      case 'raw':
        return undefined;
      case 'originated':
        return t.tls;
      case 'istio': {
        const tls: IstioMutualTls = { mode: 'ISTIO_MUTUAL', auto, sni: t.sni, subjectAltNames: t.subjectAltNames, trustDomain: this.#trustDomain };
        return tls;
      }
    }
  }

  #transportSocket(v: unknown, path: string): Transport {
    const f = this.message(v, path, TRANSPORT_SOCKET);
    const name = this.string(f.get('name'), `${path}.name`) ?? '';
    if (!f.has('typed_config')) {
      if (name === RAW_BUFFER_NAME) return { kind: 'raw' };
      this.problem(`${path}.typed_config`, `required for transport socket ${JSON.stringify(name)}`);
      return { kind: 'raw' };
    }
    const any = this.any(f.get('typed_config'), `${path}.typed_config`);
    if (any === undefined) return { kind: 'raw' };
    const type = typeName(any.typeUrl);
    if (type === RAW_BUFFER_TYPE) {
      this.message(any.body, `${path}.typed_config`, RAW_BUFFER);
      return { kind: 'raw' };
    }
    if (type === UPSTREAM_TLS_TYPE) return this.#upstreamTlsContext(any.body, `${path}.typed_config`);
    this.problem(`${path}.typed_config`, `not supported: transport socket ${type}`);
    return { kind: 'raw' };
  }

  /** An UpstreamTlsContext → Istio mTLS (Istio's SDS cert and root) or TLS origination (files). */
  #upstreamTlsContext(v: Obj, path: string): Transport {
    const f = this.message(v, path, UPSTREAM_TLS_CONTEXT);
    const sni = this.string(f.get('sni'), `${path}.sni`) ?? '';
    const at = `${path}.common_tls_context`;
    const c = this.message(f.get('common_tls_context'), at, COMMON_TLS_CONTEXT);
    this.#tlsParams(c.get('tls_params'), `${at}.tls_params`);
    const cert = this.#certSource(c, at);
    const validation = this.#validation(c, at);
    const alpn = this.strings(c.get('alpn_protocols'), `${at}.alpn_protocols`);
    if (cert.kind === 'istio' || validation.root.kind === 'istio') {
      if (cert.kind !== 'istio' || validation.root.kind !== 'istio') {
        this.problem(at, `not supported: Istio's SDS certificate "${ISTIO_CERT}" and root "${ISTIO_ROOT}" must be used together`);
      }
      alpn.forEach((p, i) => {
        if (!ISTIO_ALPN.has(p)) this.problem(`${at}.alpn_protocols[${i}]`, `not supported: ${JSON.stringify(p)} over Istio mTLS (skiff offers Istio's ALPN for what the connection carries)`);
      });
      return { kind: 'istio', sni, subjectAltNames: validation.subjectAltNames };
    }
    alpn.forEach((p, i) => {
      if (!ORIGINATION_ALPN.has(p)) this.problem(`${at}.alpn_protocols[${i}]`, `not supported: ${JSON.stringify(p)} (skiff offers h2 to HTTP/2 clusters and no ALPN otherwise)`);
    });
    if (validation.root.kind === 'none') {
      this.problem(at, 'not supported: TLS without a validation context (Envoy would not verify the server; skiff always does)');
    }
    const tls: OriginatedTls = {
      mode: cert.kind === 'files' ? 'MUTUAL' : 'SIMPLE',
      ...(sni !== '' ? { sni } : {}),
      subjectAltNames: validation.subjectAltNames,
      ...(validation.root.kind === 'file' ? { caCertificates: validation.root.path } : {}),
      ...(cert.kind === 'files' ? { clientCertificate: cert.cert, privateKey: cert.key } : {}),
    };
    return { kind: 'originated', tls };
  }

  /**
   * Protocol versions: skiff negotiates TLS 1.2 to 1.3. TLS_AUTO is accepted for both bounds
   * (Envoy's client default maximum is 1.2, so skiff may negotiate 1.3 where Envoy would not).
   */
  #tlsParams(v: unknown, path: string): void {
    const f = this.message(v, path, TLS_PARAMS);
    const min = TLS_VERSIONS[this.enum(f.get('tls_minimum_protocol_version'), `${path}.tls_minimum_protocol_version`, TLS_VERSIONS) ?? 0];
    const max = TLS_VERSIONS[this.enum(f.get('tls_maximum_protocol_version'), `${path}.tls_maximum_protocol_version`, TLS_VERSIONS) ?? 0];
    if (min !== 'TLS_AUTO' && min !== 'TLSv1_2') this.problem(`${path}.tls_minimum_protocol_version`, 'not supported: skiff\'s minimum is TLSv1_2');
    if (max !== 'TLS_AUTO' && max !== 'TLSv1_3') this.problem(`${path}.tls_maximum_protocol_version`, 'not supported: skiff\'s maximum is TLSv1_3');
  }

  /** The client certificate: Istio's SDS `default`, `file-cert:<cert>~<key>`, or inline file names. */
  #certSource(c: Fields, path: string): CertSource {
    const sds = this.list(c.get('tls_certificate_sds_secret_configs'), `${path}.tls_certificate_sds_secret_configs`);
    const files = this.list(c.get('tls_certificates'), `${path}.tls_certificates`);
    if (sds.length + files.length > 1) {
      this.problem(path, 'not supported: more than one client certificate');
      return { kind: 'none' };
    }
    if (sds.length === 1) {
      const at = `${path}.tls_certificate_sds_secret_configs[0]`;
      const name = this.string(this.message(sds[0], at, SDS_SECRET_CONFIG).get('name'), `${at}.name`) ?? '';
      if (name === ISTIO_CERT) return { kind: 'istio' };
      const [cert = '', key = ''] = name.startsWith(FILE_CERT) ? name.slice(FILE_CERT.length).split('~') : [];
      if (cert !== '' && key !== '') return { kind: 'files', cert, key };
      this.problem(`${at}.name`, `not supported: SDS certificate ${JSON.stringify(name)} (only "${ISTIO_CERT}" and "${FILE_CERT}<cert>~<key>")`);
      return { kind: 'none' };
    }
    if (files.length === 1) {
      const at = `${path}.tls_certificates[0]`;
      const f = this.message(files[0], at, TLS_CERTIFICATE);
      const cert = this.#fileName(f.get('certificate_chain'), `${at}.certificate_chain`);
      const key = this.#fileName(f.get('private_key'), `${at}.private_key`);
      return cert !== undefined && key !== undefined ? { kind: 'files', cert, key } : { kind: 'none' };
    }
    return { kind: 'none' };
  }

  #fileName(v: unknown, path: string): string | undefined {
    const f = this.message(v, path, DATA_SOURCE);
    const name = this.string(f.get('filename'), `${path}.filename`);
    if (name === undefined || name === '') {
      if (isObject(v) && Object.keys(v).length === 0) this.problem(`${path}.filename`, 'required');
      else if (v === undefined) this.problem(path, 'required');
      return undefined;
    }
    return name;
  }

  /** The server's trust roots and expected names, from any of the three validation forms. */
  #validation(c: Fields, path: string): { root: RootSource; subjectAltNames: string[] } {
    const forms = ['validation_context', 'validation_context_sds_secret_config', 'combined_validation_context'].filter((k) => c.has(k));
    if (forms.length > 1) this.problem(path, `sets ${forms.join(' and ')}: only one validation form may be set`);
    if (c.has('validation_context')) return this.#validationContext(c.get('validation_context'), `${path}.validation_context`);
    if (c.has('validation_context_sds_secret_config')) {
      return { root: this.#sdsRoot(c.get('validation_context_sds_secret_config'), `${path}.validation_context_sds_secret_config`), subjectAltNames: [] };
    }
    if (c.has('combined_validation_context')) {
      const at = `${path}.combined_validation_context`;
      const f = this.message(c.get('combined_validation_context'), at, COMBINED_VALIDATION_CONTEXT);
      const d = this.#validationContext(f.get('default_validation_context'), `${at}.default_validation_context`);
      const sdsRoot = this.#sdsRoot(f.get('validation_context_sds_secret_config'), `${at}.validation_context_sds_secret_config`);
      if (d.root.kind !== 'none' && sdsRoot.kind !== 'none') this.problem(`${at}.default_validation_context`, 'not supported: trust roots from both the default context and SDS');
      return { root: sdsRoot.kind !== 'none' ? sdsRoot : d.root, subjectAltNames: d.subjectAltNames };
    }
    return { root: { kind: 'none' }, subjectAltNames: [] };
  }

  /** An SDS validation secret: Istio's `ROOTCA` or `file-root:<path>`. */
  #sdsRoot(v: unknown, path: string): RootSource {
    if (v === undefined) return { kind: 'none' };
    const name = this.string(this.message(v, path, SDS_SECRET_CONFIG).get('name'), `${path}.name`) ?? '';
    if (name === ISTIO_ROOT) return { kind: 'istio' };
    if (name.startsWith(FILE_ROOT) && name.length > FILE_ROOT.length) return { kind: 'file', path: name.slice(FILE_ROOT.length) };
    this.problem(`${path}.name`, `not supported: SDS validation secret ${JSON.stringify(name)} (only "${ISTIO_ROOT}" and "${FILE_ROOT}<path>")`);
    return { kind: 'none' };
  }

  #validationContext(v: unknown, path: string): { root: RootSource; subjectAltNames: string[] } {
    const f = this.message(v, path, CERTIFICATE_VALIDATION_CONTEXT);
    const names = this.list(f.get('match_subject_alt_names'), `${path}.match_subject_alt_names`).flatMap(
      (m, i) => this.#exact(m, `${path}.match_subject_alt_names[${i}]`) ?? [],
    );
    this.list(f.get('match_typed_subject_alt_names'), `${path}.match_typed_subject_alt_names`).forEach((m, i) => {
      const at = `${path}.match_typed_subject_alt_names[${i}]`;
      const exact = this.#exact(this.message(m, at, TYPED_SAN_MATCHER).get('matcher'), `${at}.matcher`);
      if (exact !== undefined) names.push(exact);
    });
    let root: RootSource = { kind: 'none' };
    if (f.has('trusted_ca')) {
      const file = this.#fileName(f.get('trusted_ca'), `${path}.trusted_ca`);
      if (file !== undefined) root = { kind: 'file', path: file };
    }
    if (f.has('system_root_certs')) {
      this.message(f.get('system_root_certs'), `${path}.system_root_certs`, SYSTEM_ROOT_CERTS);
      if (root.kind === 'none') root = { kind: 'system' };
    }
    return { root, subjectAltNames: names };
  }

  #exact(v: unknown, path: string): string | undefined {
    const exact = this.string(this.message(v, path, STRING_MATCHER).get('exact'), `${path}.exact`);
    if (exact === undefined && isObject(v) && !['prefix', 'suffix', 'safe_regex', 'safeRegex', 'contains', 'custom'].some((k) => k in v)) this.problem(`${path}.exact`, 'required');
    return exact;
  }
}
