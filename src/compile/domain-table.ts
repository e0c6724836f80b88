/**
 * Host lookup in Envoy's virtual-host order: exact name, then the longest `*.suffix` wildcard,
 * then the longest `prefix.*` wildcard, then `*`. Names are lowercase without port.
 */
export class DomainTable<T> {
  readonly #exact = new Map<string, T>();
  /** [suffix including the dot, value], longest suffix first. */
  #suffixes: Array<[string, T]> = [];
  #prefixes: Array<[string, T]> = [];
  #any: T | undefined;

  /** Adds a domain; the first value added for a domain wins (later duplicates return false). */
  add(domain: string, value: T): boolean {
    const d = domain.toLowerCase();
    if (d === '*') {
      if (this.#any !== undefined) return false;
      this.#any = value;
      return true;
    }
    if (d.startsWith('*')) {
      const suffix = d.slice(1);
      if (this.#suffixes.some(([s]) => s === suffix)) return false;
      this.#suffixes.push([suffix, value]);
      this.#suffixes.sort((a, b) => b[0].length - a[0].length);
      return true;
    }
    if (d.endsWith('*')) {
      const prefix = d.slice(0, -1);
      if (this.#prefixes.some(([p]) => p === prefix)) return false;
      this.#prefixes.push([prefix, value]);
      this.#prefixes.sort((a, b) => b[0].length - a[0].length);
      return true;
    }
    if (this.#exact.has(d)) return false;
    this.#exact.set(d, value);
    return true;
  }

  /** Finds the value for `host` (lowercase, no port). `includeAny` admits the `*` entry. */
  find(host: string, includeAny = true): T | undefined {
    const exact = this.#exact.get(host);
    if (exact !== undefined) return exact;
    for (const [suffix, v] of this.#suffixes) {
      if (host.length > suffix.length && host.endsWith(suffix)) return v;
    }
    for (const [prefix, v] of this.#prefixes) {
      if (host.length > prefix.length && host.startsWith(prefix)) return v;
    }
    return includeAny ? this.#any : undefined;
  }

  get size(): number {
    return this.#exact.size + this.#suffixes.length + this.#prefixes.length + (this.#any === undefined ? 0 : 1);
  }
}
