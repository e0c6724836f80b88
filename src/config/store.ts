/**
 * A versioned holder for the current snapshot. `swap` replaces it atomically: readers that took
 * the previous value keep it for as long as they hold it. Generic so it does not depend on what
 * is stored.
 */
export class SnapshotStore<T> {
  #current: T | undefined;
  #version = 0;
  readonly #listeners = new Set<(value: T, version: number) => void>();

  get version(): number {
    return this.#version;
  }

  /** The current value; throws before the first swap. */
  current(): T {
    if (this.#current === undefined) throw new Error('no snapshot has been loaded yet');
    return this.#current;
  }

  get loaded(): boolean {
    return this.#current !== undefined;
  }

  /** The version the next swap will carry. */
  nextVersion(): number {
    return this.#version + 1;
  }

  swap(value: T): number {
    this.#current = value;
    this.#version++;
    for (const l of this.#listeners) l(value, this.#version);
    return this.#version;
  }

  subscribe(listener: (value: T, version: number) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
