/**
 * What injection adds to a pod, as plain data: the `istio-init` init container (runs
 * `skiff iptables`), the `istio-proxy` sidecar (runs `skiff run --mode sidecar`), the config
 * volume, and the annotations, metrics merging's among them (prometheus-merge.ts). Names, ports,
 * probe timings and security contexts follow Istio's injection template, so tools that look for
 * `istio-proxy` or `sidecar.istio.io/status` work.
 */
import { parse as parseYaml } from 'yaml';
import { ANNOTATION, InvalidAnnotation, quantity, uint32, type Annotations } from './annotations.js';
import { captureArgs, PROXY_UID } from './capture.js';
import { prometheusMerge } from './prometheus-merge.js';

export const DEFAULT_IMAGE = 'localhost/skiff:latest';
export const DEFAULT_CONFIG_MAP = 'skiff-mesh';
export const INIT_CONTAINER = 'istio-init';
export const SIDECAR_CONTAINER = 'istio-proxy';
export const CONFIG_VOLUME = 'skiff-config';
export const CONFIG_MOUNT_PATH = '/etc/skiff/config';

export interface SidecarOptions {
  /** The skiff image, for both containers (default DEFAULT_IMAGE). */
  readonly image?: string;
  /** The ConfigMap holding skiff's config (default DEFAULT_CONFIG_MAP). */
  readonly configMap?: string;
}

export interface TemplateInput {
  readonly annotations: Annotations;
  /** The workload's name (Deployment, CronJob, bare Pod, ...), when it has one. */
  readonly workloadName: string | undefined;
  /** The pod's own containers, in order. */
  readonly appContainers: readonly string[];
  /** ISTIO_KUBE_APP_PROBERS, when the pod's probes were rewritten (see app-probes.ts). */
  readonly appProbers?: string | undefined;
}

export type Manifest = Readonly<Record<string, unknown>>;

export interface Injection {
  /** Go before the pod's own init containers: their traffic is captured too, as with Istio. */
  readonly initContainers: readonly Manifest[];
  readonly sidecar: Manifest;
  /** The sidecar goes first (and holds the app until ready) instead of last. */
  readonly sidecarFirst: boolean;
  readonly volumes: readonly Manifest[];
  /** Set on the pod; `setIfAbsent` only when the pod has none of that name. */
  readonly annotations: Readonly<Record<string, string>>;
  readonly setIfAbsent: Readonly<Record<string, string>>;
  /** Removed from the pod (other spellings of the Prometheus annotations that metrics merging sets). */
  readonly removeAnnotations: readonly string[];
}

/** Throws InvalidAnnotation when an annotation's value is one Istio would refuse. */
export function sidecarTemplate(input: TemplateInput, options: SidecarOptions = {}): Injection {
  const a = input.annotations;
  const image = a[ANNOTATION.proxyImage] ?? options.image ?? DEFAULT_IMAGE;
  const configMap = options.configMap ?? DEFAULT_CONFIG_MAP;
  const hold = holdApplication(a);
  const mode = a[ANNOTATION.interceptionMode] ?? 'REDIRECT';
  if (mode === 'TPROXY') throw new InvalidAnnotation(ANNOTATION.interceptionMode, 'TPROXY interception is not supported by skiff yet; use REDIRECT');
  if (mode !== 'REDIRECT' && mode !== 'NONE') throw new InvalidAnnotation(ANNOTATION.interceptionMode, `unknown interception mode "${mode}" (expected REDIRECT or NONE)`);

  const initContainers = mode === 'NONE' ? [] : [initContainer(image, captureArgs(a))];
  const metrics = prometheusMerge(a);
  // In Istio's order: the merged-metrics settings, then the probes.
  const env: Manifest[] = [];
  if (metrics?.env !== undefined) env.push({ name: 'ISTIO_PROMETHEUS_ANNOTATIONS', value: metrics.env });
  if (input.appProbers !== undefined) env.push({ name: 'ISTIO_KUBE_APP_PROBERS', value: input.appProbers });
  const sidecar = sidecarContainer(image, input.workloadName, a, hold, env);
  const volumes = [{ name: CONFIG_VOLUME, configMap: { name: configMap } }];
  const status = {
    initContainers: initContainers.length === 0 ? null : initContainers.map((c) => c.name),
    containers: [SIDECAR_CONTAINER],
    volumes: volumes.map((v) => v.name),
    imagePullSecrets: null,
    revision: 'default',
  };
  const app = input.appContainers[0];
  return {
    initContainers,
    sidecar,
    sidecarFirst: hold,
    volumes,
    annotations: { ...metrics?.set, [ANNOTATION.status]: JSON.stringify(status) },
    // kubectl logs/exec default to the app, not to a sidecar put first.
    setIfAbsent: app === undefined ? {} : { [ANNOTATION.defaultContainer]: app, [ANNOTATION.defaultLogsContainer]: app },
    removeAnnotations: metrics?.remove ?? [],
  };
}

function initContainer(image: string, args: readonly string[]): Manifest & { name: string } {
  return {
    name: INIT_CONTAINER,
    image,
    imagePullPolicy: 'IfNotPresent',
    args: ['iptables', ...args],
    resources: {
      requests: { cpu: '10m', memory: '10Mi' },
      limits: { cpu: '2000m', memory: '1024Mi' },
    },
    securityContext: {
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
      readOnlyRootFilesystem: false,
      runAsGroup: 0,
      runAsNonRoot: false,
      runAsUser: 0,
    },
  };
}

