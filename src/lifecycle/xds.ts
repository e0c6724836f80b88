/**
 * Opening the xDS config source for `skiff run --xds` and `skiff proxy sidecar`: the control
 * plane address, how to authenticate to it, and the node this proxy presents.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../core/logger.js';
import { SkiffError } from '../core/errors.js';
import type { MeshSettings } from '../model/index.js';
import { CERT_FILES, PushedCredentials } from '../security/cert-store.js';
import { workloadMetadataFromEnv } from '../telemetry/peer-metadata.js';
import { buildNode } from '../config/xds/node.js';
import { XdsConfigSource } from '../config/xds/xds-source.js';

/** istiod's plaintext and mTLS xDS ports. */
export const ISTIOD_PLAINTEXT_PORT = 15010;
export const ISTIOD_MTLS_PORT = 15012;

export type ControlPlaneAuth = 'NONE' | 'MUTUAL_TLS';

export interface XdsStartOptions {
  /** `host:port`, `unix:/path` or `/path` (a unix socket). */
  readonly address: string;
  /** Default: MUTUAL_TLS on istiod's 15012, else NONE. */
  readonly auth?: ControlPlaneAuth;
  /** Where the workload certificate is (mTLS to the control plane). */
  readonly certificatesDir?: string;
  /**
   * Take the workload certificate and root as SDS secrets over the stream (when there are no
   * certificate files); they are then the proxy's credentials.
   */
  readonly secretsOverXds?: boolean;
  readonly type: 'sidecar' | 'router';
  readonly domain?: string;
  readonly serviceCluster?: string;
  readonly mesh: MeshSettings;
  readonly env: NodeJS.ProcessEnv;
  readonly log: Logger;
}

/** grpc-js target syntax for an address as users write it. */
export function xdsTarget(address: string): string {
  if (address.startsWith('unix:')) return address;
  if (address.startsWith('/') || address.startsWith('./')) return `unix:${address}`;
  if (!/:\d+$/.test(address)) throw new SkiffError('USAGE', `--xds needs HOST:PORT or a unix socket path, got "${address}"`);
  return address;
}

export function openXdsSource(options: XdsStartOptions): { source: XdsConfigSource; credentials?: PushedCredentials } {
  const target = xdsTarget(options.address);
  const port = Number(/:(\d+)$/.exec(target)?.[1] ?? 0);
  const auth = options.auth ?? (port === ISTIOD_MTLS_PORT ? 'MUTUAL_TLS' : 'NONE');
  if (auth === 'MUTUAL_TLS' && options.certificatesDir === undefined) {
    throw new SkiffError('USAGE', 'mutual TLS to the control plane needs the workload certificate (--certs DIR)');
  }
  const workload = workloadMetadataFromEnv(options.env, { namespace: options.mesh.defaultNamespace, labels: options.mesh.workloadLabels });
  let node;
  try {
    node = buildNode({ type: options.type, workload, env: options.env, ...(options.domain !== undefined ? { domain: options.domain } : {}), ...(options.serviceCluster !== undefined ? { serviceCluster: options.serviceCluster } : {}) });
  } catch (err) {
    throw new SkiffError('USAGE', (err as Error).message);
  }
  const dir = options.certificatesDir;
  // Read at each (re)connect, so a rotated certificate is used from the next stream on.
  const tls =
    auth === 'MUTUAL_TLS' && dir !== undefined
      ? () => ({ ca: readFileSync(join(dir, CERT_FILES.root)), key: readFileSync(join(dir, CERT_FILES.key)), cert: readFileSync(join(dir, CERT_FILES.chain)) })
      : undefined;
  const credentials =
    options.secretsOverXds === true
      ? new PushedCredentials((c) => options.log.info(`workload certificate ${c.identity} received over xDS (SDS), valid until ${c.notAfter.toISOString()}`))
      : undefined;
  options.log.info(`xDS: ${target} (${auth === 'MUTUAL_TLS' ? 'mTLS' : 'plaintext'}), node ${String(node['id'])}${credentials !== undefined ? ', certificates over SDS' : ''}`);
  const source = new XdsConfigSource({
    target,
    node,
    mesh: options.mesh,
    log: options.log,
    ...(tls !== undefined ? { tls } : {}),
    ...(credentials !== undefined ? { onSecrets: (pem: { chain: string; key: string; root: string }) => credentials.update(pem) } : {}),
  });
  return credentials === undefined ? { source } : { source, credentials };
}
