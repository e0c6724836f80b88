/**
 * `skiff wait`: Istio's `pilot-agent wait` (IST:pilot/cmd/pilot-agent/app/wait.go). Polls the
 * proxy's readiness URL until it answers 200 (exit 0) or the timeout passes (exit 1, naming the
 * last error). Injected as the sidecar's postStart hook when holdApplicationUntilProxyStarts is
 * set, so the kubelet starts the app only once the proxy is ready.
 *
 * Flags keep Istio's spellings (`--timeoutSeconds`, `--periodMillis`, `--requestTimeoutMillis`,
 * `--url`), with kebab-case aliases.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { SkiffError } from '../core/errors.js';
import { parse } from './args.js';

export const WAIT_OPTIONS = {
  timeoutSeconds: { type: 'string' },
  'timeout-seconds': { type: 'string' },
  periodMillis: { type: 'string' },
  'period-millis': { type: 'string' },
  requestTimeoutMillis: { type: 'string' },
  'request-timeout-millis': { type: 'string' },
  url: { type: 'string' },
} as const;

/** pilot-agent's defaults. */
export const WAIT_DEFAULTS = {
  timeoutSeconds: 60,
  periodMillis: 500,
  requestTimeoutMillis: 500,
  url: 'http://localhost:15021/healthz/ready',
} as const;

export interface WaitOptions {
  readonly url: URL;
  readonly timeoutMs: number;
  readonly periodMs: number;
  /** 0 means no per-request timeout (as Go's http.Client). */
  readonly requestTimeoutMs: number;
}

export type WaitResult = { readonly ready: true; readonly attempts: number } | { readonly ready: false; readonly attempts: number; readonly lastError: string | undefined };

export async function waitCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, WAIT_OPTIONS);
  const timeoutSeconds = intFlag(values, 'timeoutSeconds', 'timeout-seconds', 0) ?? WAIT_DEFAULTS.timeoutSeconds;
  const periodMillis = intFlag(values, 'periodMillis', 'period-millis', 1) ?? WAIT_DEFAULTS.periodMillis;
  const requestTimeoutMillis = intFlag(values, 'requestTimeoutMillis', 'request-timeout-millis', 0) ?? WAIT_DEFAULTS.requestTimeoutMillis;
  const rawUrl = values.url ?? WAIT_DEFAULTS.url;
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    throw new SkiffError('USAGE', `--url must be an http:// or https:// URL, got "${rawUrl}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new SkiffError('USAGE', `--url must be an http:// or https:// URL, got "${rawUrl}"`);

  process.stderr.write(`skiff: waiting for the proxy to be ready at ${url.href} (timeout: ${timeoutSeconds} seconds)...\n`);
  const result = await waitUntilReady({ url, timeoutMs: timeoutSeconds * 1000, periodMs: periodMillis, requestTimeoutMs: requestTimeoutMillis });
  if (result.ready) {
    process.stderr.write('skiff: the proxy is ready\n');
    return 0;
  }
  const last = result.lastError ?? 'no check was made';
  process.stderr.write(`skiff: timeout waiting for the proxy to become ready at ${url.href} after ${timeoutSeconds} seconds (${result.attempts} checks). Last error: ${last}\n`);
  return 1;
}

/**
 * pilot-agent's loop: wait a period, check, repeat; the deadline runs from the start and is
 * tested before each check (a check in flight when it passes still completes).
 */
export async function waitUntilReady(options: WaitOptions): Promise<WaitResult> {
  const deadline = performance.now() + options.timeoutMs;
  let lastError: string | undefined;
  let attempts = 0;
  for (;;) {
    const remaining = deadline - performance.now();
    if (remaining < options.periodMs) {
      if (remaining > 0) await sleep(remaining);
      return { ready: false, attempts, lastError };
    }
    await sleep(options.periodMs);
    attempts++;
    lastError = await checkReady(options.url, options.requestTimeoutMs);
    if (lastError === undefined) return { ready: true, attempts };
  }
}

/** One GET: undefined on 200, else why not (status, connection error or timeout). */
export function checkReady(url: URL, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    let timer: NodeJS.Timeout | undefined;
    const done = (error: string | undefined): void => {
      clearTimeout(timer);
      resolve(error);
    };
    // agent: false: a fresh connection per check, closed after it, so nothing keeps the process alive.
    const req = send(url, { method: 'GET', agent: false }, (res) => {
      res.on('error', (err) => done(err.message));
      res.on('end', () => done(res.statusCode === 200 ? undefined : `HTTP status code ${res.statusCode}`));
      res.on('close', () => done('connection closed before the response ended'));
      res.resume();
    });
    req.on('error', (err) => done(err.message));
    if (timeoutMs > 0) {
      timer = setTimeout(() => {
        req.destroy(new Error(`no response within ${timeoutMs} ms`));
      }, timeoutMs);
    }
    req.end();
  });
}

type WaitValues = { readonly [K in keyof typeof WAIT_OPTIONS]?: string };

/** A non-negative integer flag given by its Istio name or its kebab-case alias (not both). */
function intFlag(values: WaitValues, istio: keyof typeof WAIT_OPTIONS, kebab: keyof typeof WAIT_OPTIONS, min: number): number | undefined {
  const a = values[istio];
  const b = values[kebab];
  if (a !== undefined && b !== undefined) throw new SkiffError('USAGE', `--${istio} and --${kebab} are the same flag; give one`);
  const value = a ?? b;
  if (value === undefined) return undefined;
  const name = a !== undefined ? istio : kebab;
  if (!/^\d+$/.test(value) || Number(value) < min || !Number.isSafeInteger(Number(value))) {
    throw new SkiffError('USAGE', `--${name} must be an integer of ${min} or more, got "${value}"`);
  }
  return Number(value);
}
