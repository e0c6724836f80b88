/** What an injected pod's environment tells the proxy beyond its config (pilot-agent reads the same variables). */
import { parseAppProbers, type AppProbe } from '../admin/app-probes.js';
import type { AppScrape, StatusServerOptions } from '../admin/status-server.js';

/**
 * The status server's extras from an injected pod's environment: ISTIO_PROMETHEUS_ANNOTATIONS
 * (`{"scrape":"true","path":"/metrics","port":"8080"}`, the application's scrape annotations),
 * ISTIO_KUBE_APP_PROBERS (the rewritten probes) and INSTANCE_IP (where the application listens).
 * Throws with the variable named when one is malformed.
 */
export function statusOptionsFromEnv(env: NodeJS.ProcessEnv): Pick<StatusServerOptions, 'appScrape' | 'probes' | 'appHost'> {
  const out: { appScrape?: AppScrape; probes?: ReadonlyMap<string, AppProbe>; appHost?: string } = {};
  const annotations = env['ISTIO_PROMETHEUS_ANNOTATIONS'];
  if (annotations !== undefined && annotations !== '') {
    let a: { scrape?: unknown; path?: unknown; port?: unknown };
    try {
      a = JSON.parse(annotations) as typeof a;
    } catch (err) {
      throw new Error(`ISTIO_PROMETHEUS_ANNOTATIONS: not JSON (${(err as Error).message})`);
    }
    const port = Number(a.port);
    if (a.scrape === 'true' || a.scrape === true) {
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`ISTIO_PROMETHEUS_ANNOTATIONS.port: expected a port number, got ${JSON.stringify(a.port)}`);
      out.appScrape = { port, path: typeof a.path === 'string' && a.path !== '' ? a.path : '/metrics' };
    }
  }
  const probers = env['ISTIO_KUBE_APP_PROBERS'];
  if (probers !== undefined && probers !== '') out.probes = parseAppProbers(probers);
  if (env['INSTANCE_IP'] !== undefined && env['INSTANCE_IP'] !== '') out.appHost = env['INSTANCE_IP'];
  return out;
}
