/**
 * Istio's probe rewrite, the injector side (IST:pkg/kube/inject/app_probe.go). An application
 * container's httpGet and tcpSocket liveness, readiness and startup probes are pointed at the
 * status port, `GET :15020/app-health/<container>/livez|readyz|startupz`, and the originals go to
 * the sidecar in ISTIO_KUBE_APP_PROBERS for the proxy to run (src/admin/app-probes.ts). So the
 * kubelet, which has no mesh certificate, can still probe under STRICT mTLS, and a TCP probe checks
 * the application instead of the proxy that accepts every captured port.
 *
 * Plain data in and out: the YAML layer reads each probe as data and writes the replacement back.
 * Exec probes stay as they are; so do gRPC probes, which skiff's status server does not run yet
 * (Istio rewrites those too).
 */
import { ANNOTATION, parseBool, type Annotations } from './annotations.js';

/** Where the proxy serves the rewritten probes (Istio's default statusPort). */
export const STATUS_PORT = 15020;

export const PROBE_KINDS = ['livenessProbe', 'readinessProbe', 'startupProbe'] as const;
export type ProbeKind = (typeof PROBE_KINDS)[number];

const ENDPOINT: Readonly<Record<ProbeKind, string>> = { livenessProbe: 'livez', readinessProbe: 'readyz', startupProbe: 'startupz' };

/** Istio's FormatProberURL: `/app-health/<container>/livez` (readyz, startupz). */
export function appHealthPath(container: string, kind: ProbeKind): string {
  return `/app-health/${container}/${ENDPOINT[kind]}`;
}

/**
 * `sidecar.istio.io/rewriteAppHTTPProbers`, read as strconv.ParseBool reads it. Istio does not
 * validate it: a value ParseBool refuses means the default, which is on.
 */
export function shouldRewriteProbes(annotations: Annotations): boolean {
  const value = annotations[ANNOTATION.rewriteAppHTTPProbers];
  return (value === undefined ? undefined : parseBool(value)) ?? true;
}

type Field = readonly (string | number)[];

/** A probe that cannot be rewritten; `field` is relative to the probe (`['httpGet', 'port']`). */
export class ProbeProblem extends Error {
  readonly field: Field;

  constructor(field: Field, message: string) {
    super(message);
    this.name = 'ProbeProblem';
    this.field = field;
  }
}

interface HttpHeader {
  readonly name: string;
  readonly value: string;
}

/**
 * An original probe as ISTIO_KUBE_APP_PROBERS carries it: Istio's `Prober`, the whole action
 * (host, scheme and headers included) with a named port resolved to its number, and the
 * timeout. Fields are in Go's order and empty ones are left out, as encoding/json writes them.
 */
export type Prober =
  | {
      readonly httpGet: {
        readonly path?: string;
        readonly port: number;
        readonly host?: string;
        readonly scheme?: string;
        readonly httpHeaders?: readonly HttpHeader[];
      };
      readonly timeoutSeconds?: number;
    }
  | { readonly tcpSocket: { readonly port: number; readonly host?: string }; readonly timeoutSeconds?: number };

export interface ProbeRewrite {
  /** The probe's action that `httpGet` replaces. */
  readonly action: 'httpGet' | 'tcpSocket';
  /** Every other field of the probe (periods, thresholds, timeout) stays. */
  readonly httpGet: { readonly path: string; readonly port: number; readonly scheme: 'HTTP' };
  readonly prober: Prober;
}

/**
 * The rewrite of `probe` (a container's probe as plain data) to `path` on the status port, or
 * undefined when it stays: exec or gRPC, or already aimed at the status port (a pod rewritten
 * before; rewriting it again would lose the original). `ports` names the container's ports.
 * Throws ProbeProblem.
 */
