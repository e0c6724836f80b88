/**
 * The composition root: config source → snapshot store → compile → data path, and the admin
 * and readiness servers. Reloads are serialised; a failed reload keeps the old snapshot serving
 * and is reported in the log and on the admin port (`/config_status`).
 */
import { hostPort } from '../core/addresses.js';
import { existsSync } from 'node:fs';
import type { Server } from 'node:http';
import { compileSnapshot, type Snapshot } from '../compile/snapshot.js';
import { SkiffError } from '../core/errors.js';
import { createLogger, type Logger } from '../core/logger.js';
import { enableLinearRegexFallback } from '../core/re2.js';
import { formatDiagnostic, type Diagnostic } from '../config/diagnostics.js';
import type { LoadResult } from '../config/load.js';
import { fileConfigSource, type ConfigSource } from '../config/source.js';
import { SnapshotStore } from '../config/store.js';
import { HttpConnectionManager } from '../http/connection-manager.js';
import { Router } from '../http/router/router.js';
import type { StreamInfo } from '../http/stream.js';
import { GatewayListeners } from '../listener/gateway-listener.js';
import { HttpListener } from '../listener/http-listener.js';
import { SidecarListener } from '../listener/sidecar-listener.js';
import { CertStore, DEFAULT_CERT_DIRS, type CredentialSource, type WorkloadCredentials } from '../security/cert-store.js';
import { GatewayTlsContexts } from '../security/gateway-tls.js';
import { JwksCache } from '../security/jwks-cache.js';
import { jwtVerifier } from '../security/jwt-verifier.js';
import type { JwtVerifier } from '../compile/request-authentication.js';
import { TcpProxy, type TcpSessionInfo } from '../tcp/tcp-proxy.js';
import type { ListenerPorts } from '../model/index.js';
import { ClusterManager } from '../upstream/cluster-manager.js';
import { createAdminServer, createPrometheusServer, createReadinessServer, type AdminView } from '../admin/admin-server.js';
import { createStatusServer, type StatusServerOptions } from '../admin/status-server.js';
import { listenOn } from '../core/listen.js';
import type { WorkloadMetadata } from '../model/index.js';
import { workloadMetadataFromEnv } from '../telemetry/peer-metadata.js';
import { adminView } from './admin-view.js';
import { Telemetry } from './telemetry.js';

/**
 * standalone: an HTTP proxy on 127.0.0.1 that clients address directly. sidecar: the capture
 * listeners iptables redirects to (outbound 15001 and inbound 15006 on every address) and the
 * status server (15020). gateway: the ports of the Gateways selecting this proxy's labels, and
 * the status server.
 */
export type ProxyMode = 'standalone' | 'sidecar' | 'gateway';

export interface ProxyOptions {
  /** The config file or folder; with `source`, only a description of it (admin, logs). */
  readonly configPath: string;
  /** Where the config comes from when not from `configPath`'s files (xDS). */
  readonly source?: ConfigSource;
  readonly mode?: ProxyMode;
  /** Port overrides from flags; they win over MeshConfig. Port 0 picks a free port. */
  readonly ports?: Partial<Pick<ListenerPorts, 'outbound' | 'inbound' | 'admin' | 'status' | 'readiness' | 'stats'>>;
  /** Address of the outbound listener (127.0.0.1 standalone, 0.0.0.0 as a sidecar). */
  readonly outboundAddress?: string;
  /** Receives each proxied TCP connection's record once it closed (sidecar mode). */
  readonly onTcpDone?: (info: TcpSessionInfo) => void;
  /**
   * Where the workload certificate, key and root are (Istio's file layout); by default the first
   * of Istio's mount points that exists. Without them mTLS connections fail; nothing falls back
   * to plaintext.
   */
  readonly certificatesDir?: string;
  /** Credentials from elsewhere than files (SDS over xDS); replaces `certificatesDir`. */
  readonly credentials?: CredentialSource;
  /** Called when a local client asks the status or admin server to quit (`POST /quitquitquit`). */
  readonly onQuit?: () => void;
  /** This workload's metadata (metrics labels, metadata exchange); by default from the environment. */
  readonly metadata?: WorkloadMetadata;
  /** The status server's extras: the application's metrics and rewritten probes. */
  readonly status?: Pick<StatusServerOptions, 'appScrape' | 'probes' | 'appHost'>;
  /**
   * Open the admin, readiness, status and Prometheus servers (default true). A worker of a
   * multi-process proxy does not: the primary serves them for all workers (see workers.ts).
   */
  readonly serveAdmin?: boolean;
  /** Worker processes serving the listeners (shown by /server_info); 1 by default. */
  readonly concurrency?: number;
  readonly logger?: Logger;
  /** Watch the config path and reload on change (default true). */
  readonly watch?: boolean;
  /**
   * Receives each HTTP request's record after it ended (tests, embedding). Read it then: its
   * request and response references are released once telemetry has read them.
   */
  readonly onRequestDone?: (info: StreamInfo) => void;
}

