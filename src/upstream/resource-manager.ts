/**
 * A cluster's circuit breakers (Envoy ResourceManager, default priority): live counts of
 * connections, pending requests, active requests and retries, checked against the cluster's
 * thresholds. Shared by every host pool of the cluster.
 *
 * Invariant: each counter is incremented when its resource is taken and decremented exactly
 * once when it is given back, so a counter never goes below zero.
 */
import type { CircuitBreakers } from '../model/cluster.js';

export class ResourceManager {
  readonly limits: CircuitBreakers;
  /** Open and opening upstream connections. */
  connections = 0;
  /** Requests waiting for a connection. */
  pendingRequests = 0;
  /** Requests on a connection. */
  requests = 0;
  /** Retries scheduled or running. */
  retries = 0;
  /** Times a request or retry was refused by a breaker (admin stats). */
  overflows = 0;

  constructor(limits: CircuitBreakers) {
    this.limits = limits;
  }

  canOpenConnection(): boolean {
    return this.connections < this.limits.maxConnections;
  }

  canQueueRequest(): boolean {
    return this.pendingRequests < this.limits.maxPendingRequests;
  }

  canStartRequest(): boolean {
    return this.requests < this.limits.maxRequests;
  }

  /** Takes a retry slot, or returns false (retry overflow). */
  tryStartRetry(): boolean {
    if (this.retries >= this.limits.maxRetries) {
      this.overflows++;
      return false;
    }
    this.retries++;
    return true;
  }

  endRetry(): void {
    this.retries--;
  }
}