function sidecarContainer(image: string, workloadName: string | undefined, a: Annotations, hold: boolean, extraEnv: readonly Manifest[]): Manifest {
  const fieldEnv = (name: string, fieldPath: string): Manifest => ({ name, valueFrom: { fieldRef: { fieldPath } } });
  const env: Manifest[] = [
    fieldEnv('POD_NAME', 'metadata.name'),
    fieldEnv('POD_NAMESPACE', 'metadata.namespace'),
    fieldEnv('INSTANCE_IP', 'status.podIP'),
    fieldEnv('SERVICE_ACCOUNT', 'spec.serviceAccountName'),
  ];
  if (workloadName !== undefined) env.push({ name: 'ISTIO_META_WORKLOAD_NAME', value: workloadName });
  env.push(...extraEnv);
  const container: Record<string, unknown> = {
    name: SIDECAR_CONTAINER,
    image,
    imagePullPolicy: 'IfNotPresent',
    args: ['run', '--mode', 'sidecar', '-c', CONFIG_MOUNT_PATH, '--concurrency', '2'],
    ports: [
      { containerPort: 15090, name: 'http-envoy-prom', protocol: 'TCP' },
      { containerPort: 15021, name: 'status-port', protocol: 'TCP' },
      { containerPort: 15020, name: 'http-monitoring', protocol: 'TCP' },
    ],
    env,
    resources: resources(a),
    readinessProbe: {
      httpGet: { path: '/healthz/ready', port: 15021 },
      initialDelaySeconds: probeSetting(a, ANNOTATION.readinessInitialDelaySeconds, 0),
      periodSeconds: probeSetting(a, ANNOTATION.readinessPeriodSeconds, 15),
      timeoutSeconds: 3,
      failureThreshold: probeSetting(a, ANNOTATION.readinessFailureThreshold, 4),
    },
    securityContext: {
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { drop: ['ALL'] },
      readOnlyRootFilesystem: true,
      runAsGroup: PROXY_UID,
      runAsNonRoot: true,
      runAsUser: PROXY_UID,
    },
    volumeMounts: [{ name: CONFIG_VOLUME, mountPath: CONFIG_MOUNT_PATH, readOnly: true }],
  };
  // Istio's holdApplicationUntilProxyStarts: the kubelet starts the next container only once
  // this hook returns, i.e. once the proxy answers its readiness check.
  if (hold) container['lifecycle'] = { postStart: { exec: { command: ['skiff', 'wait'] } } };
  return container;
}

/**
 * Istio's defaults (requests 100m/128Mi, limits 2000m/1024Mi). As in Istio's template, once any
 * of the four resource annotations is set, only the annotated values are used.
 */
function resources(a: Annotations): Manifest {
  const cpu = a[ANNOTATION.proxyCPU];
  const memory = a[ANNOTATION.proxyMemory];
  const cpuLimit = a[ANNOTATION.proxyCPULimit];
  const memoryLimit = a[ANNOTATION.proxyMemoryLimit];
  if (cpu === undefined && memory === undefined && cpuLimit === undefined && memoryLimit === undefined) {
    return { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '2000m', memory: '1024Mi' } };
  }
  const pick = (cpuValue: string | undefined, cpuName: string, memValue: string | undefined, memName: string): Manifest | undefined => {
    const out: Record<string, string> = {};
    if (cpuValue !== undefined) out['cpu'] = quantity(cpuName, cpuValue);
    if (memValue !== undefined) out['memory'] = quantity(memName, memValue);
    return Object.keys(out).length === 0 ? undefined : out;
  };
  const requests = pick(cpu, ANNOTATION.proxyCPU, memory, ANNOTATION.proxyMemory);
  const limits = pick(cpuLimit, ANNOTATION.proxyCPULimit, memoryLimit, ANNOTATION.proxyMemoryLimit);
  return { ...(requests && { requests }), ...(limits && { limits }) };
}

function probeSetting(a: Annotations, annotation: string, fallback: number): number {
  const v = a[annotation];
  return v === undefined ? fallback : uint32(annotation, v);
}

/**
 * `sidecar.istio.io/holdApplicationUntilProxyStarts` when set, else `holdApplicationUntilProxyStarts`
 * in the `proxy.istio.io/config` ProxyConfig (YAML or JSON), else false (Istio's default).
 */
function holdApplication(a: Annotations): boolean {
  const direct = a[ANNOTATION.holdApplicationUntilProxyStarts];
  if (direct !== undefined) {
    const v = direct.toLowerCase();
    if (v !== 'true' && v !== 'false') throw new InvalidAnnotation(ANNOTATION.holdApplicationUntilProxyStarts, `"${direct}" is not "true" or "false"`);
    return v === 'true';
  }
  const proxyConfig = a[ANNOTATION.proxyConfig];
  if (proxyConfig === undefined) return false;
  let parsed: unknown;
  try {
    parsed = parseYaml(proxyConfig);
  } catch (err) {
    throw new InvalidAnnotation(ANNOTATION.proxyConfig, `not a valid ProxyConfig: ${(err as Error).message.split('\n')[0]}`);
  }
  if (parsed === null || parsed === undefined) return false;
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new InvalidAnnotation(ANNOTATION.proxyConfig, 'not a valid ProxyConfig: expected a map of fields');
  const hold = (parsed as Record<string, unknown>)['holdApplicationUntilProxyStarts'];
  if (hold === undefined || hold === null) return false;
  if (typeof hold !== 'boolean') throw new InvalidAnnotation(ANNOTATION.proxyConfig, `holdApplicationUntilProxyStarts must be true or false, got ${JSON.stringify(hold)}`);
  return hold;
}
