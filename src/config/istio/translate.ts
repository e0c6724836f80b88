/**
 * Istio resources → the internal model. Cross-resource checks happen here (duplicates,
 * references to unknown hosts and subsets) and so do the honest refusals: a field that would
 * change security if ignored is an error; one skiff does not enforce yet is a warning.
 */
import { hostPort } from '../../core/addresses.js';
import { DEFAULT_MESH, type MeshSettings, type Model, type TraceExporter, type TracingSettings } from '../../model/index.js';
import type { Diagnostic } from '../diagnostics.js';
import { authorizationFor } from './authz-policy.js';
import { buildClusters } from './clusters.js';
import { hostMatches, toFqdn } from './hosts.js';
import { GatewayBuilder, type GatewayResource } from './gateway-servers.js';
import { buildTcpServices } from './l4-routes.js';
import { resolvePeerAuthentication } from './peer-authn-policy.js';
import { requestAuthenticationFor } from './request-authn-policy.js';
import { buildRegistry, type Service, type ServiceEntryResource } from './registry.js';
import { exportedTo, resourceDiagnostic, type IstioResource } from './resources.js';
import { applyRateLimits, type LocalRateLimitResource } from './rate-limits.js';
import { buildRouteConfigs, inboundRouteConfig, type VirtualServiceResource } from './routes.js';
import { DestinationRuleIndex, type DestinationRuleResource } from './traffic-policy.js';

export interface Translation {
  readonly model: Model;
  readonly diagnostics: Diagnostic[];
}

type Kind<K extends IstioResource['kind']> = Extract<IstioResource, { kind: K }>;

function meshSettings(configs: ReadonlyArray<Kind<'MeshConfig'>>, diagnostics: Diagnostic[]): MeshSettings {
  configs.slice(1).forEach((extra) => {
    diagnostics.push(resourceDiagnostic(extra, ['kind'], `only one MeshConfig is allowed (${configs[0]!.label} is already loaded)`, 'error'));
  });
  const spec = configs[0]?.spec;
  if (spec === undefined) return DEFAULT_MESH;
  const ports = { ...DEFAULT_MESH.ports };
  for (const [k, v] of Object.entries(spec.ports ?? {})) if (v !== undefined) ports[k as keyof typeof ports] = v;
  return {
    outboundTrafficPolicy: spec.outboundTrafficPolicy?.mode ?? DEFAULT_MESH.outboundTrafficPolicy,
    trustDomain: spec.trustDomain ?? DEFAULT_MESH.trustDomain,
    trustDomainAliases: spec.trustDomainAliases ?? DEFAULT_MESH.trustDomainAliases,
    defaultNamespace: spec.defaultNamespace ?? DEFAULT_MESH.defaultNamespace,
    rootNamespace: spec.rootNamespace ?? DEFAULT_MESH.rootNamespace,
    workloadLabels: spec.workloadLabels ?? DEFAULT_MESH.workloadLabels,
    connectTimeoutMs: spec.connectTimeout ?? DEFAULT_MESH.connectTimeoutMs,
    dnsRefreshRateMs: spec.dnsRefreshRate ?? DEFAULT_MESH.dnsRefreshRateMs,
    requestHeadersTimeoutMs: spec.requestHeadersTimeout ?? DEFAULT_MESH.requestHeadersTimeoutMs,
    downstreamIdleTimeoutMs: spec.idleTimeout ?? DEFAULT_MESH.downstreamIdleTimeoutMs,
    protocolDetectionTimeoutMs: spec.protocolDetectionTimeout ?? DEFAULT_MESH.protocolDetectionTimeoutMs,
    tcpIdleTimeoutMs: spec.tcpIdleTimeout ?? DEFAULT_MESH.tcpIdleTimeoutMs,
    enableAutoMtls: spec.enableAutoMtls ?? DEFAULT_MESH.enableAutoMtls,
    accessLog: {
      file: spec.accessLogFile ?? DEFAULT_MESH.accessLog.file,
      encoding: spec.accessLogEncoding ?? DEFAULT_MESH.accessLog.encoding,
      format: spec.accessLogFormat ?? DEFAULT_MESH.accessLog.format,
    },
    tracing: tracingSettings(configs[0]!, diagnostics),
    terminationDrainDurationMs: spec.defaultConfig?.terminationDrainDuration ?? DEFAULT_MESH.terminationDrainDurationMs,
    drainDurationMs: spec.defaultConfig?.drainDuration ?? DEFAULT_MESH.drainDurationMs,
    ports,
  };
}