/** Config that failed validation, with every problem located. */
export class ConfigInvalidError extends SkiffError {
  readonly diagnostics: readonly Diagnostic[];

  constructor(diagnostics: readonly Diagnostic[]) {
    const errors = diagnostics.filter((d) => d.severity === 'error');
    super('CONFIG_INVALID', `invalid config (${errors.length} error${errors.length === 1 ? '' : 's'}):\n${errors.map(formatDiagnostic).join('\n')}`);
    this.diagnostics = diagnostics;
  }
}

export interface ReloadOutcome {
  readonly ok: boolean;
  readonly version: number;
  readonly diagnostics: readonly Diagnostic[];
  readonly error?: string;
}

export interface BoundPorts {
  /** Standalone and sidecar modes only (0 as a gateway). */
  readonly outbound: number;
  /** Sidecar mode only (0 otherwise), as is `status`. */
  readonly inbound: number;
  readonly status: number;
  readonly admin: number;
  readonly readiness: number;
  /** Envoy's Prometheus port (sidecar and gateway; standalone only when asked for). */
  readonly stats: number;
  /** Gateway mode: the Gateway ports listened on at startup. */
  readonly gateway: readonly number[];
}

/** A data-path listener: graceful or forced close, resolving once every connection is gone. */
interface Listener {
  close(force?: boolean): Promise<void>;
  readonly connectionCount: number;
}

/** Everything a running proxy owns, made by `start`. */
interface ProxyParts {
  readonly options: ProxyOptions;
  readonly log: Logger;
  readonly store: SnapshotStore<Snapshot>;
  readonly source: ConfigSource;
  readonly clusters: ClusterManager;
  readonly listeners: readonly Listener[];
  /** The sidecar's inbound listener (also in listeners); null otherwise. */
  readonly inbound: Listener | null;
  readonly certs: CredentialSource | null;
  readonly jwks: JwksCache;
  readonly verifier: JwtVerifier;
  readonly telemetry: Telemetry;
  readonly servers: Server[];
  readonly ports: BoundPorts;
  /** Listener names and bound addresses, for the admin /listeners. */
  readonly listenerNames: ReadonlyArray<{ readonly name: string; readonly address: string }>;
  readonly view: AdminView;
}

export class Proxy {
  readonly ports: BoundPorts;
  readonly telemetry: Telemetry;
  readonly #parts: ProxyParts;
  readonly #options: ProxyOptions;
  readonly #log: Logger;
  readonly #store: SnapshotStore<Snapshot>;
  readonly #clusters: ClusterManager;
  readonly #listeners: readonly Listener[];
  readonly #servers: Server[];
  readonly #startedAt = Date.now();
  #watcher: { close(): void } | null = null;
  #lastReload: ReloadOutcome & { at: string };
  #reloading: Promise<ReloadOutcome> | null = null;
  #reloadAgain = false;
  /** Set when listeners were told to drain (SIGTERM, /drain, /drain_listeners). */
  #draining = false;
  /** Set by the first `close`. */
  #closing: Promise<void> | null = null;

  private constructor(parts: ProxyParts, first: ReloadOutcome) {
    this.#parts = parts;
    this.#options = parts.options;
    this.#log = parts.log;
    this.#store = parts.store;
    this.#clusters = parts.clusters;
    this.#listeners = parts.listeners;
    this.#servers = parts.servers;
    this.telemetry = parts.telemetry;
    this.ports = parts.ports;
    this.#lastReload = { ...first, at: new Date().toISOString() };
  }

