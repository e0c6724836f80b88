/**
 * Envoy v3 SDS `Secret` → PEM text. skiff takes two secrets, as Istio names them: `default`
 * (the workload's tls_certificate: chain and key) and `ROOTCA` (the mesh root, a
 * validation_context's trusted_ca). Their data must be inline (inline_bytes or inline_string):
 * skiff reads files itself from its certificate directory.
 */
import { FieldReader, type Spec, type XdsProblem } from './fields.js';

export const WORKLOAD_SECRET = 'default';
export const ROOT_SECRET = 'ROOTCA';

export type SecretPem = { readonly kind: 'certificate'; readonly chain: string; readonly key: string } | { readonly kind: 'root'; readonly root: string };

export function translateSecret(json: unknown): { name: string; pem?: SecretPem; problems: XdsProblem[] } {
  const t = new SecretTranslator();
  const out = t.secret(json);
  return { ...out, problems: t.problems };
}

const SECRET: Spec = {
  handled: ['name', 'tls_certificate', 'validation_context'],
  refused: { session_ticket_keys: 'session tickets are not used', generic_secret: 'generic secrets are not used' },
};
const TLS_CERTIFICATE: Spec = {
  handled: ['certificate_chain', 'private_key'],
  refused: {
    private_key_provider: 'private key providers are not supported',
    password: 'encrypted keys are not supported',
    watched_directory: 'not supported',
    ocsp_staple: 'not supported',
    signed_certificate_timestamp: 'not supported',
    pkcs12: 'not supported',
  },
};
const VALIDATION_CONTEXT: Spec = {
  handled: ['trusted_ca'],
  refused: {
    match_subject_alt_names: 'SAN checks belong to the cluster or listener',
    match_typed_subject_alt_names: 'SAN checks belong to the cluster or listener',
    verify_certificate_spki: 'not supported',
    verify_certificate_hash: 'not supported',
    crl: 'not supported',
    custom_validator_config: 'not supported',
    watched_directory: 'not supported',
  },
};
const DATA_SOURCE: Spec = {
  handled: ['inline_bytes', 'inline_string'],
  refused: { filename: 'skiff reads certificate files from its certificate directory (--certs)', environment_variable: 'not supported' },
};

class SecretTranslator extends FieldReader {
  secret(json: unknown): { name: string; pem?: SecretPem } {
    const f = this.message(json, '', SECRET);
    const name = this.string(f.get('name'), 'name') ?? '';
    if (name !== WORKLOAD_SECRET && name !== ROOT_SECRET) {
      this.problem('name', `skiff uses the secrets "${WORKLOAD_SECRET}" and "${ROOT_SECRET}" only`);
      return { name };
    }
    if (name === WORKLOAD_SECRET) {
      const c = this.message(f.get('tls_certificate'), 'tls_certificate', TLS_CERTIFICATE);
      const chain = this.#data(c.get('certificate_chain'), 'tls_certificate.certificate_chain');
      const key = this.#data(c.get('private_key'), 'tls_certificate.private_key');
      return chain === undefined || key === undefined ? { name } : { name, pem: { kind: 'certificate', chain, key } };
    }
    const v = this.message(f.get('validation_context'), 'validation_context', VALIDATION_CONTEXT);
    const root = this.#data(v.get('trusted_ca'), 'validation_context.trusted_ca');
    return root === undefined ? { name } : { name, pem: { kind: 'root', root } };
  }

  #data(v: unknown, path: string): string | undefined {
    if (v === undefined) {
      this.problem(path, 'required');
      return undefined;
    }
    const f = this.message(v, path, DATA_SOURCE);
    const bytes = this.string(f.get('inline_bytes'), `${path}.inline_bytes`);
    if (bytes !== undefined) return Buffer.from(bytes, 'base64').toString('utf8');
    const text = this.string(f.get('inline_string'), `${path}.inline_string`);
    if (text === undefined) this.problem(path, 'inline_bytes or inline_string is required');
    return text;
  }
}