/**
 * Where spans go, as Istio picks it: the default tracing provider (an extensionProviders entry
 * named by defaultProviders.tracing), else ProxyConfig's Zipkin address, else nowhere.
 */
function tracingSettings(mesh: Kind<'MeshConfig'>, diagnostics: Diagnostic[]): TracingSettings {
  const spec = mesh.spec;
  const enabled = spec.enableTracing ?? DEFAULT_MESH.tracing.enabled;
  const samplingPercent = spec.defaultConfig?.tracing?.sampling ?? DEFAULT_MESH.tracing.samplingPercent;
  const named = spec.defaultProviders?.tracing?.[0];
  let exporter: TraceExporter | null = null;
  if (named !== undefined) {
    const index = spec.extensionProviders?.findIndex((p) => p.name === named) ?? -1;
    const provider = index < 0 ? undefined : spec.extensionProviders![index]!;
    const at = ['spec', 'extensionProviders', index];
    if (provider === undefined) {
      diagnostics.push(resourceDiagnostic(mesh, ['spec', 'defaultProviders', 'tracing', 0], `no extensionProviders entry is named "${named}"`, 'error'));
    } else if (provider.zipkin !== undefined) {
      const z = provider.zipkin;
      if (z.service === undefined || z.port === undefined) diagnostics.push(resourceDiagnostic(mesh, [...at, 'zipkin'], 'zipkin needs service and port', 'error'));
      else exporter = { kind: 'zipkin', url: `http://${hostPort(z.service, z.port)}${absolutePath(z.path ?? '/api/v2/spans')}` };
    } else if (provider.opentelemetry !== undefined) {
      const o = provider.opentelemetry;
      if (o.service === undefined || o.port === undefined) {
        diagnostics.push(resourceDiagnostic(mesh, [...at, 'opentelemetry'], 'opentelemetry needs service and port', 'error'));
      } else if (o.http === undefined) {
        diagnostics.push(resourceDiagnostic(mesh, [...at, 'opentelemetry', 'http'], 'skiff exports OTLP over HTTP only: set http (e.g. path: /v1/traces)', 'error'));
      } else {
        exporter = { kind: 'otlp-http', url: `http://${hostPort(o.service, o.port)}${absolutePath(o.http.path ?? '/v1/traces')}` };
      }
    } else {
      diagnostics.push(resourceDiagnostic(mesh, at, 'the tracing provider must be zipkin or opentelemetry', 'error'));
    }
  } else if (spec.defaultConfig?.tracing?.zipkin?.address !== undefined) {
    exporter = { kind: 'zipkin', url: `http://${spec.defaultConfig.tracing.zipkin.address}/api/v2/spans` };
  }
  if (exporter !== null && !URL.canParse(exporter.url)) {
    diagnostics.push(resourceDiagnostic(mesh, ['spec'], `the tracing collector address ${exporter.url} is not a valid URL`, 'error'));
    exporter = null;
  }
  return { enabled, samplingPercent, exporter };
}

function absolutePath(path: string): string {
  return path.startsWith('/') ? path : `/${path}`;
}

/** Duplicate kind/namespace/name: the later one is an error, as the API server would refuse it. */
function rejectDuplicates(resources: readonly IstioResource[], defaultNamespace: string, diagnostics: Diagnostic[]): IstioResource[] {
  const seen = new Map<string, IstioResource>();
  const out: IstioResource[] = [];
  for (const r of resources) {
    const key = `${r.kind}/${r.metadata.namespace ?? defaultNamespace}/${r.metadata.name}`;
    const first = seen.get(key);
    if (first !== undefined) {
      const where = `${first.document.file.name}`;
      diagnostics.push(resourceDiagnostic(r, ['metadata', 'name'], `duplicate ${r.kind} "${r.metadata.name}" (first defined in ${where})`, 'error'));
      continue;
    }
    seen.set(key, r);
    out.push(r);
  }
  return out;
}

