/**
 * skiff's own gauges for operators, read at scrape time: open downstream connections, requests
 * in flight and waiting upstream, hosts ejected by outlier detection, the config version, and
 * the workload certificate's remaining life.
 */
import { Gauge, type Registry } from 'prom-client';
import type { ClusterManager } from '../upstream/cluster-manager.js';

/** What the operator gauges read, each at scrape time. */
export interface ProxyGauges {
  activeConnections(): number;
  readonly clusters: ClusterManager;
  configVersion(): number;
  /** When the workload certificate expires; null without one. */
  certificateExpiry(): Date | null;
}

export function registerOperatorGauges(registry: Registry, g: ProxyGauges): void {
  const r = [registry];
  new Gauge({ name: 'skiff_downstream_connections_active', help: 'Open downstream connections.', registers: r, collect() { this.set(g.activeConnections()); } });
  new Gauge({
    name: 'skiff_upstream_requests_pending',
    help: 'Requests waiting for an upstream connection.',
    registers: r,
    collect() {
      let n = 0;
      for (const c of g.clusters.clusters.values()) for (const h of c.hosts) n += h.pool.pendingRequests;
      this.set(n);
    },
  });
  new Gauge({
    name: 'skiff_upstream_requests_active',
    help: 'Requests in flight to upstream hosts.',
    registers: r,
    collect() {
      let n = 0;
      for (const c of g.clusters.clusters.values()) for (const h of c.hosts) n += h.activeRequests;
      this.set(n);
    },
  });
  new Gauge({
    name: 'skiff_outlier_ejected_hosts',
    help: 'Hosts ejected by outlier detection, by cluster.',
    labelNames: ['cluster_name'],
    registers: r,
    collect() {
      this.reset();
      for (const [name, c] of g.clusters.clusters) if (c.ejectedHosts > 0) this.set({ cluster_name: name }, c.ejectedHosts);
    },
  });
  new Gauge({ name: 'skiff_config_version', help: 'Version of the configuration snapshot serving.', aggregator: 'max', registers: r, collect() { this.set(g.configVersion()); } });
  new Gauge({
    name: 'skiff_workload_certificate_expiry_seconds',
    help: 'Seconds until the workload certificate expires (absent without one).',
    aggregator: 'min',
    registers: r,
    collect() {
      this.reset();
      const at = g.certificateExpiry();
      if (at !== null) this.set(Math.round((at.getTime() - Date.now()) / 1000));
    },
  });
}