  /** Loads the config, binds the listeners, and returns once ready. Throws ConfigInvalidError. */
  static async start(options: ProxyOptions): Promise<Proxy> {
    enableLinearRegexFallback();
    const log = options.logger ?? createLogger();
    const source = options.source ?? fileConfigSource(options.configPath);
    let loaded: LoadResult;
    try {
      loaded = await source.load();
    } catch (err) {
      source.close?.();
      throw err;
    }
    logWarnings(log, loaded);
    if (loaded.model === undefined) {
      source.close?.();
      throw new ConfigInvalidError(loaded.diagnostics);
    }
    const mesh = loaded.model.mesh;
    const mode = options.mode ?? 'standalone';
    const sidecar = mode === 'sidecar';
    const gatewayMode = mode === 'gateway';
    // Envoy's Prometheus port is part of a pod's proxy; a standalone proxy opens it only when asked.
    const wantsStats = mode !== 'standalone' || options.ports?.stats !== undefined;
    const wanted = { ...mesh.ports, ...definedOnly(options.ports ?? {}) };

    const store = new SnapshotStore<Snapshot>();
    const certs = options.credentials ?? (await openCertStore(options, log));
    const credentials = (): WorkloadCredentials | null => certs?.current() ?? null;
    const telemetry = new Telemetry({
      metadata: options.metadata ?? workloadMetadataFromEnv(process.env, { namespace: mesh.defaultNamespace, labels: mesh.workloadLabels }),
      nodeType: gatewayMode ? 'router' : 'sidecar',
      principal: () => certs?.current()?.identity ?? '',
      log,
      onRequestDone: options.onRequestDone,
      onTcpDone: options.onTcpDone,
    });
    const clusters = new ClusterManager({ onWarning: (m) => log.warn(m), credentials });
    const jwks = new JwksCache({ onFetchError: (uri, why) => log.warn(`JWKS ${uri}: ${why}`) });
    await jwks.prefetch(loaded.model.requestAuthentication);
    const verifier = jwtVerifier(jwks);
    const snapshot = compileSnapshot(loaded.model, store.nextVersion(), verifier);
    const useTelemetry = await telemetry.prepare(snapshot);
    try {
      (await clusters.prepare(snapshot.clusters))();
    } catch (err) {
      useTelemetry.abort();
      throw err;
    }
    store.swap(snapshot);
    useTelemetry.commit();

    const ownPorts = new Set<number>([wanted.outbound, ...(sidecar ? [wanted.inbound] : [])]);
    const router = new Router(clusters, { ownPorts, peerMetadata: telemetry.peerMetadata });
    const outboundManager = new HttpConnectionManager(store, router, 'outbound');
    const httpOptions = {
      requestHeadersTimeoutMs: mesh.requestHeadersTimeoutMs,
      idleTimeoutMs: mesh.downstreamIdleTimeoutMs,
      onRequestDone: telemetry.onRequestDone,
    };
    // Listeners on every address take both families (ip6tables redirects IPv6 pods' traffic too).
    const anyAddress = '::';
    const outboundHost = options.outboundAddress ?? (sidecar ? anyAddress : '127.0.0.1');
    const tcp = new TcpProxy(clusters, telemetry.tcpObserver);
    // Istio names inbound and gateway listeners `istio-envoy` (the `server` header they send).
    const istioServer = { serverHeader: 'istio-envoy' };
    const gateway = gatewayMode
      ? new GatewayListeners(store, tcp, {
          ...httpOptions,
          ...istioServer,
          handler: (routes) => new HttpConnectionManager(store, router, 'gateway', routes),
          tls: new GatewayTlsContexts({ workload: credentials, onError: (m) => log.error(m) }),
          onError: (m) => log.error(m),
        })
      : null;
    const outbound = gatewayMode
      ? null
      : sidecar
        ? new SidecarListener(store, outboundManager, tcp, { ...httpOptions, direction: 'outbound', host: outboundHost, port: wanted.outbound })
        : new HttpListener(outboundManager, { ...httpOptions, host: outboundHost, port: wanted.outbound });
    const inbound = sidecar
      ? new SidecarListener(store, new HttpConnectionManager(store, router, 'inbound'), tcp, {
          ...httpOptions,
          ...istioServer,
          direction: 'inbound',
          host: anyAddress,
          port: wanted.inbound,
          credentials,
        })
      : null;
    const listeners: Listener[] = [outbound, inbound, gateway].filter((l): l is NonNullable<typeof l> => l !== null);
    let proxy: Proxy | undefined;
    const view = adminView(() => proxy, store, clusters, certs, log, { mode, configPath: options.configPath, concurrency: options.concurrency ?? 1, onQuit: () => options.onQuit?.() });
    telemetry.registerGauges({
      activeConnections: () => listeners.reduce((n, l) => n + l.connectionCount, 0),
      clusters,
      configVersion: () => store.version,
      certificateExpiry: () => certs?.current()?.notAfter ?? null,
    });
    const serveAdmin = options.serveAdmin !== false;
    const admin = serveAdmin ? createAdminServer(view) : null;
    const readiness = serveAdmin ? createReadinessServer(view) : null;
    const stats = serveAdmin && wantsStats ? createPrometheusServer(view) : null;
    const status =
      serveAdmin && mode !== 'standalone'
        ? createStatusServer(view, { ...options.status, quit: () => options.onQuit?.(), drain: () => proxy?.drainListeners({ inboundOnly: sidecar, graceful: true }) })
        : null;
    const servers = [admin, readiness, status, stats].filter((s): s is Server => s !== null);
    try {
      const outboundPort = outbound === null ? 0 : await outbound.listen();
      if (outbound !== null) ownPorts.add(outboundPort);
      const inboundPort = inbound === null ? 0 : await inbound.listen();
      if (inbound !== null) ownPorts.add(inboundPort);
      const gatewayPorts = gateway === null ? [] : await gateway.listen();
      const adminPort = admin === null ? 0 : await listenOn(admin, '127.0.0.1', wanted.admin);
      const readinessPort = readiness === null ? 0 : await listenOn(readiness, anyAddress, wanted.readiness);
      const statusPort = status === null ? 0 : await listenOn(status, anyAddress, wanted.status);
      const statsPort = stats === null ? 0 : await listenOn(stats, anyAddress, wanted.stats);
      const ports = { outbound: outboundPort, inbound: inboundPort, status: statusPort, admin: adminPort, readiness: readinessPort, stats: statsPort, gateway: gatewayPorts };
      const listenerNames = [
        ...(outbound !== null ? [{ name: sidecar ? 'virtualOutbound' : 'outbound', address: hostPort(outboundHost === anyAddress ? '0.0.0.0' : outboundHost, outboundPort) }] : []),
        ...(inbound !== null ? [{ name: 'virtualInbound', address: hostPort('0.0.0.0', inboundPort) }] : []),
        ...gatewayPorts.map((port) => ({ name: `0.0.0.0_${port}`, address: hostPort('0.0.0.0', port) })),
      ];
      const parts: ProxyParts = { options, log, store, source, clusters, listeners, inbound, certs, jwks, verifier, telemetry, servers, ports, listenerNames, view };
      proxy = new Proxy(parts, { ok: true, version: store.version, diagnostics: loaded.diagnostics });
    } catch (err) {
      await Promise.all(listeners.map((l) => l.close(true).catch(() => undefined)));
      for (const s of servers) s.close();
      clusters.close();
      certs?.close();
      source.close?.();
      await telemetry.close();
      throw new SkiffError('LISTEN_FAILED', `cannot listen: ${(err as Error).message}`, { cause: err });
    }
    if (options.watch !== false) {
      try {
        proxy.#watcher = await source.watch(() => void proxy!.reload());
      } catch (err) {
        // E.g. out of inotify watches: keep serving; the listeners are bound already.
        log.warn(`cannot watch ${options.configPath} (${(err as Error).message}): edits apply on restart only`);
      }
    }
    const p = proxy.ports;
    log.info(
      `ready: config version ${store.version} (${options.source !== undefined ? `from ${options.configPath}` : `${loaded.files.length} file${loaded.files.length === 1 ? '' : 's'}`}), ` +
        (sidecar
          ? `sidecar outbound ${outboundHost}:${p.outbound}, inbound ${anyAddress}:${p.inbound}, status :${p.status}, `
          : gatewayMode
            ? `gateway ports ${p.gateway.length === 0 ? '(none yet)' : p.gateway.join(', ')}, status :${p.status}, `
            : `outbound ${outboundHost}:${p.outbound}, `) +
        (serveAdmin ? `admin 127.0.0.1:${p.admin}, readiness :${p.readiness}` : 'admin served by the primary process') +
        (p.stats !== 0 ? `, stats :${p.stats}` : ''),
    );
    return proxy;
  }

