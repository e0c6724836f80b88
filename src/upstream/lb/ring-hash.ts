/**
 * RING_HASH (Ketama-style consistent hashing): each host owns points on a 32-bit ring in
 * proportion to its weight; a request goes to the first point at or after its hash. Removing a
 * host moves only the keys that host owned.
 */
import type { Host } from '../host.js';
import { hash32 } from '../hash.js';
import { randomIndex, type LoadBalancer, type PickContext } from './load-balancer.js';

export class RingHashLoadBalancer implements LoadBalancer {
  readonly #hosts: readonly Host[];
  /** Sorted point hashes; `#owners[i]` owns `#points[i]`. */
  readonly #points: Uint32Array;
  readonly #owners: Host[];

  constructor(hosts: readonly Host[], minimumRingSize: number, maximumRingSize: number) {
    this.#hosts = hosts;
    const total = hosts.reduce((s, h) => s + h.weight, 0);
    const entries: Array<[number, Host]> = [];
    if (hosts.length > 0 && total > 0) {
      const ringSize = Math.min(maximumRingSize, Math.max(minimumRingSize, hosts.length));
      for (const h of hosts) {
        const count = Math.max(1, Math.round((ringSize * h.weight) / total));
        for (let i = 0; i < count; i++) entries.push([hash32(`${h.key}_${i}`), h]);
      }
    }
    entries.sort((a, b) => a[0] - b[0]);
    this.#points = Uint32Array.from(entries, (e) => e[0]);
    this.#owners = entries.map((e) => e[1]);
  }

  pick(ctx: PickContext): Host | undefined {
    if (this.#owners.length === 0) return undefined;
    if (ctx.hash === undefined) return this.#hosts[randomIndex(this.#hosts.length)];
    const key = ctx.hash >>> 0;
    const points = this.#points;
    let lo = 0;
    let hi = points.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (points[mid]! < key) lo = mid + 1;
      else hi = mid;
    }
    return this.#owners[lo === points.length ? 0 : lo];
  }
}
