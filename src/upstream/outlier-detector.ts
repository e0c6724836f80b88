/**
 * Outlier detection for one cluster (Envoy's consecutive-error detectors, as Istio configures
 * them). Hosts report each response status; local failures report as Envoy maps them without
 * split local-origin errors (connect failure 503, timeout 504, reset 500).
 *
 * - `consecutive5xx` 5xx in a row, or `consecutiveGatewayFailure` 502/503/504 in a row, eject a
 *   host at once, unless that would eject more than maxEjectionPercent of the hosts (one host
 *   may always be ejected).
 * - An ejected host stays out for baseEjectionTime × times ejected (capped at maxEjectionTime)
 *   and comes back at the first interval tick after that; each tick a healthy host's ejection
 *   count decays by one.
 * - `onChange` tells the cluster to rebuild its load balancer over the hosts not ejected.
 */
import type { OutlierDetection } from '../model/cluster.js';

/** Per-host state; the router reports through it. */
export class HostOutlierMonitor {
  consecutive5xx = 0;
  consecutiveGateway = 0;
  ejected = false;
  ejectedAt = 0;
  timesEjected = 0;
  readonly #detector: OutlierDetector;

  constructor(detector: OutlierDetector) {
    this.#detector = detector;
  }

  /** A response status from this host (or the status a local failure counts as). */
  putStatus(status: number): void {
    if (status < 500) {
      this.consecutive5xx = 0;
      this.consecutiveGateway = 0;
      return;
    }
    const config = this.#detector.config;
    if (status === 502 || status === 503 || status === 504) {
      if (++this.consecutiveGateway === config.consecutiveGatewayFailure) this.#detector.tryEject(this);
    } else {
      this.consecutiveGateway = 0;
    }
    if (++this.consecutive5xx === config.consecutive5xx) this.#detector.tryEject(this);
  }

  putConnectFailure(): void {
    this.putStatus(503);
  }

  putTimeout(): void {
    this.putStatus(504);
  }

  putReset(): void {
    this.putStatus(500);
  }
}

export class OutlierDetector {
  readonly config: OutlierDetection;
  readonly #monitors = new Set<HostOutlierMonitor>();
  readonly #onChange: () => void;
  readonly #timer: NodeJS.Timeout;
  #ejected = 0;
  /** Total ejections so far (admin stats). */
  ejections = 0;

  constructor(config: OutlierDetection, onChange: () => void) {
    this.config = config;
    this.#onChange = onChange;
    this.#timer = setInterval(() => this.#tick(performance.now()), config.intervalMs);
    this.#timer.unref();
  }

  get ejectedCount(): number {
    return this.#ejected;
  }

  monitor(): HostOutlierMonitor {
    const m = new HostOutlierMonitor(this);
    this.#monitors.add(m);
    return m;
  }

  /** A host left the cluster. */
  remove(m: HostOutlierMonitor): void {
    if (!this.#monitors.delete(m)) return;
    if (m.ejected) {
      m.ejected = false;
      this.#ejected--;
    }
  }

  tryEject(m: HostOutlierMonitor): void {
    // Counters restart whether or not the host is ejected, so a later streak can try again.
    m.consecutive5xx = 0;
    m.consecutiveGateway = 0;
    if (m.ejected) return;
    const total = this.#monitors.size;
    const allowed = this.#ejected === 0 || (100 * (this.#ejected + 1)) / total <= this.config.maxEjectionPercent;
    if (!allowed) return;
    m.ejected = true;
    m.ejectedAt = performance.now();
    m.timesEjected++;
    this.#ejected++;
    this.ejections++;
    this.#onChange();
  }

  #tick(now: number): void {
    const { baseEjectionTimeMs, maxEjectionTimeMs } = this.config;
    let changed = false;
    for (const m of this.#monitors) {
      if (m.ejected) {
        const duration = Math.min(baseEjectionTimeMs * m.timesEjected, Math.max(maxEjectionTimeMs, baseEjectionTimeMs));
        if (now - m.ejectedAt >= duration) {
          m.ejected = false;
          this.#ejected--;
          changed = true;
        }
      } else if (m.timesEjected > 0) {
        m.timesEjected--;
      }
    }
    if (changed) this.#onChange();
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
