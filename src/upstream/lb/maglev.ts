/**
 * MAGLEV consistent hashing (Eisenbud et al., NSDI '16): a lookup table of prime size filled by
 * each host's permutation (offset, skip), with weighted turns. Lookups are one array read.
 */
import type { Host } from '../host.js';
import { hash32 } from '../hash.js';
import { randomIndex, type LoadBalancer, type PickContext } from './load-balancer.js';

export class MaglevLoadBalancer implements LoadBalancer {
  readonly #hosts: readonly Host[];
  readonly #table: Host[];

  constructor(hosts: readonly Host[], tableSize: number) {
    this.#hosts = hosts;
    this.#table = hosts.length === 0 ? [] : buildTable(hosts, tableSize);
  }

  pick(ctx: PickContext): Host | undefined {
    if (this.#table.length === 0) return undefined;
    if (ctx.hash === undefined) return this.#hosts[randomIndex(this.#hosts.length)];
    return this.#table[(ctx.hash >>> 0) % this.#table.length];
  }
}

function buildTable(hosts: readonly Host[], m: number): Host[] {
  const table: Array<Host | undefined> = new Array(m).fill(undefined);
  const maxWeight = Math.max(...hosts.map((h) => h.weight), 1e-9);
  const offset = hosts.map((h) => hash32(h.key, 0x9747b28c) % m);
  const skip = hosts.map((h) => (hash32(h.key, 0x5bd1e995) % (m - 1)) + 1);
  const next = hosts.map(() => 0);
  const credit = hosts.map(() => 0);
  let filled = 0;
  while (filled < m) {
    for (let i = 0; i < hosts.length && filled < m; i++) {
      credit[i]! += hosts[i]!.weight / maxWeight;
      if (credit[i]! < 1) continue;
      credit[i]! -= 1;
      let slot = (offset[i]! + next[i]! * skip[i]!) % m;
      while (table[slot] !== undefined) {
        next[i]!++;
        slot = (offset[i]! + next[i]! * skip[i]!) % m;
      }
      table[slot] = hosts[i];
      next[i]!++;
      filled++;
    }
  }
  return table as Host[];
}
