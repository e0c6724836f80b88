/**
 * Opening the xDS config source for `skiff run --xds` and `skiff proxy sidecar`: the control
 * plane address, how to authenticate to it, where the workload certificate comes from, and the
 * node this proxy presents.
 *
 * Authentication to the control plane (istiod's 15012 is TLS, 15010 plaintext):
 * - NONE: plaintext;
 * - MUTUAL_TLS with a certificate directory (--certs, or Istio's mount points): mTLS with its
 *   files;
 * - MUTUAL_TLS without: TLS verified with the mesh root (`/var/run/secrets/istio/root-cert.pem`)
 *   and the pod's service-account token (`/var/run/secrets/tokens/istio-token`) as a bearer
 *   credential, as istio-agent connects.
 *
 * The workload certificate: the directory's files when there is one; else, with a token, from
 * Istio's CA (a CSR over TLS to CA_ADDR, or to the discovery address unless that is plaintext),
 * as istio-agent does; else as SDS secrets over the stream.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../core/logger.js';
import { SkiffError } from '../core/errors.js';
import type { MeshSettings, WorkloadMetadata } from '../model/index.js';
import { CERT_FILES, PushedCredentials } from '../security/cert-store.js';
import { IstioCaClient } from '../security/istio-ca-client.js';
import { spiffeId } from '../security/spiffe.js';
import { workloadMetadataFromEnv } from '../telemetry/peer-metadata.js';
import { buildNode } from '../config/xds/node.js';
import type { ConfigSource } from '../config/source.js';
import { XdsConfigSource } from '../config/xds/xds-source.js';

/** istiod's plaintext and mTLS xDS ports. */
export const ISTIOD_PLAINTEXT_PORT = 15010;
export const ISTIOD_MTLS_PORT = 15012;
/** Where an injected pod has its service-account token for istiod and the mesh root. */
export const ISTIO_TOKEN_PATH = '/var/run/secrets/tokens/istio-token';
export const ISTIO_ROOT_CERT_PATH = '/var/run/secrets/istio/root-cert.pem';

export type ControlPlaneAuth = 'NONE' | 'MUTUAL_TLS';

export interface XdsStartOptions {
  /** `host:port`, `unix:/path` or `/path` (a unix socket). */
  readonly address: string;
  /** Default: MUTUAL_TLS on istiod's 15012, else NONE. */
  readonly auth?: ControlPlaneAuth;
  /** Where the workload certificate files are, when there are any. */
  readonly certificatesDir?: string;
  /** The service-account token and the mesh root for TLS to the control plane (Istio's paths by default). */
  readonly tokenPath?: string;
  readonly rootCertPath?: string;
  /** TLS name of the control plane when the address does not carry it (e.g. an IP). */
  readonly serverName?: string;
  readonly type: 'sidecar' | 'router';
  readonly domain?: string;
  readonly serviceCluster?: string;
  readonly mesh: MeshSettings;
  readonly env: NodeJS.ProcessEnv;
  readonly log: Logger;
}

export interface XdsParts {
  /** The config source; closing it also stops the CA client. */
  readonly source: ConfigSource;
  /** The workload credentials when they do not come from files (the CA or SDS over the stream). */
  readonly credentials?: PushedCredentials;
}

/** grpc-js target syntax for an address as users write it. */
export function xdsTarget(address: string): string {
  if (address.startsWith('unix:')) return address;
  if (address.startsWith('/') || address.startsWith('./')) return `unix:${address}`;
  if (!/:\d+$/.test(address)) throw new SkiffError('USAGE', `--xds needs HOST:PORT or a unix socket path, got "${address}"`);
  return address;
}

