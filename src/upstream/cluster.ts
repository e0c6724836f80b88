/**
 * A live upstream cluster: its hosts, their pools, its circuit breakers, its outlier detector,
 * and the load balancer over the hosts not ejected. Built from a ClusterSpec; replaced (not
 * mutated) when the spec's config changes. Host discovery differs by type:
 * - STATIC: the endpoints as given;
 * - STRICT_DNS: endpoint names resolved to every address (of the lookup family; only the first
 *   for LOGICAL_DNS), re-resolved every refresh period;
 * - ORIGINAL_DST: a host per destination the request names, created on demand.
 */
import { lookup } from 'node:dns/promises';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { ClusterSpec } from '../compile/snapshot.js';
import type { Endpoint } from '../model/cluster.js';
import { TLS_MODE_LABEL, type OriginatedTls } from '../model/security.js';
import type { WorkloadCredentials } from '../security/cert-store.js';
import type { TargetTls } from './connect.js';
import { Host, hostKey } from './host.js';
import { createLoadBalancer, type LoadBalancer, type PickContext } from './lb/index.js';
import { OutlierDetector } from './outlier-detector.js';
import { H2Pool } from './pool/h2-pool.js';
import { ConnectionPool, type PoolOptions } from './pool/connection-pool.js';
import { ResourceManager } from './resource-manager.js';

/** Where a request is going; ORIGINAL_DST clusters connect to it. */
export interface Destination {
  readonly host: string;
  readonly port: number;
}

export interface ClusterOptions {
  /** Called with a message when DNS resolution fails (for logs). */
  readonly onWarning?: (message: string) => void;
  /** The workload's mTLS credentials (ISTIO_MUTUAL clusters); none means such connects fail. */
  readonly credentials?: () => WorkloadCredentials | null;
}

const NO_CREDENTIALS = (): null => null;

export abstract class Cluster {
  readonly spec: ClusterSpec;
  readonly resources: ResourceManager;
  protected readonly poolOptions: PoolOptions;
  /** Null unless the spec configures outlier detection (and the cluster type supports it). */
  protected outlier: OutlierDetector | null = null;
  #retired = false;

  readonly #credentials: () => WorkloadCredentials | null;
  /** SIMPLE / MUTUAL: the context built from the rule's files, or why it could not be. */
  #originated: SecureContext | string = 'the TLS context is not loaded yet';
  readonly #tlsLoaded: Promise<void>;

