/**
 * VirtualService HTTPRoute policies → the model: retries (Istio retry.go ConvertPolicy), fault
 * injection (route.go TranslateFault), CORS (TranslateCORSPolicy).
 */
import type { CorsPolicy, FaultPolicy, RetryPolicy, StringMatch } from '../../model/index.js';
import type { HttpRoute } from './virtual-service.js';
import { GRPC_STATUS_CODES } from './virtual-service.js';

/** The mesh default when a route sets no retries (MeshConfig.defaultHttpRetryPolicy). */
export const DEFAULT_RETRY_ON = 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes';
const DEFAULT_ATTEMPTS = 2;
const DEFAULT_BACKOFF_MS = 25;
const HOST_SELECTION_RETRY_MAX_ATTEMPTS = 5;

/**
 * Envoy's retry policy for a route (Istio ConvertPolicy). No `retries` block means the mesh
 * default: 2 retries on connect failures, 503 and the gRPC conditions. A block with `attempts` unset
 * or 0 disables retries. Bare status codes in `retryOn` become retriable_status_codes and add
 * `retriable-status-codes`; an empty `retryOn` keeps the default conditions.
 */
export function retryPolicy(retries: HttpRoute['retries']): RetryPolicy | undefined {
  // Most routes have no retries block: they share one default policy object.
  if (retries === undefined) return (defaultPolicy ??= buildRetryPolicy(undefined));
  return buildRetryPolicy(retries);
}

let defaultPolicy: RetryPolicy | undefined;

function buildRetryPolicy(retries: HttpRoute['retries']): RetryPolicy | undefined {
  const attempts = retries === undefined ? DEFAULT_ATTEMPTS : (retries.attempts ?? 0);
  if (attempts <= 0) return undefined;
  const names: string[] = [];
  const custom = retries?.retryOn !== undefined && retries.retryOn.trim() !== '';
  const retryOn = custom ? retries!.retryOn! : DEFAULT_RETRY_ON;
  // Istio's DefaultPolicy lists 503 as the retriable status; a custom retryOn replaces it.
  const codes: number[] = custom ? [] : [503];
  for (const raw of retryOn.split(',')) {
    const part = raw.trim();
    if (part === '') continue;
    if (/^\d+$/.test(part)) codes.push(Number(part));
    else if (!names.includes(part)) names.push(part);
  }
  if (codes.length > 0 && !names.includes('retriable-status-codes')) names.push('retriable-status-codes');
  const base = retries?.backoff ?? DEFAULT_BACKOFF_MS;
  return {
    numRetries: attempts,
    retryOn: names,
    retriableStatusCodes: codes,
    ...(retries?.perTryTimeout !== undefined ? { perTryTimeoutMs: retries.perTryTimeout } : {}),
    backoffBaseMs: base,
    backoffMaxMs: base * 10,
    avoidPreviousHosts: retries?.retryIgnorePreviousHosts ?? true,
    hostSelectionRetryMaxAttempts: HOST_SELECTION_RETRY_MAX_ATTEMPTS,
  };
}

/**
 * Envoy's fault config. A delay or abort with no percentage (and no deprecated integer
 * `percent`) injects nothing. An exponential delay is not supported by Istio (dropped).
 */
export function faultPolicy(fault: HttpRoute['fault']): FaultPolicy | undefined {
  if (fault === undefined) return undefined;
  const out: { delay?: FaultPolicy['delay']; abort?: FaultPolicy['abort'] } = {};
  const d = fault.delay;
  if (d?.fixedDelay !== undefined) {
    out.delay = { fixedDelayMs: d.fixedDelay, percentage: d.percentage?.value ?? d.percent ?? 0 };
  }
  const a = fault.abort;
  if (a !== undefined && (a.httpStatus !== undefined || a.grpcStatus !== undefined)) {
    out.abort = {
      ...(a.httpStatus !== undefined ? { httpStatus: a.httpStatus } : {}),
      ...(a.grpcStatus !== undefined ? { grpcStatus: GRPC_STATUS_CODES[a.grpcStatus]! } : {}),
      percentage: a.percentage?.value ?? 0,
    };
  }
  return out.delay === undefined && out.abort === undefined ? undefined : out;
}

export function corsPolicy(cors: HttpRoute['corsPolicy']): CorsPolicy | undefined {
  if (cors === undefined) return undefined;
  const origins: StringMatch[] =
    cors.allowOrigins !== undefined
      ? cors.allowOrigins.flatMap((m): StringMatch[] =>
          m.exact !== undefined
            ? [{ kind: 'exact', value: m.exact }]
            : m.prefix !== undefined
              ? [{ kind: 'prefix', value: m.prefix }]
              : m.regex !== undefined
                ? [{ kind: 'regex', value: m.regex }]
                : [],
        )
      : (cors.allowOrigin ?? []).map((o) => ({ kind: 'exact', value: o }));
  return {
    allowOrigins: origins,
    allowMethods: (cors.allowMethods ?? []).join(','),
    allowHeaders: (cors.allowHeaders ?? []).join(','),
    exposeHeaders: (cors.exposeHeaders ?? []).join(','),
    maxAge: cors.maxAge !== undefined ? String(Math.floor(cors.maxAge / 1000)) : '',
    allowCredentials: cors.allowCredentials ?? false,
    forwardNotMatchingPreflights: cors.unmatchedPreflights !== 'IGNORE',
  };
}
