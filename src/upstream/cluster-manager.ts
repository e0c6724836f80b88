/**
 * Owns the live clusters. On each snapshot it keeps a cluster whose config hash is unchanged
 * (so its pools and balancer state survive the swap, like Envoy's addOrUpdateCluster), builds
 * the new ones, and retires the rest once the swap is done. Requests resolve their cluster from
 * the spec object of the snapshot they started with, so an old snapshot keeps reaching the
 * clusters it was compiled against until it is released.
 */
import type { ClusterSpec } from '../compile/snapshot.js';
import { createCluster, type Cluster, type ClusterOptions } from './cluster.js';

export interface ClusterManagerOptions extends ClusterOptions {
  /** How often idle connections and idle passthrough hosts are swept. */
  readonly sweepIntervalMs?: number;
}

export class ClusterManager {
  readonly #options: ClusterManagerOptions;
  #live = new Map<string, Cluster>();
  readonly #bySpec = new WeakMap<ClusterSpec, Cluster>();
  readonly #sweeper: NodeJS.Timeout;

  constructor(options: ClusterManagerOptions) {
    this.#options = options;
    this.#sweeper = setInterval(() => this.#sweep(), options.sweepIntervalMs ?? 1000);
    this.#sweeper.unref();
  }

  /**
   * Prepares clusters for `specs` and waits until new ones are ready (first DNS answer). Returns
   * a commit function to call after the snapshot swap: it retires clusters no longer used.
   */
  async prepare(specs: ReadonlyMap<string, ClusterSpec>): Promise<() => void> {
    const next = new Map<string, Cluster>();
    const created: Cluster[] = [];
    for (const [name, spec] of specs) {
      const existing = this.#live.get(name);
      if (existing !== undefined && existing.spec.configHash === spec.configHash) {
        next.set(name, existing);
        this.#bySpec.set(spec, existing);
        continue;
      }
      const cluster = createCluster(spec, this.#options);
      created.push(cluster);
      next.set(name, cluster);
      this.#bySpec.set(spec, cluster);
    }
    await Promise.all(created.map((c) => c.ready()));
    return () => {
      for (const [name, old] of this.#live) if (next.get(name) !== old) old.retire();
      this.#live = next;
    };
  }

  /** The live cluster for a spec from any snapshot prepared by this manager. */
  get(spec: ClusterSpec): Cluster | undefined {
    return this.#bySpec.get(spec);
  }

  get clusters(): ReadonlyMap<string, Cluster> {
    return this.#live;
  }

  #sweep(): void {
    const now = performance.now();
    for (const c of this.#live.values()) c.sweep(now);
  }

  close(): void {
    clearInterval(this.#sweeper);
    for (const c of this.#live.values()) {
      c.retire();
      for (const h of c.hosts) {
        h.pool.destroy();
        h.h2?.destroy();
      }
    }
    this.#live = new Map();
  }
}