export function rewriteProbe(probe: Readonly<Record<string, unknown>>, path: string, ports: ReadonlyMap<string, number>): ProbeRewrite | undefined {
  const action = isMap(probe['httpGet']) ? 'httpGet' : isMap(probe['tcpSocket']) ? 'tcpSocket' : undefined;
  if (action === undefined) return undefined;
  const target = probe[action] as Readonly<Record<string, unknown>>;
  const port = resolvePort(target['port'], ports, [action, 'port']);
  if (port === STATUS_PORT) return undefined;
  const timeoutSeconds = timeoutOf(probe['timeoutSeconds']);
  const timeout = timeoutSeconds === undefined ? {} : { timeoutSeconds };
  const host = optionalString(target, 'host', [action]);
  let prober: Prober;
  if (action === 'tcpSocket') {
    prober = { tcpSocket: { port, ...(host !== undefined && { host }) }, ...timeout };
  } else {
    const p = optionalString(target, 'path', [action]);
    const scheme = optionalString(target, 'scheme', [action]);
    const headers = headersOf(target['httpHeaders']);
    prober = {
      httpGet: {
        ...(p !== undefined && { path: p }),
        port,
        ...(host !== undefined && { host }),
        ...(scheme !== undefined && { scheme }),
        ...(headers.length > 0 && { httpHeaders: headers }),
      },
      ...timeout,
    };
  }
  // The kubelet probes the proxy: plain HTTP (the proxy speaks HTTPS to an HTTPS application),
  // and no `host`, which would send the probe to that host's port 15020 (istio/istio#46215).
  return { action, httpGet: { path, port: STATUS_PORT, scheme: 'HTTP' }, prober };
}

/**
 * ISTIO_KUBE_APP_PROBERS: compact JSON, keys sorted as encoding/json writes a Go map; undefined
 * when there is nothing to carry (Istio writes no `{}`).
 */
export function appProbersEnv(probers: ReadonlyMap<string, Prober>): string | undefined {
  if (probers.size === 0) return undefined;
  const keys = [...probers.keys()].sort();
  return JSON.stringify(Object.fromEntries(keys.map((k) => [k, probers.get(k)!])));
}

/** A container's named ports (`ports[].name` to `containerPort`); malformed entries are skipped. */
export function namedPorts(ports: unknown): Map<string, number> {
  const out = new Map<string, number>();
  if (!Array.isArray(ports)) return out;
  for (const p of ports) {
    if (!isMap(p)) continue;
    const name = p['name'];
    const number = p['containerPort'];
    if (typeof name === 'string' && name !== '' && typeof number === 'number') out.set(name, number);
  }
  return out;
}

// === field readers ===

function isMap(v: unknown): v is Readonly<Record<string, unknown>> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function resolvePort(v: unknown, ports: ReadonlyMap<string, number>, field: Field): number {
  const number = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : undefined;
  if (number !== undefined) {
    if (!Number.isInteger(number) || number < 1 || number > 65535) throw new ProbeProblem(field, `${JSON.stringify(v)} is not a port number (1-65535)`);
    return number;
  }
  if (typeof v !== 'string') throw new ProbeProblem(field, `expected a port number or the name of one of the container's ports, got ${JSON.stringify(v ?? null)}`);
  const named = ports.get(v);
  if (named !== undefined) return named;
  const known = [...ports.keys()].map((n) => JSON.stringify(n));
  throw new ProbeProblem(field, `no port named "${v}" in the container's ports (${known.length === 0 ? 'it names none' : `it names ${known.join(', ')}`})`);
}

/** A string field, undefined when absent, null or empty (Go's omitempty). */
function optionalString(map: Readonly<Record<string, unknown>>, key: string, at: Field): string | undefined {
  const v = map[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new ProbeProblem([...at, key], `expected a string, got ${JSON.stringify(v)}`);
  return v;
}

function timeoutOf(v: unknown): number | undefined {
  if (v === undefined || v === null || v === 0) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new ProbeProblem(['timeoutSeconds'], `expected a whole number of seconds, got ${JSON.stringify(v)}`);
  return v;
}

function headersOf(v: unknown): HttpHeader[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new ProbeProblem(['httpGet', 'httpHeaders'], 'expected a list of {name, value}');
  return v.map((h, i) => {
    const name = isMap(h) ? h['name'] : undefined;
    if (typeof name !== 'string' || name === '') throw new ProbeProblem(['httpGet', 'httpHeaders', i, 'name'], `expected a header name, got ${JSON.stringify(name ?? null)}`);
    const value = (h as Readonly<Record<string, unknown>>)['value'];
    return { name, value: value === undefined || value === null ? '' : String(value) };
  });
}
