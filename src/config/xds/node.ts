/**
 * The Envoy Node skiff presents to the control plane, as pilot-agent builds it for istio-proxy.
 *
 * - id: `<type>~<ip>~<pod>.<namespace>~<namespace>.svc.<cluster domain>` (istiod refuses a node
 *   whose id does not have four `~` parts and a valid IP);
 * - cluster: the service cluster (`--serviceCluster`, else `<app>.<namespace>`);
 * - metadata: Istio's NodeMetadata keys. `ISTIO_META_<KEY>` variables become `<KEY>` (strings;
 *   those holding JSON, such as POD_PORTS, stay strings as pilot-agent sends them),
 *   `ISTIO_METAJSON_<KEY>` variables are parsed JSON, then the values skiff knows itself.
 */
import { isIP } from 'node:net';
import type { WorkloadMetadata } from '../../model/index.js';
import type { Json } from './proto.js';

/** The Istio release whose xDS output skiff expects (istiod tailors output to ISTIO_VERSION). */
export const ISTIO_VERSION = '1.24.0';
export const SKIFF_VERSION = '0.1.0';

export interface NodeOptions {
  readonly type: 'sidecar' | 'router';
  readonly workload: WorkloadMetadata;
  /** Cluster domain suffix (pilot-agent --domain is `<namespace>.svc.<suffix>`); default cluster.local. */
  readonly domain?: string;
  readonly serviceCluster?: string;
  /** INTERCEPTION_MODE: REDIRECT (iptables) unless told otherwise. */
  readonly interceptionMode?: string;
  readonly env: NodeJS.ProcessEnv;
}

export function buildNode(options: NodeOptions): { [key: string]: Json } {
  const w = options.workload;
  const ip = w.instanceIps[0] ?? '127.0.0.1';
  const domain = options.domain ?? `${w.namespace}.svc.cluster.local`;
  const id = `${options.type}~${ip}~${w.name === '' ? 'skiff' : w.name}.${w.namespace}~${domain}`;
  const metadata: { [key: string]: Json } = {};
  for (const [key, value] of Object.entries(options.env)) {
    if (value === undefined) continue;
    if (key.startsWith('ISTIO_METAJSON_')) {
      try {
        metadata[key.slice('ISTIO_METAJSON_'.length)] = JSON.parse(value) as Json;
      } catch {
        throw new Error(`${key}: not JSON`);
      }
    } else if (key.startsWith('ISTIO_META_')) {
      metadata[key.slice('ISTIO_META_'.length)] = value;
    }
  }
  Object.assign(metadata, {
    ISTIO_VERSION: (metadata['ISTIO_VERSION'] as string | undefined) ?? ISTIO_VERSION,
    NAMESPACE: w.namespace,
    INSTANCE_IPS: w.instanceIps.filter((a) => isIP(a) !== 0).join(','),
    LABELS: { ...w.labels },
    CLUSTER_ID: w.clusterId,
    WORKLOAD_NAME: w.workloadName,
    INTERCEPTION_MODE: options.interceptionMode ?? (metadata['INTERCEPTION_MODE'] as string | undefined) ?? 'REDIRECT',
    ...(w.meshId !== '' ? { MESH_ID: w.meshId } : {}),
    ...(w.serviceAccount !== '' ? { SERVICE_ACCOUNT: w.serviceAccount } : {}),
    ...(w.name !== '' ? { NAME: w.name } : {}),
  });
  const app = w.labels['app'] ?? w.workloadName;
  return {
    id,
    cluster: options.serviceCluster ?? `${app === '' ? 'skiff' : app}.${w.namespace}`,
    metadata,
    user_agent_name: 'skiff',
    user_agent_version: SKIFF_VERSION,
  };
}