/** Fields skiff refuses (ignoring them could fail open or misroute) or does not enforce yet. */
function checkSupport(r: IstioResource, d: Diagnostic[]): void {
  const error = (path: Array<string | number>, message: string): void => void d.push(resourceDiagnostic(r, path, message, 'error'));
  const warn = (path: Array<string | number>, message: string): void => void d.push(resourceDiagnostic(r, path, message, 'warning'));
  const notYet = (path: Array<string | number>, what: string): void => warn(path, `${what} is accepted but not enforced yet`);
  switch (r.kind) {
    case 'VirtualService': {
      const spec = r.spec;
      spec.http?.forEach((h, i) => {
        const at = (f: string): Array<string | number> => ['spec', 'http', i, f];
        if (h.delegate !== undefined) error(at('delegate'), 'delegate is not supported yet');
        if (h.fault?.delay?.exponentialDelay !== undefined) {
          warn(['spec', 'http', i, 'fault', 'delay', 'exponentialDelay'], 'exponentialDelay is not supported by Istio: no delay is injected');
        }
        if (h.fault?.abort?.http2Error !== undefined) notYet(['spec', 'http', i, 'fault', 'abort', 'http2Error'], 'an HTTP/2 error abort');
        if (h.retries?.retryRemoteLocalities === true) notYet(['spec', 'http', i, 'retries', 'retryRemoteLocalities'], 'retryRemoteLocalities');
        h.match?.forEach((m, j) => {
          for (const field of ['headers', 'withoutHeaders'] as const) {
            for (const name of Object.keys(m[field] ?? {})) {
              if (name.startsWith('@request.auth.claims')) {
                error(['spec', 'http', i, 'match', j, field, name], 'routing on JWT claims is not supported yet');
              }
            }
          }
        });
      });
      return;
    }
    case 'DestinationRule': {
      const policies = [
        { path: ['spec', 'trafficPolicy'], p: r.spec.trafficPolicy },
        ...(r.spec.subsets ?? []).map((s, i) => ({ path: ['spec', 'subsets', i, 'trafficPolicy'], p: s.trafficPolicy })),
      ];
      for (const { path, p } of policies) {
        if (p === undefined) continue;
        if (p.tunnel !== undefined) notYet([...path, 'tunnel'], 'tunneling');
        if (p.proxyProtocol !== undefined) notYet([...path, 'proxyProtocol'], 'the PROXY protocol');
        if (p.retryBudget !== undefined) notYet([...path, 'retryBudget'], 'retryBudget');
        const blocks = [{ at: path, b: p }, ...(p.portLevelSettings ?? []).map((b, i) => ({ at: [...path, 'portLevelSettings', i], b }))];
        for (const { at, b } of blocks) {
          const mode = b.tls?.mode;
          if (mode === 'SIMPLE' || mode === 'MUTUAL') {
            const tls = b.tls!;
            if (tls.credentialName !== undefined) {
              error([...at, 'tls', 'credentialName'], `TLS origination (${mode}) with credentialName is not supported (it needs SDS); use clientCertificate, privateKey and caCertificates file paths`);
            }
            if (mode === 'MUTUAL' && tls.credentialName === undefined) {
              if (tls.clientCertificate === undefined) error([...at, 'tls'], 'MUTUAL TLS requires clientCertificate');
              if (tls.privateKey === undefined) error([...at, 'tls'], 'MUTUAL TLS requires privateKey');
            }
            if (tls.caCrl !== undefined) error([...at, 'tls', 'caCrl'], 'caCrl is not supported yet; refusing to skip revocation checks');
          }
          if (b.tls?.insecureSkipVerify === true) error([...at, 'tls', 'insecureSkipVerify'], 'insecureSkipVerify is not supported: the server certificate is always verified');
          const od = b.outlierDetection;
          if (od?.splitExternalLocalOriginErrors !== undefined || od?.consecutiveLocalOriginFailures !== undefined) {
            notYet([...at, 'outlierDetection'], 'splitting local-origin errors');
          }
          if (b.connectionPool?.tcp?.tcpKeepalive !== undefined || b.connectionPool?.tcp?.maxConnectionDuration !== undefined) {
            notYet([...at, 'connectionPool', 'tcp'], 'TCP keepalive and connection duration');
          }
          if (b.loadBalancer?.localityLbSetting !== undefined) notYet([...at, 'loadBalancer', 'localityLbSetting'], 'locality load balancing');
          if (b.loadBalancer?.warmup !== undefined || b.loadBalancer?.warmupDurationSecs !== undefined) {
            notYet([...at, 'loadBalancer'], 'slow-start warmup');
          }
        }
      }
      return;
    }
    case 'ServiceEntry':
      if (r.spec.workloadSelector !== undefined) {
        error(['spec', 'workloadSelector'], 'workloadSelector needs a workload registry; list endpoints instead');
      }
      if (r.spec.resolution === 'DYNAMIC_DNS') error(['spec', 'resolution'], 'resolution DYNAMIC_DNS is not supported');
      return;
    case 'Gateway':
      r.spec.servers?.forEach((server, i) => {
        const tls = server.tls;
        if (tls === undefined) return;
        const at = (f: string): Array<string | number> => ['spec', 'servers', i, 'tls', f];
        const secrets = 'Kubernetes secrets (SDS) are not available: use serverCertificate, privateKey and caCertificates file paths';
        if (tls.credentialName !== undefined) error(at('credentialName'), `credentialName is not supported: ${secrets}`);
        if (tls.credentialNames !== undefined) error(at('credentialNames'), `credentialNames is not supported: ${secrets}`);
        if (tls.tlsCertificates !== undefined) error(at('tlsCertificates'), 'tlsCertificates is not supported yet: give one serverCertificate and privateKey');
        if (tls.caCrl !== undefined) error(at('caCrl'), 'caCrl is not supported yet; refusing to skip revocation checks');
        if (tls.verifyCertificateSpki !== undefined) error(at('verifyCertificateSpki'), 'verifyCertificateSpki is not supported yet; refusing to accept clients it would refuse');
        if (tls.verifyCertificateHash !== undefined) error(at('verifyCertificateHash'), 'verifyCertificateHash is not supported yet; refusing to accept clients it would refuse');
        if (tls.mode === 'AUTO_PASSTHROUGH') error(at('mode'), 'AUTO_PASSTHROUGH is not supported yet');
        if (tls.mode === 'ISTIO_MUTUAL') {
          for (const f of ['minProtocolVersion', 'maxProtocolVersion', 'cipherSuites'] as const) {
            if (tls[f] !== undefined) error(at(f), `${f} is not supported yet with ISTIO_MUTUAL (the workload certificate's TLS settings apply: TLS 1.2 and up)`);
          }
        }
      });
      return;
    case 'MeshConfig':
      return;
  }
}

