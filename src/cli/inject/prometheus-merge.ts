/**
 * Istio's metrics merging (`enablePrometheusMerge`, on by default; IST:pkg/kube/inject/webhook.go
 * applyPrometheusMerge). The pod's own `prometheus.io/*` scrape settings move into the sidecar's
 * ISTIO_PROMETHEUS_ANNOTATIONS, and the pod is annotated to be scraped at
 * `:15020/stats/prometheus`, where the proxy serves its own metrics followed by the
 * application's (src/lifecycle/environment.ts reads the variable). A pod with no scrape settings
 * gets the three annotations too, so the proxy's metrics are scraped.
 */
import { ANNOTATION, InvalidAnnotation, parseBool, type Annotations } from './annotations.js';

export const MERGED_METRICS_PORT = '15020';
export const MERGED_METRICS_PATH = '/stats/prometheus';

/** What the agent assumes for a setting the pod leaves out (pilot-agent's status server). */
const APP_DEFAULT_PATH = '/metrics';
const APP_DEFAULT_PORT = '80';

/**
 * The annotations' Prometheus label names. Prometheus's Kubernetes discovery turns every
 * character outside [a-zA-Z0-9_] into `_`, so `prometheus.io/port`, `prometheus.io.port` and
 * `prometheus-io/port` are one setting; Istio clears them all.
 */
const SCRAPE = 'prometheus_io_scrape';
const PORT = 'prometheus_io_port';
const PATH = 'prometheus_io_path';

export interface PrometheusMerge {
  /** ISTIO_PROMETHEUS_ANNOTATIONS; undefined when the pod names no scrape setting of its own. */
  readonly env: string | undefined;
  /** Pod annotations to drop: other spellings of the three that `set` writes. */
  readonly remove: readonly string[];
  readonly set: Readonly<Record<string, string>>;
}

/**
 * The merge for a pod with these annotations, or undefined when there is none: merging turned
 * off by `prometheus.istio.io/merge-metrics`, scraping turned off by `prometheus.io/scrape`, or
 * `prometheus.io/port` already the status port (merged before). Throws InvalidAnnotation for a
 * merge-metrics value that is not a boolean (Istio's validateBool) and for a port that is not a
 * number, which the proxy could not scrape.
 */
export function prometheusMerge(annotations: Annotations): PrometheusMerge | undefined {
  const merge = annotations[ANNOTATION.prometheusMergeMetrics];
  if (merge !== undefined) {
    const on = parseBool(merge);
    if (on === undefined) throw new InvalidAnnotation(ANNOTATION.prometheusMergeMetrics, `"${merge}" is not "true" or "false"`);
    if (!on) return undefined;
  }

  // The first spelling of each; for scrape, the first whose value reads as a boolean, as Istio's
  // getPrometheusScrape skips the others (and scrapes when none does).
  let scrape: boolean | undefined;
  let scrapeValue: string | undefined;
  let port: { key: string; value: string } | undefined;
  let path: string | undefined;
  const spellings: string[] = [];
  for (const [key, value] of Object.entries(annotations)) {
    const label = key.replace(/[^a-zA-Z0-9_]/g, '_');
    if (label === SCRAPE) {
      scrapeValue ??= value;
      scrape ??= parseBool(value);
    } else if (label === PORT) port ??= { key, value };
    else if (label === PATH) path ??= value;
    else continue;
    spellings.push(key);
  }
  if (scrape === false) return undefined;
  if (port?.value === MERGED_METRICS_PORT) return undefined;

  let env: string | undefined;
  if ((scrapeValue ?? '') !== '' || (port?.value ?? '') !== '' || (path ?? '') !== '') {
    const appPort = port?.value || APP_DEFAULT_PORT;
    if (!/^\d{1,5}$/.test(appPort) || Number(appPort) < 1 || Number(appPort) > 65535) {
      throw new InvalidAnnotation(port!.key, `"${appPort}" is not a port number (1-65535): the proxy scrapes the application's metrics at that port`);
    }
    // Istio copies the annotations as written and its agent fills in what is missing; skiff's
    // agent reads the same settings, so they are written resolved: scraping on (it is, to get
    // here), the path and port the agent would assume.
    env = JSON.stringify({ scrape: 'true', path: path || APP_DEFAULT_PATH, port: appPort });
  }
  const set = { 'prometheus.io/scrape': 'true', 'prometheus.io/port': MERGED_METRICS_PORT, 'prometheus.io/path': MERGED_METRICS_PATH };
  return { env, remove: spellings.filter((k) => !(k in set)), set };
}