export function openXdsSource(options: XdsStartOptions): XdsParts {
  const target = xdsTarget(options.address);
  const port = Number(/:(\d+)$/.exec(target)?.[1] ?? 0);
  const auth = options.auth ?? (port === ISTIOD_MTLS_PORT ? 'MUTUAL_TLS' : 'NONE');
  const tokenPath = options.tokenPath ?? ISTIO_TOKEN_PATH;
  const rootCertPath = options.rootCertPath ?? ISTIO_ROOT_CERT_PATH;
  const dir = options.certificatesDir;
  // A certificate directory, once given, is the certificate's source (files may come later).
  const files = dir !== undefined;
  const token = existsSync(tokenPath) && existsSync(rootCertPath);
  // Istio's CA is reached over TLS: the discovery address when that is TLS, or CA_ADDR.
  const caAddress = options.env['CA_ADDR'] || undefined;
  const caReachable = token && (auth !== 'NONE' || caAddress !== undefined);
  if (auth === 'MUTUAL_TLS' && !files && !token) {
    throw new SkiffError('USAGE', `TLS to the control plane needs the workload certificate (--certs DIR) or a service-account token and the mesh root (${tokenPath}, ${rootCertPath})`);
  }
  // Read at each (re)connect, so rotated certificates and tokens are used from the next stream on.
  const tokenCredentials = (): grpc.ChannelCredentials =>
    grpc.credentials.combineChannelCredentials(
      grpc.credentials.createSsl(readFileSync(rootCertPath)),
      grpc.credentials.createFromMetadataGenerator((_params, callback) => {
        const metadata = new grpc.Metadata();
        metadata.set('authorization', `Bearer ${readFileSync(tokenPath, 'utf8').trim()}`);
        callback(null, metadata);
      }),
    );
  const controlPlane =
    auth === 'NONE'
      ? undefined
      : files
        ? // Read at each (re)connect; files not written yet make the client retry later.
          () => grpc.credentials.createSsl(readFileSync(join(dir, CERT_FILES.root)), readFileSync(join(dir, CERT_FILES.key)), readFileSync(join(dir, CERT_FILES.chain)))
        : tokenCredentials;

  const workload = workloadMetadataFromEnv(options.env, { namespace: options.mesh.defaultNamespace, labels: options.mesh.workloadLabels });
  let node;
  try {
    node = buildNode({ type: options.type, workload, env: options.env, ...(options.domain !== undefined ? { domain: options.domain } : {}), ...(options.serviceCluster !== undefined ? { serviceCluster: options.serviceCluster } : {}) });
  } catch (err) {
    throw new SkiffError('USAGE', (err as Error).message);
  }

  // Certificate files are watched by the proxy itself; otherwise they come from here.
  const origin = files ? 'files' : caReachable ? 'ca' : 'sds';
  const credentials = origin === 'files' ? undefined : new PushedCredentials((c) => options.log.info(`workload certificate ${c.identity} from ${origin === 'ca' ? "Istio's CA" : 'SDS over xDS'}, valid until ${c.notAfter.toISOString()}`));
  let ca: IstioCaClient | undefined;
  let certificatesReady: Promise<void> | undefined;
  if (origin === 'ca') {
    let issued!: () => void;
    certificatesReady = new Promise((resolve) => (issued = resolve));
    ca = new IstioCaClient({
      target: caAddress !== undefined ? xdsTarget(caAddress) : target,
      credentials: tokenCredentials,
      ...(options.serverName !== undefined ? { serverName: options.serverName } : {}),
      spiffeId: spiffeIdOf(workload, options.mesh.trustDomain),
      clusterId: workload.clusterId,
      onCertificate: (pem) => {
        credentials!.update(pem);
        issued();
      },
      onError: (m) => options.log.error(m),
    });
  }
  options.log.info(`xDS: ${target} (${auth === 'NONE' ? 'plaintext' : files ? 'mTLS' : 'TLS with the service-account token'}), node ${String(node['id'])}, workload certificate from ${origin === 'files' ? dir : origin === 'ca' ? "Istio's CA" : 'SDS over xDS'}`);
  const source = new XdsConfigSource({
    target,
    node,
    mesh: options.mesh,
    log: options.log,
    ...(options.serverName !== undefined ? { serverName: options.serverName } : {}),
    ...(controlPlane !== undefined ? { credentials: controlPlane } : {}),
    ...(origin === 'sds' ? { onSecrets: (pem: { chain: string; key: string; root: string }) => credentials!.update(pem) } : {}),
    ...(certificatesReady !== undefined ? { certificatesReady } : {}),
  });
  ca?.start();
  const withCa: ConfigSource = {
    load: () => source.load(),
    watch: (onChange) => source.watch(onChange),
    close: () => {
      source.close();
      ca?.close();
    },
  };
  return { source: withCa, ...(credentials !== undefined ? { credentials } : {}) };
}

/** The identity the CA is asked for (istiod issues the token's identity whatever is asked). */
function spiffeIdOf(workload: WorkloadMetadata, trustDomain: string): string {
  return spiffeId(trustDomain, workload.namespace, workload.serviceAccount === '' ? 'default' : workload.serviceAccount);
}
