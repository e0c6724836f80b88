/**
 * RANDOM, as Envoy's RandomLoadBalancer: one uniform draw over the hosts. Like Envoy, endpoint
 * weights are not considered.
 */
import type { Host } from '../host.js';
import { randomIndex, type LoadBalancer } from './load-balancer.js';

export class RandomLoadBalancer implements LoadBalancer {
  readonly #hosts: readonly Host[];

  constructor(hosts: readonly Host[]) {
    this.#hosts = hosts;
  }

  pick(): Host | undefined {
    const hosts = this.#hosts;
    return hosts.length === 0 ? undefined : hosts[randomIndex(hosts.length)];
  }
}
