/**
 * The Gateway (networking.istio.io) schema, with Istio's server and TLS validation (pilot
 * validation.go validateServer, validateTLSOptions); gateway-servers.ts binds it to routes.
 */
import { array, boolean, enumOf, integer, object, record, string, type Infer, type Issues } from '../schema.js';
import { canonicalIp } from './addresses.js';

export const GATEWAY_PROTOCOLS = ['HTTP', 'HTTPS', 'GRPC', 'GRPC-WEB', 'HTTP2', 'MONGO', 'REDIS', 'MYSQL', 'TCP', 'TLS'] as const;
export type GatewayProtocol = (typeof GATEWAY_PROTOCOLS)[number];

export const GATEWAY_TLS_MODES = ['PASSTHROUGH', 'SIMPLE', 'MUTUAL', 'AUTO_PASSTHROUGH', 'ISTIO_MUTUAL', 'OPTIONAL_MUTUAL'] as const;

const TLS_VERSIONS = ['TLS_AUTO', 'TLSV1_0', 'TLSV1_1', 'TLSV1_2', 'TLSV1_3'] as const;

/** `host`, `*` or `*.suffix`, optionally after `namespace/` (the namespace may be `*` or `.`). */
const SERVER_HOST = /^(?:(?:\*|\.|[a-z0-9]([-a-z0-9]*[a-z0-9])?)\/)?(?:\*|(?:\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)$/i;

const serverTlsSchema = object({
  httpsRedirect: boolean(),
  mode: enumOf(GATEWAY_TLS_MODES),
  serverCertificate: string({ nonEmpty: true }),
  privateKey: string({ nonEmpty: true }),
  caCertificates: string({ nonEmpty: true }),
  caCrl: string(),
  credentialName: string(),
  credentialNames: array(string()),
  tlsCertificates: array(object({ serverCertificate: string(), privateKey: string(), caCertificates: string() })),
  subjectAltNames: array(string({ nonEmpty: true })),
  verifyCertificateSpki: array(string()),
  verifyCertificateHash: array(string()),
  minProtocolVersion: enumOf(TLS_VERSIONS),
  maxProtocolVersion: enumOf(TLS_VERSIONS),
  cipherSuites: array(string({ nonEmpty: true })),
});
export type ServerTlsSpec = Infer<typeof serverTlsSchema>;

const serverSchema = object(
  {
    port: object(
      {
        number: integer({ min: 1, max: 65535 }),
        protocol: enumOf(GATEWAY_PROTOCOLS),
        name: string(),
        targetPort: integer({ min: 1, max: 65535 }),
      },
      { required: ['number', 'protocol'] },
    ),
    bind: string({ nonEmpty: true }),
    hosts: array(string({ pattern: SERVER_HOST, patternHint: 'expected a host name, *, or *.suffix, optionally after namespace/' }), { minItems: 1 }),
    tls: serverTlsSchema,
    defaultEndpoint: string(),
    name: string(),
  },
  {
    required: ['port', 'hosts'],
    check(server, path, issues) {
      const protocol = server.port!.protocol!;
      const tls = server.tls;
      const secure = protocol === 'HTTPS' || protocol === 'TLS';
      if (secure && tls === undefined) {
        issues.error([...path, 'tls'], `server must have TLS settings for ${protocol} protocol`);
      }
      if (tls !== undefined && !secure && tls.mode !== undefined) {
        issues.error([...path, 'tls', 'mode'], `TLS mode ${tls.mode} needs protocol HTTPS or TLS (port ${server.port!.number} is ${protocol})`);
      }
      if (tls !== undefined) checkTls(tls, protocol, [...path, 'tls'], issues);
      if (server.bind !== undefined && canonicalIp(server.bind) === undefined) {
        issues.error([...path, 'bind'], `"${server.bind}" is not an IP address (unix domain sockets are not supported)`);
      }
      if (server.defaultEndpoint !== undefined) issues.error([...path, 'defaultEndpoint'], 'defaultEndpoint applies to Sidecar ingress listeners, not Gateway servers');
    },
  },
);
export type GatewayServerSpec = Infer<typeof serverSchema>;

/** Istio's validateTLSOptions, for the modes skiff serves. */
function checkTls(tls: ServerTlsSpec, protocol: GatewayProtocol, path: Array<string | number>, issues: Issues): void {
  const mode = tls.mode ?? 'PASSTHROUGH';
  const at = (f: string): Array<string | number> => [...path, f];
  if (tls.mode === undefined && tls.serverCertificate !== undefined) {
    issues.warn(at('serverCertificate'), 'no mode is set, so TLS is passed through (PASSTHROUGH) and this certificate is not used');
  }
  if (mode === 'ISTIO_MUTUAL') {
    for (const f of ['serverCertificate', 'privateKey', 'caCertificates', 'credentialName'] as const) {
      if (tls[f] !== undefined) issues.error(at(f), `ISTIO_MUTUAL uses the proxy's workload certificate: ${f} must not be set`);
    }
  }
  if (mode === 'SIMPLE' || mode === 'MUTUAL' || mode === 'OPTIONAL_MUTUAL') {
    if (tls.credentialName === undefined && (tls.credentialNames ?? []).length === 0 && (tls.tlsCertificates ?? []).length === 0) {
      if (tls.serverCertificate === undefined) issues.error(path, `${mode} mode requires serverCertificate`);
      if (tls.privateKey === undefined) issues.error(path, `${mode} mode requires privateKey`);
      if (mode !== 'SIMPLE' && tls.caCertificates === undefined) issues.error(path, `${mode} mode requires caCertificates`);
    }
  }
  if (mode === 'AUTO_PASSTHROUGH' && protocol !== 'TLS') issues.error(at('mode'), 'AUTO_PASSTHROUGH needs protocol TLS');
  const order = (v: string | undefined): number => (v === undefined || v === 'TLS_AUTO' ? -1 : TLS_VERSIONS.indexOf(v as (typeof TLS_VERSIONS)[number]));
  if (order(tls.minProtocolVersion) > 0 && order(tls.maxProtocolVersion) > 0 && order(tls.minProtocolVersion) > order(tls.maxProtocolVersion)) {
    issues.error(at('maxProtocolVersion'), 'maxProtocolVersion must not be below minProtocolVersion');
  } else if (order(tls.minProtocolVersion) < 0 && order(tls.maxProtocolVersion) > 0 && order(tls.maxProtocolVersion) < TLS_VERSIONS.indexOf('TLSV1_2')) {
    issues.error(at('maxProtocolVersion'), `maxProtocolVersion ${tls.maxProtocolVersion} is below the default minimum (TLSV1_2): set minProtocolVersion as well`);
  }
}

export const gatewaySpecSchema = object(
  {
    selector: record(string()),
    servers: array(serverSchema, { minItems: 1 }),
  },
  {
    required: ['servers'],
    check(spec, path, issues) {
      // Istio: "port names in servers must be unique".
      const seen = new Set<string>();
      spec.servers?.forEach((server, i) => {
        const name = server.port?.name;
        if (name === undefined || name === '') return;
        if (seen.has(name)) issues.error([...path, 'servers', i, 'port', 'name'], `port names in servers must be unique: duplicate name ${name}`);
        seen.add(name);
      });
    },
  },
);
export type GatewaySpec = Infer<typeof gatewaySpecSchema>;
