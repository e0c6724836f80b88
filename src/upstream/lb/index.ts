/** Builds the load balancer a cluster's policy names, for one host list. */
import type { LbPolicy } from '../../model/cluster.js';
import type { Host } from '../host.js';
import { LeastRequestLoadBalancer } from './least-request.js';
import type { LoadBalancer } from './load-balancer.js';
import { MaglevLoadBalancer } from './maglev.js';
import { RandomLoadBalancer } from './random.js';
import { RingHashLoadBalancer } from './ring-hash.js';
import { RoundRobinLoadBalancer } from './round-robin.js';

export type { LoadBalancer, PickContext } from './load-balancer.js';

export function createLoadBalancer(policy: LbPolicy, hosts: readonly Host[]): LoadBalancer {
  switch (policy.kind) {
    case 'LEAST_REQUEST':
      return new LeastRequestLoadBalancer(hosts, policy.choiceCount);
    case 'ROUND_ROBIN':
      return new RoundRobinLoadBalancer(hosts);
    case 'RANDOM':
      return new RandomLoadBalancer(hosts);
    case 'RING_HASH':
      return new RingHashLoadBalancer(hosts, policy.minimumRingSize, policy.maximumRingSize);
    case 'MAGLEV':
      return new MaglevLoadBalancer(hosts, policy.tableSize);
  }
}
