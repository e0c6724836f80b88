/**
 * The key sets JWT rules verify against. Inline `jwks` are parsed once; a `jwksUri` is fetched
 * with Node's fetch (undici) within the rule's timeout and cached per URI for 5 minutes (Envoy's
 * remote_jwks `cache_duration` default). A rule with neither finds its `jwks_uri` in the
 * issuer's OpenID configuration first (as istiod does), which is cached the same way.
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

type JwksFailure = Extract<JwksParse, { ok: false }>;

/** What an OpenID configuration gives: its `jwks_uri`. */
type JwksUriResult = { readonly ok: true; readonly uri: string } | JwksFailure;

/** A fetched document's useful value, cached per URI (a key set, or a discovered `jwks_uri`). */
interface CacheEntry<T, R> {
  /** Invariant: undefined until a fetch succeeded, and again after a refresh failed. */
  value: T | undefined;
  fetchedAt: number;
  inflight: Promise<R> | undefined;
}

export class JwksCache {
  readonly #inline = new Map<string, JwksParse>();
  readonly #remote = new Map<string, CacheEntry<JwkSet, JwksParse>>();
  /** OpenID configuration URI → the `jwks_uri` it names. */
  readonly #discovered = new Map<string, CacheEntry<string, JwksUriResult>>();
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
    const uri = this.#jwksUriOf(rule);
    const entry = uri === undefined ? undefined : this.#remote.get(uri);
    if (entry?.value === undefined) return undefined;
    if (this.#now() - entry.fetchedAt >= this.#cacheDurationMs && entry.inflight === undefined) {
      void this.#refresh(rule);
    }
    return entry.value;
  }

  /** The rule's keys, fetching them first when needed. Never rejects. */
  async load(rule: JwtRule): Promise<JwksParse> {
    if (rule.jwks.kind === 'inline') return this.#parseInline(rule.jwks.json);
    const keys = this.keysFor(rule);
    if (keys !== undefined) return { ok: true, jwks: keys };
    return this.#refresh(rule);
  }

  /** The key set URI of a remote rule: its jwksUri, or the one discovered (undefined until then). */
  #jwksUriOf(rule: JwtRule): string | undefined {
    if (rule.jwks.kind === 'remote') return rule.jwks.uri;
    if (rule.jwks.kind !== 'discovery') return undefined;
    const d = this.#discovered.get(rule.jwks.documentUri);
    if (d !== undefined && d.value !== undefined && this.#now() - d.fetchedAt >= this.#cacheDurationMs && d.inflight === undefined) {
      void this.#discover(rule.jwks.documentUri, rule.timeoutMs);
    }
    return d?.value;
  }

  /** Fetches a remote rule's keys (discovering their URI first when needed). Never rejects. */
  async #refresh(rule: JwtRule): Promise<JwksParse> {
    let uri = this.#jwksUriOf(rule);
    if (uri === undefined && rule.jwks.kind === 'discovery') {
      const found = await this.#discover(rule.jwks.documentUri, rule.timeoutMs);
      if (!found.ok) return found;
      uri = found.uri;
    }
    return uri === undefined ? { ok: false, reason: 'no key set' } : this.#fetch(uri, rule.timeoutMs);
  }

  /**
   * Fetches every remote key set the rules use (in parallel) and parses the inline ones; forgets
   * URIs no rule uses any more. Resolves once every fetch has finished, failed or not.
   */
  async prefetch(model: RequestAuthentication): Promise<void> {
    const documents = new Map<string, number>();
    for (const r of model.rules) if (r.jwks.kind === 'discovery') documents.set(r.jwks.documentUri, Math.max(documents.get(r.jwks.documentUri) ?? 0, r.timeoutMs));
    for (const doc of this.#discovered.keys()) if (!documents.has(doc)) this.#discovered.delete(doc);
    await Promise.all([...documents].map(([doc, timeout]) => (this.#discovered.get(doc)?.value === undefined ? this.#discover(doc, timeout) : undefined)));
    const timeouts = new Map<string, number>();
    const inline = new Set<string>();
    for (const r of model.rules) {
      if (r.jwks.kind === 'inline') {
        inline.add(r.jwks.json);
        continue;
      }
      const uri = this.#jwksUriOf(r);
      if (uri !== undefined) timeouts.set(uri, Math.max(timeouts.get(uri) ?? 0, r.timeoutMs));
    }
    for (const uri of this.#remote.keys()) if (!timeouts.has(uri)) this.#remote.delete(uri);
    for (const json of this.#inline.keys()) if (!inline.has(json)) this.#inline.delete(json);
    for (const json of inline) this.#parseInline(json);
    await Promise.all([...timeouts].map(([uri, timeout]) => {
      const e = this.#remote.get(uri);
      return e?.value !== undefined && this.#now() - e.fetchedAt < this.#cacheDurationMs ? undefined : this.#fetch(uri, timeout);
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

  #discover(documentUri: string, timeoutMs: number): Promise<JwksUriResult> {
    return this.#singleFlight(this.#discovered, documentUri, () => fetchJwksUri(documentUri, timeoutMs), (r) => (r.ok ? r.uri : undefined));
  }

  #fetch(uri: string, timeoutMs: number): Promise<JwksParse> {
    return this.#singleFlight(this.#remote, uri, () => fetchJwks(uri, timeoutMs), (r) => (r.ok ? r.jwks : undefined));
  }

  /**
   * One fetch per URI at a time (concurrent callers share it): the entry keeps what a success
   * yields and loses its value on a failure, which is reported. Never rejects.
   */
  #singleFlight<T, R extends { readonly ok: true } | JwksFailure>(
    cache: Map<string, CacheEntry<T, R>>,
    uri: string,
    fetch: () => Promise<R>,
    valueOf: (result: R) => T | undefined,
  ): Promise<R> {
    let entry = cache.get(uri);
    if (entry === undefined) {
      entry = { value: undefined, fetchedAt: 0, inflight: undefined };
      cache.set(uri, entry);
    }
    if (entry.inflight !== undefined) return entry.inflight;
    const e = entry;
    e.inflight = fetch().then((result) => {
      e.inflight = undefined;
      e.value = valueOf(result);
      if (result.ok) e.fetchedAt = this.#now();
      else this.#onFetchError?.(uri, result.reason);
      return result;
    });
    return e.inflight;
  }
}

/** GET a JSON document: its text, or why there is none. Never rejects. */
async function fetchText(uri: string, timeoutMs: number): Promise<string | JwksFailure> {
  try {
    const res = await fetch(uri, { signal: AbortSignal.timeout(timeoutMs), redirect: 'manual', headers: { accept: 'application/json' } });
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => undefined);
      return { ok: false, reason: `HTTP status ${res.status}` };
    }
    return await res.text();
  } catch (e) {
    return { ok: false, reason: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
  }
}

/** GET a JWKS document. Never rejects. */
export async function fetchJwks(uri: string, timeoutMs: number): Promise<JwksParse> {
  const text = await fetchText(uri, timeoutMs);
  return typeof text === 'string' ? parseJwks(text) : text;
}

/** GET an OpenID configuration and return its http(s) `jwks_uri`. Never rejects. */
export async function fetchJwksUri(documentUri: string, timeoutMs: number): Promise<JwksUriResult> {
  const text = await fetchText(documentUri, timeoutMs);
  if (typeof text !== 'string') return text;
  let uri: unknown;
  try {
    uri = (JSON.parse(text) as { jwks_uri?: unknown }).jwks_uri;
  } catch {
    return { ok: false, reason: 'the OpenID configuration is not JSON' };
  }
  if (typeof uri !== 'string' || !/^https?:\/\/[^/]/.test(uri)) return { ok: false, reason: 'the OpenID configuration has no http(s) jwks_uri' };
  return { ok: true, uri };
}
