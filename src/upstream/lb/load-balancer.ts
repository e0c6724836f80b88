/**
 * Load balancer contract. A balancer is built for one immutable host list and rebuilt when the
 * list changes; `pick` never mutates the list.
 */
import type { Host } from '../host.js';

export interface PickContext {
  /** Request hash for consistent-hash policies; undefined means "no key": pick at random. */
  readonly hash?: number;
}

export interface LoadBalancer {
  pick(ctx: PickContext): Host | undefined;
}

/** True when every host has the same weight (the fast, unweighted paths apply). */
export function uniformWeights(hosts: readonly Host[]): boolean {
  for (let i = 1; i < hosts.length; i++) if (hosts[i]!.weight !== hosts[0]!.weight) return false;
  return true;
}

export function randomIndex(n: number): number {
  return Math.floor(Math.random() * n);
}
