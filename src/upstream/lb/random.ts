/** RANDOM: uniform choice, weighted when endpoint weights differ. */
import type { Host } from '../host.js';
import { randomIndex, uniformWeights, weightedRandom, type LoadBalancer } from './load-balancer.js';

export class RandomLoadBalancer implements LoadBalancer {
  readonly #hosts: readonly Host[];
  readonly #uniform: boolean;
  readonly #total: number;

  constructor(hosts: readonly Host[]) {
    this.#hosts = hosts;
    this.#uniform = uniformWeights(hosts);
    this.#total = hosts.reduce((s, h) => s + h.weight, 0);
  }

  pick(): Host | undefined {
    if (this.#hosts.length === 0) return undefined;
    return this.#uniform ? this.#hosts[randomIndex(this.#hosts.length)] : weightedRandom(this.#hosts, this.#total);
  }
}