  /** What the admin endpoints see of this proxy (served by a primary process for its workers). */
  get adminView(): AdminView {
    return this.#parts.view;
  }

  /** Listener names and addresses (admin /listeners). */
  get listenerNames(): ReadonlyArray<{ readonly name: string; readonly address: string }> {
    return this.#parts.listenerNames;
  }

  /** Envoy's server state. */
  get state(): 'LIVE' | 'DRAINING' {
    return this.#draining || this.#closing !== null ? 'DRAINING' : 'LIVE';
  }

  get uptimeSeconds(): number {
    return Math.floor((Date.now() - this.#startedAt) / 1000);
  }

  get snapshot(): Snapshot {
    return this.#store.current();
  }

  status(): unknown {
    const r = this.#lastReload;
    return {
      version: this.#store.version,
      lastReload: {
        ok: r.ok,
        at: r.at,
        ...(r.error !== undefined ? { error: r.error } : {}),
        problems: r.diagnostics.map(formatDiagnostic),
      },
    };
  }

  /** Reloads the config now. Concurrent calls coalesce into one more reload after the current one. */
  reload(): Promise<ReloadOutcome> {
    if (this.#closing !== null) {
      return Promise.resolve({ ok: false, version: this.#store.version, diagnostics: [], error: 'the proxy is closed' });
    }
    if (this.#reloading !== null) {
      this.#reloadAgain = true;
      return this.#reloading;
    }
    this.#reloading = (async () => {
      try {
        let outcome: ReloadOutcome;
        do {
          this.#reloadAgain = false;
          outcome = await this.#reloadOnce();
        } while (this.#reloadAgain);
        return outcome;
      } finally {
        this.#reloading = null;
      }
    })();
    return this.#reloading;
  }

  async #reloadOnce(): Promise<ReloadOutcome> {
    let loaded: LoadResult;
    try {
      loaded = await this.#parts.source.load();
    } catch (err) {
      return this.#recordFailure([], (err as Error).message);
    }
    logWarnings(this.#log, loaded);
    if (loaded.model === undefined) return this.#recordFailure(loaded.diagnostics, 'invalid config');
    try {
      const current = this.#store.current().mesh.ports;
      if (JSON.stringify(current) !== JSON.stringify(loaded.model.mesh.ports)) {
        this.#log.warn('MeshConfig ports changed: listener ports change on restart only');
      }
      await this.#parts.jwks.prefetch(loaded.model.requestAuthentication);
      const snapshot = compileSnapshot(loaded.model, this.#store.nextVersion(), this.#parts.verifier);
      const useTelemetry = await this.telemetry.prepare(snapshot);
      let commit: () => void;
      try {
        commit = await this.#clusters.prepare(snapshot.clusters);
      } catch (err) {
        useTelemetry.abort();
        throw err;
      }
      this.#store.swap(snapshot);
      commit();
      useTelemetry.commit();
    } catch (err) {
      return this.#recordFailure(loaded.diagnostics, (err as Error).message);
    }
    const outcome: ReloadOutcome = { ok: true, version: this.#store.version, diagnostics: loaded.diagnostics };
    this.#lastReload = { ...outcome, at: new Date().toISOString() };
    this.telemetry.countReload(true);
    this.#log.info(`config version ${this.#store.version} applied`);
    return outcome;
  }

  #recordFailure(diagnostics: readonly Diagnostic[], error: string): ReloadOutcome {
    const errors = diagnostics.filter((d) => d.severity === 'error');
    this.#log.error(
      `config reload rejected, still serving version ${this.#store.version}: ${error}` +
        errors.map((d) => `\n  ${formatDiagnostic(d)}`).join(''),
    );
    const outcome: ReloadOutcome = { ok: false, version: this.#store.version, diagnostics, error };
    this.#lastReload = { ...outcome, at: new Date().toISOString() };
    this.telemetry.countReload(false);
    return outcome;
  }

  /**
   * Stops listening and closes connections: gracefully unless `force` (idle connections now,
   * busy ones after their response; CONNECT tunnels when their peers close them). A forced call
   * cuts a graceful close in progress short. Upstream pools are closed last. Every call resolves
   * when the proxy is closed.
   */
  close(force = false): Promise<void> {
    if (force) {
      for (const s of this.#servers) s.closeAllConnections();
      for (const l of this.#listeners) void l.close(true);
    }
    this.#closing ??= this.#closeOnce(force);
    return this.#closing;
  }

  async #closeOnce(force: boolean): Promise<void> {
    this.#watcher?.close();
    this.#watcher = null;
    this.#parts.source.close?.();
    // A reload in progress must not build clusters after they are closed.
    await this.#reloading?.catch(() => undefined);
    // The admin-side servers go last: readiness (failing) and metrics answer during the drain.
    await Promise.all(this.#listeners.map((l) => l.close(force)));
    await Promise.all(this.#servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    this.#clusters.close();
    this.#parts.certs?.close();
    // Access log lines and spans of the last requests are written before the proxy is gone.
    await this.telemetry.close();
  }

  /**
   * Envoy's drain_listeners: the listeners stop accepting (only the sidecar's inbound one with
   * `inboundOnly`); with `graceful` their connections finish the request in flight and close
   * (HTTP/1.1 `connection: close`, HTTP/2 GOAWAY), else they close now. The proxy then reports
   * DRAINING, so readiness fails.
   */
  drainListeners(options: { readonly inboundOnly: boolean; readonly graceful: boolean }): void {
    this.#draining = true;
    const inbound = this.#parts.inbound;
    const targets = options.inboundOnly ? (inbound === null ? [] : [inbound]) : this.#listeners;
    for (const l of targets) void l.close(!options.graceful);
  }

  /**
   * The graceful shutdown Istio gives a pod's proxy on SIGTERM:
   * 1. the inbound listener stops accepting at once; its connections finish their current
   *    request and close;
   * 2. outbound (and a gateway's ports) keep serving the application's last calls for
   *    `terminationDrainMs`;
   * 3. then every listener stops accepting: idle connections close, busy ones finish their
   *    request (`connection: close`, GOAWAY);
   * 4. whatever is still open `drainMs` after the start is closed (drainDuration caps it all).
   * A standalone proxy has no application to wait for: it starts at step 3, and step 4 comes
   * after `terminationDrainMs`.
   */
  async shutdown(timing: { readonly terminationDrainMs: number; readonly drainMs: number }): Promise<void> {
    const standalone = (this.#options.mode ?? 'standalone') === 'standalone';
    const capMs = standalone ? timing.terminationDrainMs : timing.drainMs;
    const deadline = setTimeout(() => void this.close(true), capMs);
    try {
      if (!standalone) {
        this.drainListeners({ inboundOnly: true, graceful: true });
        await new Promise((resolve) => setTimeout(resolve, Math.min(timing.terminationDrainMs, capMs)));
      }
      await this.close(false);
    } finally {
      clearTimeout(deadline);
    }
  }
}

/** The workload's certificates, watched; null when no directory is given and none of Istio's exists. */
async function openCertStore(options: ProxyOptions, log: Logger): Promise<CertStore | null> {
  // A sidecar or gateway waits for its certificates to be mounted; a standalone proxy uses them if present.
  const dir = options.certificatesDir ?? DEFAULT_CERT_DIRS.find((d) => existsSync(d)) ?? (options.mode === 'sidecar' || options.mode === 'gateway' ? DEFAULT_CERT_DIRS[0] : undefined);
  if (dir === undefined) return null;
  return CertStore.open(dir, {
    onLoaded: (c) => log.info(`workload certificate ${c.identity} loaded from ${dir}, valid until ${c.notAfter.toISOString()}`),
    onError: (m) => log.warn(m),
  });
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function logWarnings(log: Logger, loaded: LoadResult): void {
  for (const d of loaded.diagnostics) if (d.severity === 'warning') log.warn(formatDiagnostic(d));
}