export function translate(all: readonly IstioResource[]): Translation {
  const diagnostics: Diagnostic[] = [];
  const mesh = meshSettings(all.filter((r): r is Kind<'MeshConfig'> => r.kind === 'MeshConfig'), diagnostics);
  const resources = rejectDuplicates(all, mesh.defaultNamespace, diagnostics);
  for (const r of resources) checkSupport(r, diagnostics);
  const of = <K extends IstioResource['kind']>(k: K): Array<Kind<K>> => resources.filter((r): r is Kind<K> => r.kind === k);

  // Only what is exported to this proxy's namespace shapes its config (Istio exportTo).
  const visible = <R extends { metadata: { namespace?: string }; spec: { exportTo?: string[] } }>(rs: readonly R[]): R[] =>
    rs.filter((r) => exportedTo(r.spec.exportTo, r.metadata.namespace ?? mesh.defaultNamespace, mesh.defaultNamespace));
  const virtualServices = visible(of('VirtualService') as VirtualServiceResource[]);
  const registry = buildRegistry(visible(of('ServiceEntry') as ServiceEntryResource[]), mesh.defaultNamespace, diagnostics);
  const rules = new DestinationRuleIndex(
    of('DestinationRule') as DestinationRuleResource[],
    { proxyNamespace: mesh.defaultNamespace, rootNamespace: mesh.rootNamespace },
    { ignored: (dr, path, message) => void diagnostics.push(resourceDiagnostic(dr, path, message, 'warning')) },
  );
  reportUnusedRules(of('DestinationRule') as DestinationRuleResource[], registry, rules, mesh, diagnostics);
  checkSubsetReferences(virtualServices, registry, rules, mesh.defaultNamespace, diagnostics);

  const { routeConfigs, fallback } = buildRouteConfigs(virtualServices, {
    mesh,
    proxyLabels: mesh.workloadLabels,
    registry,
    diagnostics,
  });
  const limits = of('LocalRateLimit') as LocalRateLimitResource[];
  const model: Model = {
    mesh,
    routeConfigs: applyRateLimits(routeConfigs, limits, mesh),
    fallbackRouteConfig: applyRateLimits([fallback], limits, mesh)[0]!,
    inboundRouteConfig: inboundRouteConfig(),
    peerAuthentication: resolvePeerAuthentication(of('PeerAuthentication'), mesh, diagnostics),
    authorization: authorizationFor(of('AuthorizationPolicy'), mesh, diagnostics),
    requestAuthentication: requestAuthenticationFor(of('RequestAuthentication'), mesh, diagnostics),
    clusters: buildClusters(registry, rules, mesh),
    tcpServices: buildTcpServices(virtualServices, {
      registry,
      clientNamespace: mesh.defaultNamespace,
      proxyLabels: mesh.workloadLabels,
      diagnostics,
    }),
    gateways: new GatewayBuilder(virtualServices, { mesh, registry, diagnostics }).build(of('Gateway') as GatewayResource[]),
  };
  return { model, diagnostics };
}

