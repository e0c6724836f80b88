/**
 * An ordered, multi-valued header list with lowercase names, as Envoy keeps headers. Small
 * linear arrays beat a Map for the 5–30 headers a request carries, and keep wire order.
 *
 * Invariant: `names[i]` is lowercase and `names.length === values.length`.
 */
export class HeaderMap {
  readonly names: string[];
  readonly values: string[];

  constructor(names: string[] = [], values: string[] = []) {
    this.names = names;
    this.values = values;
  }

  get size(): number {
    return this.names.length;
  }

  /** The first value of `name` (lowercase), or undefined. */
  get(name: string): string | undefined {
    const names = this.names;
    for (let i = 0; i < names.length; i++) if (names[i] === name) return this.values[i];
    return undefined;
  }

  /**
   * All values of `name` joined with "," (Envoy's view of a repeated header when matching),
   * or undefined when absent.
   */
  getJoined(name: string): string | undefined {
    let out: string | undefined;
    const names = this.names;
    for (let i = 0; i < names.length; i++) {
      if (names[i] === name) out = out === undefined ? this.values[i] : `${out},${this.values[i]}`;
    }
    return out;
  }

  has(name: string): boolean {
    return this.names.indexOf(name) !== -1;
  }

  count(name: string): number {
    let n = 0;
    for (const x of this.names) if (x === name) n++;
    return n;
  }

  /** Appends a header line, keeping any existing ones. */
  append(name: string, value: string): void {
    this.names.push(name);
    this.values.push(value);
  }

  /** Replaces every `name` line with a single one (added at the end when absent). */
  set(name: string, value: string): void {
    const i = this.names.indexOf(name);
    if (i === -1) {
      this.append(name, value);
      return;
    }
    this.values[i] = value;
    this.#removeFrom(name, i + 1);
  }

  /** Envoy's "append if exists or add": a present header gets `,value` appended. */
  addValue(name: string, value: string): void {
    const i = this.names.indexOf(name);
    if (i === -1) this.append(name, value);
    else this.values[i] = `${this.values[i]},${value}`;
  }

  /** Sets `name` only when it is absent. */
  setIfAbsent(name: string, value: string): void {
    if (this.names.indexOf(name) === -1) this.append(name, value);
  }

  remove(name: string): void {
    this.#removeFrom(name, 0);
  }

  #removeFrom(name: string, start: number): void {
    const names = this.names;
    let w = names.indexOf(name, start);
    if (w === -1) return;
    for (let r = w + 1; r < names.length; r++) {
      if (names[r] !== name) {
        names[w] = names[r]!;
        this.values[w] = this.values[r]!;
        w++;
      }
    }
    names.length = w;
    this.values.length = w;
  }

  clone(): HeaderMap {
    return new HeaderMap(this.names.slice(), this.values.slice());
  }

  toObject(): Record<string, string> {
    const out: Record<string, string> = {};
    for (let i = 0; i < this.names.length; i++) {
      const n = this.names[i]!;
      out[n] = out[n] === undefined ? this.values[i]! : `${out[n]},${this.values[i]}`;
    }
    return out;
  }
}
