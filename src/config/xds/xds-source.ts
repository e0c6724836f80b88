/**
 * skiff's config from an ADS stream: takes each response's resources, keeps the last accepted
 * set of every type, and produces a model once the set is complete and warm.
 *
 * Contract:
 * - a response is translated as a whole: any problem NACKs it and nothing of it is used; the
 *   previous resources keep serving;
 * - clusters (CDS) and listeners (LDS) are wildcard and their responses are the full state:
 *   what is absent is removed. Endpoints (EDS) and route configurations (RDS) are subscribed
 *   by the names the clusters and listeners use; names no longer used are dropped;
 * - warming: a snapshot is built only when every EDS cluster has its ClusterLoadAssignment and
 *   every RDS name its RouteConfiguration, so one swap applies CDS, EDS, LDS and RDS together
 *   (make-before-break). An assignment that has not come after the does-not-exist timeout
 *   (Envoy's 15 s) counts as no endpoints;
 * - `load()` resolves with the first snapshot (the first CDS and LDS accepted and warm, and the
 *   workload certificate when the config uses Istio mTLS and the certificate comes from the
 *   stream or the CA: the proxy is ready only then) and later with the newest one; `watch` is
 *   told of each new one.
 */
import type { Cluster, Endpoint, MeshSettings, Model, RouteConfig } from '../../model/index.js';
import type { LoadResult } from '../load.js';
import type { ConfigSource } from '../source.js';
import type { Logger } from '../../core/logger.js';
import { AdsClient, type AdsClientOptions, type AdsResponse } from './ads-client.js';
import { translateCluster, type XdsCluster } from './cluster.js';
import { translateClusterLoadAssignment } from './endpoints.js';
import type { XdsProblem } from './fields.js';
import { chainsOf, translateListener, type XdsListener } from './listener.js';
import type { Json } from './proto.js';
import { TypeUrl } from './proto.js';
import { translateRouteConfiguration } from './route-configuration.js';
import { ROOT_SECRET, translateSecret, WORKLOAD_SECRET } from './secret.js';
import { buildSidecarModel, routeNamesOf } from './sidecar-model.js';

/** Envoy's recommended does-not-exist timeout for a named resource. */
const DOES_NOT_EXIST_MS = 15_000;

export interface XdsSourceOptions extends Pick<AdsClientOptions, 'target' | 'credentials' | 'serverName' | 'node' | 'backoff'> {
  /** Mesh settings xDS does not carry (ports, telemetry, timeouts). */
  readonly mesh: MeshSettings;
  readonly log: Logger;
  /** The does-not-exist timeout for endpoints (tests shorten it). */
  readonly warmingTimeoutMs?: number;
  /**
   * Given, the workload certificate and root come over the stream as SDS secrets `default` and
   * `ROOTCA`, and each complete pair is handed here; a throw (an unusable pair) NACKs it.
   */
  readonly onSecrets?: (pem: { readonly chain: string; readonly key: string; readonly root: string }) => void;
  /** Given, the first snapshot also waits for this (the workload certificate from elsewhere, e.g. Istio's CA). */
  readonly certificatesReady?: Promise<void>;
}

/** A resource's name, as SotW keys it. */
const nameOf = (r: Json): string => {
  const o = r as { [key: string]: Json };
  return String(o['name'] ?? o['cluster_name'] ?? o['clusterName'] ?? '');
};

/** The resource without `@type`: translators read message fields only. */
const bodyOf = (r: Json): { [key: string]: Json } => {
  const { ['@type']: _type, ...body } = r as { [key: string]: Json };
  return body;
};

export class XdsConfigSource implements ConfigSource {
  readonly #options: XdsSourceOptions;
  readonly #client: AdsClient;
  #clusters: ReadonlyMap<string, XdsCluster> | null = null;
  #listeners: ReadonlyMap<string, XdsListener> | null = null;
  readonly #endpoints = new Map<string, readonly Endpoint[]>();
  readonly #routes = new Map<string, RouteConfig>();
  #secrets: { readonly certificate?: { readonly chain: string; readonly key: string }; readonly root?: string } = {};
  /** When the current wait for missing assignments began; they count as empty after the timeout. */
  #warmingSince: number | null = null;
  #warmingTimer: NodeJS.Timeout | null = null;
  #model: Model | null = null;
  #modelJson = '';
  #first: { promise: Promise<void>; resolve: () => void };
  readonly #watchers = new Set<() => void>();
  /** `stats.snapshots` as of the last `load()`. */
  #loaded = 0;
  /** The first workload certificate and root came (SDS over the stream, or the CA). */
  #hasCertificate = false;
  #secretsWarning: NodeJS.Timeout | null = null;
  #closed = false;
  /** What the stream has done so far (tests and diagnostics). */
  readonly stats = { acks: 0, nacks: 0, snapshots: 0 };

