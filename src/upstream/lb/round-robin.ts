/** ROUND_ROBIN: strict rotation, or smooth weighted rotation (nginx's algorithm) for unequal weights. */
import type { Host } from '../host.js';
import { uniformWeights, type LoadBalancer } from './load-balancer.js';

export class RoundRobinLoadBalancer implements LoadBalancer {
  readonly #hosts: readonly Host[];
  readonly #uniform: boolean;
  readonly #current: number[];
  readonly #total: number;
  #next: number;

  constructor(hosts: readonly Host[]) {
    this.#hosts = hosts;
    this.#uniform = uniformWeights(hosts);
    this.#current = hosts.map(() => 0);
    this.#total = hosts.reduce((s, h) => s + h.weight, 0);
    // Start at a random offset so many proxies do not all hit the first host first.
    this.#next = Math.floor(Math.random() * Math.max(1, hosts.length));
  }

  pick(): Host | undefined {
    const hosts = this.#hosts;
    if (hosts.length === 0) return undefined;
    if (this.#uniform) {
      const h = hosts[this.#next % hosts.length];
      this.#next = (this.#next + 1) % hosts.length;
      return h;
    }
    let best = -1;
    for (let i = 0; i < hosts.length; i++) {
      this.#current[i]! += hosts[i]!.weight;
      if (best === -1 || this.#current[i]! > this.#current[best]!) best = i;
    }
    this.#current[best]! -= this.#total;
    return hosts[best];
  }
}
