/**
 * What the admin, readiness, status and Prometheus servers see of a running proxy (the AdminView
 * the admin layer is written against), and the Envoy-format texts they serve.
 */
import type { AdminView } from '../admin/admin-server.js';
import type { Snapshot } from '../compile/snapshot.js';
import { isLogLevel, type Logger } from '../core/logger.js';
import type { SnapshotStore } from '../config/store.js';
import { certificateDetails, type CredentialSource } from '../security/cert-store.js';
import type { ClusterManager } from '../upstream/cluster-manager.js';
import { configDump } from './config-dump.js';
import type { Telemetry } from './telemetry.js';

/** What the view reads of the running proxy. */
export interface RunningProxy {
  readonly state: 'LIVE' | 'DRAINING';
  readonly telemetry: Telemetry;
  readonly listenerNames: ReadonlyArray<{ readonly name: string; readonly address: string }>;
  readonly uptimeSeconds: number;
  status(): unknown;
  drainListeners(options: { readonly inboundOnly: boolean; readonly graceful: boolean }): void;
}

/** How the proxy was started, as /server_info shows it. */
export interface StartFacts {
  readonly mode: string;
  readonly configPath: string;
  readonly concurrency: number;
  onQuit?(): void;
}

/** The running proxy's view; `proxy()` is undefined while it is still starting. */
export function adminView(
  proxy: () => RunningProxy | undefined,
  store: SnapshotStore<Snapshot>,
  clusters: ClusterManager,
  certs: CredentialSource | null,
  log: Logger,
  options: StartFacts,
): AdminView {
  const p = proxy;
  return {
    get ready() {
      return store.loaded && p()?.state === 'LIVE';
    },
    get notReadyReason() {
      if (!store.loaded) return 'config not loaded';
      return p()?.state === 'DRAINING' ? 'the proxy is draining' : p() === undefined ? 'the proxy is starting' : '';
    },
    get state() {
      return p()?.state ?? 'PRE_INITIALIZING';
    },
    configStatus: () => p()?.status(),
    configDump: () => {
      const proxy = p();
      const c = certs?.current() ?? null;
      return configDump(store.current().model, {
        version: store.version,
        node: { id: proxy?.telemetry.nodeId ?? '', cluster: '', metadata: {} },
        listeners: proxy?.listenerNames ?? [],
        certificate: c === null ? null : { identity: c.identity, notAfter: c.notAfter },
      });
    },
    listeners: () => p()?.listenerNames ?? [],
    clusterLines: () => clusterLines(clusters),
    certs: () => certsDump(certs),
    serverInfo: () => {
      const proxy = p();
      return {
        version: `skiff/${process.env['npm_package_version'] ?? '0.1.0'} node/${process.version}`,
        state: proxy?.state ?? 'PRE_INITIALIZING',
        uptime_current_epoch: `${proxy?.uptimeSeconds ?? 0}s`,
        uptime_all_epochs: `${proxy?.uptimeSeconds ?? 0}s`,
        node: { id: proxy?.telemetry.nodeId ?? '' },
        command_line_options: { mode: options.mode, config_path: options.configPath, concurrency: options.concurrency },
      };
    },
    prometheus: () => p()?.telemetry.prometheus() ?? Promise.resolve(''),
    statsText: () => p()?.telemetry.statsText() ?? Promise.resolve(''),
    resetCounters: () => p()?.telemetry.resetCounters(),
    get logLevel() {
      return log.level;
    },
    setLogLevel: (level) => {
      if (!isLogLevel(level)) return false;
      log.setLevel(level);
      log.info(`log level set to ${level}`);
      return true;
    },
    drainListeners: (o) => p()?.drainListeners(o),
    quit: () => options.onQuit?.(),
  };
}

/** Envoy's /certs: the workload certificate and its roots, with the days each has left. */
function certsDump(certs: CredentialSource | null): unknown {
  const c = certs?.current() ?? null;
  if (certs === null || c === null) return { certificates: [] };
  return {
    certificates: [
      {
        ca_cert: c.roots.map((r) => certificateDetails(r, certs.origin.root)),
        cert_chain: [certificateDetails(c.leaf, certs.origin.chain)],
      },
    ],
  };
}

/** Envoy's /clusters text: circuit breaker thresholds and live counts per cluster, then per host. */
function clusterLines(clusters: ClusterManager): string[] {
  const lines: string[] = [];
  for (const [name, c] of clusters.clusters) {
    const r = c.resources;
    const limits = r.limits;
    lines.push(`${name}::default_priority::max_connections::${limits.maxConnections}`);
    lines.push(`${name}::default_priority::max_pending_requests::${limits.maxPendingRequests}`);
    lines.push(`${name}::default_priority::max_requests::${limits.maxRequests}`);
    lines.push(`${name}::default_priority::max_retries::${limits.maxRetries}`);
    lines.push(`${name}::overflows::${r.overflows}`);
    lines.push(`${name}::outlier::ejected_hosts::${c.ejectedHosts}`);
    for (const h of c.hosts) {
      lines.push(`${name}::${h.key}::rq_active::${h.activeRequests}`);
      lines.push(`${name}::${h.key}::cx_active::${h.pool.activeConnections}`);
      lines.push(`${name}::${h.key}::rq_pending::${h.pool.pendingRequests}`);
      lines.push(`${name}::${h.key}::health_flags::${h.outlier?.ejected === true ? '/failed_outlier_check' : 'healthy'}`);
    }
  }
  return lines;
}