  constructor(options: XdsSourceOptions) {
    this.#options = options;
    let resolve!: () => void;
    this.#first = { promise: new Promise<void>((r) => (resolve = r)), resolve };
    this.#client = new AdsClient({
      target: options.target,
      node: options.node,
      ...(options.credentials !== undefined ? { credentials: options.credentials } : {}),
      ...(options.serverName !== undefined ? { serverName: options.serverName } : {}),
      ...(options.backoff !== undefined ? { backoff: options.backoff } : {}),
      handler: {
        onResponse: (r) => this.#onResponse(r),
        onConnection: (state, detail) =>
          state === 'connected'
            ? options.log.info(`xDS: connected to ${options.target}`)
            : options.log.warn(`xDS: stream to ${options.target} broken (${detail ?? 'unknown'}): reconnecting; the last accepted config keeps serving`),
      },
    });
    // Istio's order: clusters, then listeners; endpoints and routes follow as they are named.
    this.#client.subscribe(TypeUrl.cluster, null);
    this.#client.subscribe(TypeUrl.listener, null);
    if (options.onSecrets !== undefined) this.#client.subscribe(TypeUrl.secret, [WORKLOAD_SECRET, ROOT_SECRET]);
    options.certificatesReady?.then(() => {
      if (this.#closed) return;
      this.#hasCertificate = true;
      this.#tryBuild();
    });
    this.#client.start();
  }

  async load(): Promise<LoadResult> {
    await this.#first.promise;
    this.#loaded = this.stats.snapshots;
    return { model: this.#model!, diagnostics: [], files: [] };
  }

  /** A snapshot built after the last `load()` but before this call is announced at once. */
  watch(onChange: () => void): Promise<{ close(): void }> {
    this.#watchers.add(onChange);
    if (this.stats.snapshots > this.#loaded) queueMicrotask(onChange);
    return Promise.resolve({ close: () => void this.#watchers.delete(onChange) });
  }

  close(): void {
    this.#closed = true;
    if (this.#warmingTimer !== null) clearTimeout(this.#warmingTimer);
    if (this.#secretsWarning !== null) clearTimeout(this.#secretsWarning);
    this.#client.close();
  }

  #onResponse(r: AdsResponse): readonly string[] {
    const problems = this.#take(r);
    if (problems.length > 0) {
      this.stats.nacks++;
      const lines = problems.map((p) => `${p.path}: ${p.message}`);
      this.#options.log.error(`xDS: rejected ${shortType(r.typeUrl)} version ${r.versionInfo} (NACK), still serving the previous one:\n  ${lines.join('\n  ')}`);
      return lines;
    }
    this.stats.acks++;
    this.#options.log.debug(`xDS: accepted ${shortType(r.typeUrl)} version ${r.versionInfo} (${r.resources.length} resources)`);
    this.#tryBuild();
    return [];
  }

  /** Translates a response and, when it has no problem, makes it the current state of its type. */
  #take(r: AdsResponse): XdsProblem[] {
    switch (r.typeUrl) {
      case TypeUrl.cluster:
        return this.#takeClusters(r.resources);
      case TypeUrl.endpoints:
        return this.#takeEndpoints(r.resources);
      case TypeUrl.listener:
        return this.#takeListeners(r.resources);
      case TypeUrl.routes:
        return this.#takeRoutes(r.resources);
      case TypeUrl.secret:
        return this.#takeSecrets(r.resources);
      default:
        return [{ path: r.typeUrl, message: 'resource type not subscribed' }];
    }
  }

  #takeClusters(resources: readonly Json[]): XdsProblem[] {
    const problems: XdsProblem[] = [];
    const clusters = new Map<string, XdsCluster>();
    for (const r of resources) {
      const name = nameOf(r);
      const t = translateCluster(bodyOf(r), { trustDomain: this.#options.mesh.trustDomain });
      problems.push(...prefixed(`cluster ${name}`, t.problems));
      if (t.cluster !== undefined) clusters.set(t.cluster.name, t.cluster);
    }
    if (problems.length > 0) return problems;
    this.#clusters = clusters;
    const wanted = this.#wantedEndpoints();
    for (const name of this.#endpoints.keys()) if (!wanted.has(name)) this.#endpoints.delete(name);
    this.#client.subscribe(TypeUrl.endpoints, [...wanted]);
    return [];
  }

  /** The assignment names the accepted clusters use. */
  #wantedEndpoints(): Set<string> {
    return new Set([...(this.#clusters?.values() ?? [])].flatMap((c) => (c.eds !== undefined ? [c.eds.serviceName] : [])));
  }

  #takeEndpoints(resources: readonly Json[]): XdsProblem[] {
    const problems: XdsProblem[] = [];
    const taken = new Map<string, readonly Endpoint[]>();
    // A response may still hold an assignment of a cluster just removed: it is not kept, so a
    // cluster added back later warms again.
    const wanted = this.#wantedEndpoints();
    // Locality weights count only in clusters that balance by locality (Envoy's rule).
    const localityWeighted = new Set([...(this.#clusters?.values() ?? [])].flatMap((c) => (c.eds?.localityWeighted === true ? [c.eds.serviceName] : [])));
    for (const r of resources) {
      const t = translateClusterLoadAssignment(bodyOf(r), { localityWeighted: localityWeighted.has(nameOf(r)) });
      problems.push(...prefixed(`endpoints ${t.clusterName}`, t.problems));
      taken.set(t.clusterName, t.endpoints);
    }
    if (problems.length > 0) return problems;
    for (const [name, endpoints] of taken) if (wanted.has(name)) this.#endpoints.set(name, endpoints);
    return [];
  }

  #takeListeners(resources: readonly Json[]): XdsProblem[] {
    const problems: XdsProblem[] = [];
    const listeners = new Map<string, XdsListener>();
    for (const r of resources) {
      const name = nameOf(r);
      const t = translateListener(bodyOf(r));
      problems.push(...prefixed(`listener ${name}`, t.problems));
      if (t.listener !== undefined) listeners.set(t.listener.name, t.listener);
    }
    if (problems.length > 0) return problems;
    // The listeners must make a sidecar the model can represent, whatever routes they get.
    const shape = buildSidecarModel({ listeners: [...listeners.values()], routes: new Map(), clusters: [] }, this.#options.mesh, { routesPending: true });
    if (shape.problems.length > 0) return shape.problems;
    this.#listeners = listeners;
    const wanted = new Set(routeNamesOf(listeners.values()));
    for (const name of this.#routes.keys()) if (!wanted.has(name)) this.#routes.delete(name);
    this.#client.subscribe(TypeUrl.routes, [...wanted]);
    return [];
  }

  #takeRoutes(resources: readonly Json[]): XdsProblem[] {
    const problems: XdsProblem[] = [];
    const taken = new Map<string, RouteConfig>();
    for (const r of resources) {
      const name = nameOf(r);
      const t = translateRouteConfiguration(bodyOf(r), name);
      problems.push(...prefixed(`route configuration ${name}`, t.problems));
      taken.set(name, t.config);
    }
    if (problems.length > 0) return problems;
    const wanted = new Set(routeNamesOf(this.#listeners?.values() ?? []));
    for (const [name, config] of taken) if (wanted.has(name)) this.#routes.set(name, config);
    return [];
  }

  /** The workload certificate and root: used once both have come (SotW: each response holds both when both exist). */
  #takeSecrets(resources: readonly Json[]): XdsProblem[] {
    const problems: XdsProblem[] = [];
    const next = { ...this.#secrets };
    for (const r of resources) {
      const t = translateSecret(bodyOf(r));
      problems.push(...prefixed(`secret ${t.name}`, t.problems));
      if (t.pem?.kind === 'certificate') next.certificate = t.pem;
      if (t.pem?.kind === 'root') next.root = t.pem.root;
    }
    if (problems.length > 0) return problems;
    const { certificate, root } = next;
    if (certificate !== undefined && root !== undefined) {
      try {
        this.#options.onSecrets!({ chain: certificate.chain, key: certificate.key, root });
        this.#hasCertificate = true;
      } catch (err) {
        return [{ path: `secret ${WORKLOAD_SECRET}`, message: `unusable with ${ROOT_SECRET}: ${(err as Error).message}` }];
      }
    }
    this.#secrets = next;
    return [];
  }

  /** Builds and publishes a snapshot when the resources are complete and warm. */
  #tryBuild(): void {
    const clusters = this.#clusters;
    const listeners = this.#listeners;
    if (clusters === null || listeners === null) return;
    const missingRoutes = routeNamesOf(listeners.values()).filter((n) => !this.#routes.has(n));
    const missingEndpoints = [...clusters.values()].flatMap((c) => (c.eds !== undefined && !this.#endpoints.has(c.eds.serviceName) ? [c.eds.serviceName] : []));
    const timeoutMs = this.#options.warmingTimeoutMs ?? DOES_NOT_EXIST_MS;
    if (missingEndpoints.length > 0) {
      this.#warmingSince ??= Date.now();
      if (Date.now() - this.#warmingSince < timeoutMs) {
        this.#warmingTimer ??= setTimeout(() => {
          this.#warmingTimer = null;
          this.#tryBuild();
        }, timeoutMs);
        return;
      }
      this.#options.log.warn(`xDS: no endpoints received for ${missingEndpoints.join(', ')} after ${timeoutMs / 1000}s: they have none`);
      // Declared absent once (as Envoy does): later updates do not wait for them again, and an
      // assignment that comes after all still replaces the empty one.
      for (const name of missingEndpoints) this.#endpoints.set(name, []);
    }
    if (missingRoutes.length > 0) return; // listeners warm until their routes arrive
    // Listeners and clusters that use the workload certificate (Istio mTLS) warm until it comes
    // (Envoy waits for SDS without limit); plaintext-only config does not wait.
    const awaitsCertificate = (this.#options.onSecrets !== undefined || this.#options.certificatesReady !== undefined) && !this.#hasCertificate;
    if (awaitsCertificate && usesWorkloadCertificate(clusters.values(), listeners.values())) {
      this.#secretsWarning ??= setTimeout(() => {
        if (!this.#hasCertificate) {
          this.#options.log.error(
            this.#options.onSecrets !== undefined
              ? `xDS: no workload certificate after ${timeoutMs / 1000}s: the control plane does not send the SDS secrets "default" and "ROOTCA" ` +
                  '(istiod leaves them to istio-agent); not ready until it does, or give skiff the certificate files (--certs) or a service-account token'
              : `xDS: no workload certificate after ${timeoutMs / 1000}s: not ready until the CA issues one`,
          );
        }
      }, timeoutMs);
      this.#secretsWarning.unref();
      return;
    }
    this.#warmingSince = null;
    if (this.#warmingTimer !== null) clearTimeout(this.#warmingTimer);
    this.#warmingTimer = null;
    const withEndpoints: Cluster[] = [...clusters.values()].map(({ eds, ...c }) => (eds === undefined ? c : { ...c, endpoints: this.#endpoints.get(eds.serviceName) ?? [] }));
    const built = buildSidecarModel({ listeners: [...listeners.values()], routes: this.#routes, clusters: withEndpoints }, this.#options.mesh);
    if (built.model === undefined) {
      this.#options.log.error(`xDS: cannot build a snapshot: ${built.problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`);
      return;
    }
    const json = JSON.stringify(built.model);
    if (json === this.#modelJson) return;
    this.#model = built.model;
    this.#modelJson = json;
    this.stats.snapshots++;
    this.#first.resolve();
    for (const w of this.#watchers) w();
  }
}

/** Whether any cluster originates Istio mTLS or any listener chain terminates it. */
function usesWorkloadCertificate(clusters: Iterable<XdsCluster>, listeners: Iterable<XdsListener>): boolean {
  for (const c of clusters) if (c.tls?.mode === 'ISTIO_MUTUAL') return true;
  for (const l of listeners) if (chainsOf(l).some((c) => c.terminatesMtls)) return true;
  return false;
}

function prefixed(prefix: string, problems: readonly XdsProblem[]): XdsProblem[] {
  return problems.map((p) => ({ path: p.path === '' ? prefix : `${prefix}: ${p.path}`, message: p.message }));
}

const shortType = (typeUrl: string): string => typeUrl.slice(typeUrl.lastIndexOf('.') + 1);
