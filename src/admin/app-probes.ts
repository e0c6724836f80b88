/**
 * Istio's probe rewrite, the status-server side: the injector points the application's
 * liveness, readiness and startup probes at `/app-health/<container>/{livez,readyz,startupz}`
 * on the status port and passes the original probes in ISTIO_KUBE_APP_PROBERS (JSON, keyed by
 * that path). The proxy runs each original probe against the application when the kubelet asks,
 * so probes keep working under STRICT mTLS. HTTP and TCP probes are supported.
 */
import { connect } from 'node:net';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';

export type AppProbe =
  | {
      readonly kind: 'http';
      readonly host: string | undefined;
      readonly port: number;
      readonly path: string;
      readonly https: boolean;
      readonly headers: ReadonlyArray<readonly [string, string]>;
      readonly timeoutMs: number;
    }
  | { readonly kind: 'tcp'; readonly host: string | undefined; readonly port: number; readonly timeoutMs: number };

export interface ProbeResult {
  readonly status: number;
  readonly body: string;
}

const HTTP_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Parses ISTIO_KUBE_APP_PROBERS; throws with the path and field when an entry is unusable. */
export function parseAppProbers(text: string): Map<string, AppProbe> {
  const fail = (where: string, message: string): never => {
    throw new Error(`ISTIO_KUBE_APP_PROBERS${where}: ${message}`);
  };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return fail('', `not JSON (${(err as Error).message})`);
  }
  if (!isObject(parsed)) return fail('', 'expected a JSON object keyed by /app-health/ paths');
  const probes = new Map<string, AppProbe>();
  for (const [path, raw] of Object.entries(parsed)) {
    const at = `["${path}"]`;
    if (!path.startsWith('/app-health/')) fail('', `"${path}" is not an /app-health/ path`);
    if (!isObject(raw)) return fail(at, 'expected a probe object');
    const timeoutMs = (typeof raw['timeoutSeconds'] === 'number' && raw['timeoutSeconds'] > 0 ? raw['timeoutSeconds'] : 1) * 1000;
    const http = raw['httpGet'];
    const tcp = raw['tcpSocket'];
    const target = isObject(http) ? http : isObject(tcp) ? tcp : fail(at, 'only httpGet and tcpSocket probes are supported');
    const field = isObject(http) ? 'httpGet' : 'tcpSocket';
    const port = portOf(target['port']) ?? fail(`${at}.${field}.port`, `expected a port number, got ${JSON.stringify(target['port'])}`);
    const host = typeof target['host'] === 'string' && target['host'] !== '' ? target['host'] : undefined;
    if (!isObject(http)) {
      probes.set(path, { kind: 'tcp', host, port, timeoutMs });
      continue;
    }
    const list = http['httpHeaders'] ?? [];
    if (!Array.isArray(list)) fail(`${at}.httpGet.httpHeaders`, 'expected a list');
    const headers = (list as unknown[]).map((h, i) => {
      const name = isObject(h) ? h['name'] : undefined;
      if (typeof name !== 'string' || !HTTP_TOKEN.test(name)) fail(`${at}.httpGet.httpHeaders[${i}].name`, `expected a header name, got ${JSON.stringify(name)}`);
      return [name as string, String((h as Record<string, unknown>)['value'] ?? '')] as const;
    });
    const rawPath = typeof http['path'] === 'string' ? http['path'] : '/';
    probes.set(path, { kind: 'http', host, port, path: rawPath.startsWith('/') ? rawPath : `/${rawPath}`, https: http['scheme'] === 'HTTPS', headers, timeoutMs });
  }
  return probes;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A port given as a number or a string of digits (Istio writes numbers). */
function portOf(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
  return Number.isInteger(n) && n >= 1 && n <= 65535 ? n : undefined;
}

/**
 * Runs a probe against the application at `defaultHost` (the pod's IP, or loopback) unless it
 * names a host. HTTP: 200 for a 2xx or 3xx answer (as the kubelet counts them), else the
 * application's status, 500 when it cannot be reached. TCP: 200 once a connection opens.
 */
export function runProbe(probe: AppProbe, defaultHost: string): Promise<ProbeResult> {
  const host = probe.host ?? defaultHost;
  return probe.kind === 'tcp' ? tcpProbe(host, probe.port, probe.timeoutMs) : httpProbe(probe, host);
}

function tcpProbe(host: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (result: ProbeResult): void => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(timeoutMs, () => done({ status: 500, body: `tcp probe to ${host}:${port} timed out\n` }));
    socket.once('connect', () => done({ status: 200, body: '' }));
    socket.once('error', (err) => done({ status: 500, body: `tcp probe to ${host}:${port} failed: ${err.message}\n` }));
  });
}

function httpProbe(probe: Extract<AppProbe, { kind: 'http' }>, host: string): Promise<ProbeResult> {
  return new Promise((resolve) => {
    // Repeated names send every value, as the kubelet does.
    const headers: Record<string, string | string[]> = { 'user-agent': 'kube-probe/skiff' };
    for (const [name, value] of probe.headers) {
      const key = name.toLowerCase();
      const prior = probe.headers.filter(([n]) => n.toLowerCase() === key);
      headers[key] = prior.length > 1 ? prior.map(([, v]) => v) : value;
    }
    const options = { host, port: probe.port, path: probe.path, method: 'GET', headers, timeout: probe.timeoutMs, rejectUnauthorized: false };
    let req: ReturnType<typeof request>;
    try {
      req = (probe.https ? httpsRequest : request)(options, (res) => {
      res.resume();
      const status = res.statusCode ?? 500;
      res.once('end', () => resolve(status >= 200 && status < 400 ? { status: 200, body: '' } : { status, body: `application answered ${status}\n` }));
      // The application closing in the middle of its answer fails the probe (resolving twice is a no-op).
      res.once('close', () => resolve({ status: 500, body: `http probe to ${host}:${probe.port}${probe.path}: the application closed the connection\n` }));
      });
    } catch (err) {
      resolve({ status: 500, body: `http probe to ${host}:${probe.port}${probe.path} failed: ${(err as Error).message}\n` });
      return;
    }
    req.once('timeout', () => req.destroy(new Error('timed out')));
    req.once('error', (err) => resolve({ status: 500, body: `http probe to ${host}:${probe.port}${probe.path} failed: ${err.message}\n` }));
    req.end();
  });
}
