/**
 * The key sets JWT rules verify against. Inline `jwks` are parsed once; a `jwksUri` is fetched
 * with Node's fetch (undici) within the rule's timeout and cached per URI for 5 minutes (Envoy's
 * remote_jwks `cache_duration` default).
 *
 * Contract:
 * - `prefetch(model)` is awaited by the lifecycle when a config is loaded, so the request path
 *   finds the keys of every known URI with the synchronous `keysFor(rule)`.
 * - `keysFor` never does I/O. An entry older than the cache duration is still returned while a
 *   background refresh runs; a failed refresh drops the keys, so the next request fetches (and,
 *   if that fails too, is denied) — never verified against nothing, never let through.
 * - `load(rule)` is the request path's fallback when `keysFor` has nothing: one fetch per URI at a
 *   time (concurrent callers share it); it never rejects. A failed fetch is not cached.
 * - A fetch fails on a network error, the timeout, any status but 200 (redirects are not
 *   followed, as Envoy's fetcher does not), or a body that is not a JWKS with a usable key.
 */
import { parseJwks, type JwkSet, type JwksParse } from '../core/jwks.js';
import type { JwtRule, RequestAuthentication } from '../model/index.js';

/** Envoy RemoteJwks.cache_duration default. */
export const JWKS_CACHE_DURATION_MS = 5 * 60 * 1000;

export interface JwksCacheOptions {
  readonly cacheDurationMs?: number;
  /** For tests; Date.now by default. */
  readonly now?: () => number;
  /** Called on every failed fetch (for a log line). */
  readonly onFetchError?: (uri: string, reason: string) => void;
}

interface RemoteEntry {
  /** Invariant: undefined until a fetch succeeded, and again after a refresh failed. */
  keys: JwkSet | undefined;
  fetchedAt: number;
  inflight: Promise<JwksParse> | undefined;
}

export class JwksCache {
  readonly #inline = new Map<string, JwksParse>();
  readonly #remote = new Map<string, RemoteEntry>();
  readonly #cacheDurationMs: number;
  readonly #now: () => number;
  readonly #onFetchError: ((uri: string, reason: string) => void) | undefined;

  constructor(opts: JwksCacheOptions = {}) {
    this.#cacheDurationMs = opts.cacheDurationMs ?? JWKS_CACHE_DURATION_MS;
    this.#now = opts.now ?? Date.now;
    this.#onFetchError = opts.onFetchError;
  }

  /** The rule's keys when at hand (inline, or fetched and not dropped); never does I/O. */
  keysFor(rule: JwtRule): JwkSet | undefined {
    if (rule.jwks.kind === 'inline') {
      const parsed = this.#parseInline(rule.jwks.json);
      return parsed.ok ? parsed.jwks : undefined;
    }
    const entry = this.#remote.get(rule.jwks.uri);
    if (entry?.keys === undefined) return undefined;
    if (this.#now() - entry.fetchedAt >= this.#cacheDurationMs && entry.inflight === undefined) {
      void this.#fetch(rule.jwks.uri, rule.timeoutMs);
    }
    return entry.keys;
  }

  /** The rule's keys, fetching them first when needed. Never rejects. */
  async load(rule: JwtRule): Promise<JwksParse> {
    if (rule.jwks.kind === 'inline') return this.#parseInline(rule.jwks.json);
    const keys = this.keysFor(rule);
    if (keys !== undefined) return { ok: true, jwks: keys };
    return this.#fetch(rule.jwks.uri, rule.timeoutMs);
  }

  /**
   * Fetches every remote key set the rules use (in parallel) and parses the inline ones; forgets
   * URIs no rule uses any more. Resolves once every fetch has finished, failed or not.
   */
  async prefetch(model: RequestAuthentication): Promise<void> {
    const timeouts = new Map<string, number>();
    const inline = new Set<string>();
    for (const r of model.rules) {
      if (r.jwks.kind === 'inline') inline.add(r.jwks.json);
      else timeouts.set(r.jwks.uri, Math.max(timeouts.get(r.jwks.uri) ?? 0, r.timeoutMs));
    }
    for (const uri of this.#remote.keys()) if (!timeouts.has(uri)) this.#remote.delete(uri);
    for (const json of this.#inline.keys()) if (!inline.has(json)) this.#inline.delete(json);
    for (const json of inline) this.#parseInline(json);
    await Promise.all([...timeouts].map(([uri, timeout]) => {
      const e = this.#remote.get(uri);
      return e?.keys !== undefined && this.#now() - e.fetchedAt < this.#cacheDurationMs ? undefined : this.#fetch(uri, timeout);
    }));
  }

  #parseInline(json: string): JwksParse {
    let parsed = this.#inline.get(json);
    if (parsed === undefined) {
      parsed = parseJwks(json);
      this.#inline.set(json, parsed);
    }
    return parsed;
  }

  /** One fetch per URI at a time; updates the entry. Never rejects. */
  #fetch(uri: string, timeoutMs: number): Promise<JwksParse> {
    let entry = this.#remote.get(uri);
    if (entry === undefined) {
      entry = { keys: undefined, fetchedAt: 0, inflight: undefined };
      this.#remote.set(uri, entry);
    }
    if (entry.inflight !== undefined) return entry.inflight;
    const e = entry;
    e.inflight = fetchJwks(uri, timeoutMs).then((result) => {
      e.inflight = undefined;
      if (result.ok) {
        e.keys = result.jwks;
        e.fetchedAt = this.#now();
      } else {
        e.keys = undefined;
        this.#onFetchError?.(uri, result.reason);
      }
      return result;
    });
    return e.inflight;
  }
}

/** GET a JWKS document. Never rejects. */
export async function fetchJwks(uri: string, timeoutMs: number): Promise<JwksParse> {
  try {
    const res = await fetch(uri, { signal: AbortSignal.timeout(timeoutMs), redirect: 'manual', headers: { accept: 'application/json' } });
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => undefined);
      return { ok: false, reason: `HTTP status ${res.status}` };
    }
    return parseJwks(await res.text());
  } catch (e) {
    return { ok: false, reason: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
  }
}