  constructor(spec: ClusterSpec, options: ClusterOptions) {
    this.spec = spec;
    this.#credentials = options.credentials ?? NO_CREDENTIALS;
    const tls = spec.tls;
    this.#tlsLoaded =
      tls !== undefined && tls.mode !== 'ISTIO_MUTUAL' ? originationContext(tls).then((c) => void (this.#originated = c)) : Promise.resolve();
    this.resources = new ResourceManager(spec.circuitBreakers);
    this.poolOptions = {
      connectTimeoutMs: spec.connectTimeoutMs,
      idleTimeoutMs: spec.idleTimeoutMs,
      maxRequestsPerConnection: spec.maxRequestsPerConnection,
    };
  }

  get name(): string {
    return this.spec.name;
  }

  get retired(): boolean {
    return this.#retired;
  }

  /** Resolves once the cluster's TLS files are read and it has its first host list (DNS). */
  async ready(): Promise<void> {
    await Promise.all([this.#tlsLoaded, this.discovered()]);
  }

  /** Resolves once the cluster has its first host list (DNS); immediate for others. */
  protected abstract discovered(): Promise<void>;
  abstract get hosts(): readonly Host[];
  abstract pick(ctx: PickContext, destination: Destination): Host | undefined;

  sweep(now: number): void {
    for (const h of this.hosts) h.pool.sweep(now);
  }

  /** Hosts currently ejected by outlier detection. */
  get ejectedHosts(): number {
    return this.outlier?.ejectedCount ?? 0;
  }

  /** Stops new reuse and closes idle connections; in-flight requests finish. */
  retire(): void {
    this.#retired = true;
    this.outlier?.stop();
    for (const h of this.hosts) {
      h.pool.retire();
      h.h2?.retire();
    }
  }

  /**
   * TLS for a host: every host under ISTIO_MUTUAL, SIMPLE and MUTUAL, only sidecar-labelled ones
   * under auto mTLS.
   */
  #tlsFor(labels: Readonly<Record<string, string>>): { tls?: TargetTls } {
    const tls = this.spec.tls;
    if (tls === undefined) return {};
    if (tls.mode !== 'ISTIO_MUTUAL') {
      return {
        tls: { origination: tls.mode, ...(tls.sni !== undefined ? { sni: tls.sni } : {}), subjectAltNames: tls.subjectAltNames, context: () => this.#originated },
      };
    }
    if (tls.auto && labels[TLS_MODE_LABEL] !== 'istio') return {};
    return { tls: { sni: tls.sni, subjectAltNames: tls.subjectAltNames, trustDomain: tls.trustDomain, credentials: this.#credentials } };
  }

  protected makeHost(address: string, port: number, weight: number, labels: Readonly<Record<string, string>>, priority = 0, healthy = true): Host {
    const target = address.startsWith('unix://')
      ? { host: '', port: 0, path: address.slice('unix://'.length), ...this.#tlsFor(labels) }
      : {
          host: address,
          port,
          ...(this.spec.sourceAddress !== undefined && { localAddress: this.spec.sourceAddress[isIP(address) === 6 ? 'ipv6' : 'ipv4'] }),
          ...this.#tlsFor(labels),
        };
    const pool = new ConnectionPool(target, this.poolOptions, this.resources);
    const h2Options = { ...this.poolOptions, clientProtocol: this.spec.protocol === 'client', maxConcurrentStreams: this.spec.maxConcurrentStreams ?? 0 };
    const h2 = this.spec.protocol !== undefined ? new H2Pool(target, h2Options, this.resources) : null;
    if (this.#retired) {
      pool.retire();
      h2?.retire();
    }
    return new Host(address, port, weight, labels, pool, this.outlier?.monitor() ?? null, h2, priority, healthy);
  }
}

/** An endpoint as a host list holds it (a model Endpoint, or one address a DNS name resolved to). */
type HostEntry = Pick<Endpoint, 'address' | 'port' | 'weight' | 'labels' | 'priority' | 'healthy'>;

/** A host takes traffic outside panic: the control plane calls it healthy and it is not ejected. */
const isAvailable = (h: Host): boolean => h.healthy && !(h.outlier?.ejected ?? false);

/**
 * A cluster whose host list is replaced as a whole (STATIC and STRICT_DNS).
 *
 * Which hosts the balancer covers (recomputed on every host-list or ejection change, never per
 * request): the serving level is the highest priority (lowest number) with an available host, or
 * the highest priority when none has one. The balancer covers that level's available hosts, or
 * all its hosts in panic: when their share falls below the panic threshold (a threshold of 0
 * disables panic, so with no available host there is no host to pick).
 *
 * Envoy differs with several priorities: it spills a share of the traffic to the next level as
 * soon as a level's availability × overprovisioning factor (1.4) drops below 100%, where skiff
 * moves everything only once a level has no available host at all.
 */
class HostListCluster extends Cluster {
  #hosts: readonly Host[] = [];
  /** The hosts by priority level, highest priority first; one entry when all share a level. */
  #levels: ReadonlyArray<readonly Host[]> = [];
  #lb: LoadBalancer;

  constructor(spec: ClusterSpec, options: ClusterOptions) {
    super(spec, options);
    if (spec.outlierDetection !== undefined) this.outlier = new OutlierDetector(spec.outlierDetection, () => this.#rebalance());
    this.#lb = createLoadBalancer(spec.lb, []);
  }

  #rebalance(): void {
    const levels = this.#levels;
    const level = levels.find((l) => l.some(isAvailable)) ?? levels[0] ?? [];
    const available = level.every(isAvailable) ? level : level.filter(isAvailable);
    const panic = available.length < level.length && (100 * available.length) / level.length < this.spec.healthyPanicThreshold;
    this.#lb = createLoadBalancer(this.spec.lb, panic ? level : available);
  }

  protected discovered(): Promise<void> {
    return Promise.resolve();
  }

  get hosts(): readonly Host[] {
    return this.#hosts;
  }

  pick(ctx: PickContext): Host | undefined {
    return this.#lb.pick(ctx);
  }

  /** Installs a new host list, keeping the Host (and pool) of every endpoint that stays as it was. */
  protected setHosts(next: readonly HostEntry[]): void {
    const probeOf = (key: string, e: HostEntry): string => `${key}|${e.weight}|${e.priority ?? 0}|${e.healthy ?? true}`;
    const old = new Map(this.#hosts.map((h) => [probeOf(h.key, h), h]));
    const hosts = next.map((e) => {
      const probe = probeOf(hostKey(e.address, e.port), e);
      const kept = old.get(probe);
      if (kept !== undefined) {
        old.delete(probe);
        return kept;
      }
      return this.makeHost(e.address, e.port, e.weight, e.labels, e.priority ?? 0, e.healthy ?? true);
    });
    for (const gone of old.values()) {
      gone.pool.retire();
      gone.h2?.retire();
      if (gone.outlier !== null) this.outlier?.remove(gone.outlier);
    }
    this.#hosts = hosts;
    this.#levels = byPriority(hosts);
    this.#rebalance();
  }
}

/** Hosts grouped by priority, highest priority (lowest number) first; `[hosts]` when all share one. */
function byPriority(hosts: readonly Host[]): ReadonlyArray<readonly Host[]> {
  if (hosts.every((h) => h.priority === hosts[0]!.priority)) return hosts.length === 0 ? [] : [hosts];
  const levels = new Map<number, Host[]>();
  for (const h of hosts) {
    const level = levels.get(h.priority);
    if (level === undefined) levels.set(h.priority, [h]);
    else level.push(h);
  }
  return [...levels.entries()].sort((a, b) => a[0] - b[0]).map(([, l]) => l);
}

export class StaticCluster extends HostListCluster {
  constructor(spec: ClusterSpec, options: ClusterOptions) {
    super(spec, options);
    this.setHosts(spec.endpoints);
  }
}

export class StrictDnsCluster extends HostListCluster {
  readonly #options: ClusterOptions;
  #timer: NodeJS.Timeout | null = null;
  readonly #first: Promise<void>;

  constructor(spec: ClusterSpec, options: ClusterOptions) {
    super(spec, options);
    this.#options = options;
    this.#first = this.#resolve();
  }

  protected override discovered(): Promise<void> {
    return this.#first;
  }

  async #resolve(): Promise<void> {
    const resolved: HostEntry[] = [];
    let failures = 0;
    await Promise.all(
      this.spec.endpoints.map(async (e: Endpoint) => {
        if (isIP(e.address) !== 0 || e.address.startsWith('unix://')) {
          resolved.push(e);
          return;
        }
        try {
          const addrs = pickAddresses(await lookup(e.address, { all: true }), this.spec.dnsLookupFamily, this.spec.firstAddressOnly === true);
          for (const a of addrs) resolved.push({ ...e, address: a.address });
        } catch (err) {
          failures++;
          this.#options.onWarning?.(`cluster ${this.spec.name}: cannot resolve ${e.address}: ${(err as Error).message}`);
        }
      }),
    );
    // Keep the previous hosts when every lookup failed (Envoy keeps the last good resolution).
    if (!(failures > 0 && resolved.length === 0 && this.hosts.length > 0)) this.setHosts(resolved);
    if (!this.retired) {
      this.#timer = setTimeout(() => void this.#resolve(), this.spec.dnsRefreshRateMs);
      this.#timer.unref();
    }
  }

  override retire(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    super.retire();
  }
}

/**
 * ORIGINAL_DST: forwards to the destination the request names (Istio's PassthroughCluster and
 * ServiceEntry resolution NONE). Hosts are created on first use and dropped by the sweep once
 * they have no requests and no connections left.
 */
export class OriginalDstCluster extends Cluster {
  readonly #hosts = new Map<string, Host>();

  protected discovered(): Promise<void> {
    return Promise.resolve();
  }

  get hosts(): readonly Host[] {
    return [...this.#hosts.values()];
  }

  pick(_ctx: PickContext, destination: Destination): Host | undefined {
    const key = `${destination.host}:${destination.port}`;
    let host = this.#hosts.get(key);
    if (host === undefined) {
      host = this.makeHost(destination.host, destination.port, 1, {});
      this.#hosts.set(key, host);
    }
    return host;
  }

  override sweep(now: number): void {
    super.sweep(now);
    for (const [key, h] of this.#hosts) {
      if (h.activeRequests === 0 && h.pool.activeConnections === 0 && (h.h2?.activeConnections ?? 0) === 0) this.#hosts.delete(key);
    }
  }
}

/**
 * The addresses of one name a STRICT_DNS cluster uses, by the cluster's lookup family (Envoy
 * dns_lookup_family; absent: all), then only the first when `firstOnly` (LOGICAL_DNS).
 */
function pickAddresses(
  addrs: ReadonlyArray<{ address: string; family: number }>,
  family: ClusterSpec['dnsLookupFamily'],
  firstOnly: boolean,
): ReadonlyArray<{ address: string; family: number }> {
  const of = (f: number): ReadonlyArray<{ address: string; family: number }> => addrs.filter((a) => a.family === f);
  let used = addrs;
  if (family === 'V4_ONLY') used = of(4);
  else if (family === 'V6_ONLY') used = of(6);
  else if (family === 'V4_PREFERRED') used = of(4).length > 0 ? of(4) : of(6);
  else if (family === 'V6_PREFERRED') used = of(6).length > 0 ? of(6) : of(4);
  return firstOnly ? used.slice(0, 1) : used;
}

export function createCluster(spec: ClusterSpec, options: ClusterOptions): Cluster {
  switch (spec.discovery) {
    case 'STATIC':
      return new StaticCluster(spec, options);
    case 'STRICT_DNS':
      return new StrictDnsCluster(spec, options);
    case 'ORIGINAL_DST':
      return new OriginalDstCluster(spec, options);
  }
}

/**
 * The SecureContext of a SIMPLE / MUTUAL cluster, from the rule's files: caCertificates (else
 * the default roots), and for MUTUAL the client certificate and key. A file that cannot be read
 * or parsed yields the reason instead, and every connect of the cluster fails with it.
 */
async function originationContext(tls: OriginatedTls): Promise<SecureContext | string> {
  const read = async (path: string | undefined): Promise<Buffer | undefined> => (path === undefined ? undefined : readFile(path));
  const files: Array<[string | undefined, Buffer | undefined]> = [];
  for (const path of [tls.caCertificates, tls.clientCertificate, tls.privateKey]) {
    try {
      files.push([path, await read(path)]);
    } catch (err) {
      return `cannot read ${path}: ${(err as Error).message}`;
    }
  }
  const [ca, cert, key] = files.map(([, data]) => data);
  if (tls.mode === 'MUTUAL' && (cert === undefined || key === undefined)) return 'MUTUAL TLS needs clientCertificate and privateKey';
  try {
    return createSecureContext({
      minVersion: 'TLSv1.2',
      maxVersion: 'TLSv1.3',
      ...(ca !== undefined ? { ca } : {}),
      ...(cert !== undefined ? { cert } : {}),
      ...(key !== undefined ? { key } : {}),
    });
  } catch (err) {
    const paths = files.map(([p]) => p).filter((p) => p !== undefined).join(', ');
    return `invalid TLS files (${paths}): ${(err as Error).message}`;
  }
}