/**
 * Warns about DestinationRules that shape no cluster: no service matches their host, or another
 * rule is chosen for every service they match (namespace precedence, a more specific host).
 */
function reportUnusedRules(
  all: readonly DestinationRuleResource[],
  registry: ReadonlyMap<string, Service>,
  rules: DestinationRuleIndex,
  mesh: MeshSettings,
  diagnostics: Diagnostic[],
): void {
  const used = new Set<DestinationRuleResource>();
  for (const svc of registry.values()) for (const dr of rules.sources(svc.hostname, svc.namespace)) used.add(dr);
  for (const dr of all) {
    if (used.has(dr) || Object.keys(dr.spec.workloadSelector?.matchLabels ?? {}).length > 0) continue;
    const namespace = dr.metadata.namespace ?? mesh.defaultNamespace;
    const host = toFqdn(dr.spec.host!, namespace);
    const matched = [...registry.values()].filter((svc) => hostMatches(host, svc.hostname));
    let why: string;
    if (matched.length === 0) {
      why = `no service in the registry matches ${host}`;
    } else {
      const svc = matched[0]!;
      const winner = rules.sources(svc.hostname, svc.namespace)[0];
      why =
        winner !== undefined
          ? `${winner.label} (namespace ${winner.metadata.namespace ?? mesh.defaultNamespace}) applies to ${svc.hostname} instead`
          : `a DestinationRule applies to ${svc.hostname} only from the proxy's namespace (${mesh.defaultNamespace}), ` +
            `or exported to it from the service's namespace (${svc.namespace}) or the root namespace (${mesh.rootNamespace})`;
    }
    diagnostics.push(resourceDiagnostic(dr, ['spec', 'host'], `${why}; this rule has no effect`, 'warning'));
  }
}

/** Warns about route destinations naming a subset no DestinationRule defines (Envoy: 503 NC). */
function checkSubsetReferences(
  virtualServices: readonly VirtualServiceResource[],
  registry: ReadonlyMap<string, Service>,
  rules: DestinationRuleIndex,
  defaultNamespace: string,
  diagnostics: Diagnostic[],
): void {
  for (const vs of virtualServices) {
    const ns = vs.metadata.namespace ?? defaultNamespace;
    for (const section of ['http', 'tcp', 'tls'] as const) {
      const outcome = section === 'http' ? 'requests routed here get 503 NC' : 'connections routed here are closed';
      vs.spec[section]?.forEach((rule, i) =>
        rule.route?.forEach((d, j) => {
          const subset = d.destination?.subset;
          if (subset === undefined || subset === '') return;
          const host = toFqdn(d.destination!.host!, ns);
          const dr = rules.find(host, registry.get(host)?.namespace ?? ns);
          if (dr?.spec.subsets?.some((s) => s.name === subset)) return;
          diagnostics.push(
            resourceDiagnostic(
              vs,
              ['spec', section, i, 'route', j, 'destination', 'subset'],
              `subset "${subset}" is not defined by any DestinationRule for ${host}: ${outcome}`,
              'warning',
            ),
          );
        }),
      );
    }
  }
}
