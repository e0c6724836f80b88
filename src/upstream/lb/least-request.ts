/**
 * LEAST_REQUEST (Istio's default), as Envoy's LeastRequestLoadBalancer:
 * - equal weights: power of N choices — draw `choiceCount` hosts at random (with replacement)
 *   and keep the one with the fewest active requests, the first drawn on a tie;
 * - unequal weights: an earliest-deadline-first schedule in which a host's weight is
 *   `weight / (activeRequests + 1)`, recomputed each time the host is picked (Envoy's
 *   `active_request_bias` of 1). With no load the picks follow the weights exactly.
 */
import type { Host } from '../host.js';
import { EdfScheduler } from './edf-scheduler.js';
import { randomIndex, uniformWeights, type LoadBalancer } from './load-balancer.js';

function dynamicWeight(h: Host): number {
  return h.weight / (h.activeRequests + 1);
}

export class LeastRequestLoadBalancer implements LoadBalancer {
  readonly #hosts: readonly Host[];
  readonly #choices: number;
  /** Null when all weights are equal (power of N choices). */
  readonly #edf: EdfScheduler<Host> | null;

  constructor(hosts: readonly Host[], choiceCount: number) {
    this.#hosts = hosts;
    this.#choices = Math.max(2, choiceCount);
    this.#edf = uniformWeights(hosts) ? null : new EdfScheduler(hosts, dynamicWeight);
  }

  pick(): Host | undefined {
    if (this.#edf !== null) return this.#edf.pickAndAdd(dynamicWeight);
    const hosts = this.#hosts;
    const n = hosts.length;
    if (n <= 1) return hosts[0];
    let best = hosts[randomIndex(n)]!;
    for (let i = 1; i < this.#choices; i++) {
      const h = hosts[randomIndex(n)]!;
      if (h.activeRequests < best.activeRequests) best = h;
    }
    return best;
  }
}
