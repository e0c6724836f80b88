/**
 * LEAST_REQUEST (Istio's default): Envoy's power-of-N-choices. Draw `choiceCount` hosts at
 * random (weighted when weights differ) and keep the one with the fewest active requests
 * relative to its weight.
 */
import type { Host } from '../host.js';
import { randomIndex, uniformWeights, weightedRandom, type LoadBalancer } from './load-balancer.js';

export class LeastRequestLoadBalancer implements LoadBalancer {
  readonly #hosts: readonly Host[];
  readonly #choices: number;
  readonly #uniform: boolean;
  readonly #total: number;

  constructor(hosts: readonly Host[], choiceCount: number) {
    this.#hosts = hosts;
    this.#choices = Math.max(2, choiceCount);
    this.#uniform = uniformWeights(hosts);
    this.#total = hosts.reduce((s, h) => s + h.weight, 0);
  }

  pick(): Host | undefined {
    const hosts = this.#hosts;
    const n = hosts.length;
    if (n <= 1) return hosts[0];
    let best: Host | undefined;
    let bestLoad = Infinity;
    for (let i = 0; i < this.#choices; i++) {
      const h = this.#uniform ? hosts[randomIndex(n)]! : weightedRandom(hosts, this.#total)!;
      const load = this.#uniform ? h.activeRequests : (h.activeRequests + 1) / Math.max(h.weight, 1e-9);
      if (load < bestLoad) {
        best = h;
        bestLoad = load;
      }
    }
    return best;
  }
}
