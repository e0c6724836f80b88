/**
 * Jittered exponential backoff (full jitter): the n-th wait is uniform in
 * [0, min(max, base × 2^n)), as Envoy's JitteredExponentialBackOffStrategy draws it.
 */
export class JitteredBackoff {
  readonly #baseMs: number;
  readonly #maxMs: number;
  #attempt = 0;

  constructor(baseMs: number, maxMs: number) {
    this.#baseMs = baseMs;
    this.#maxMs = maxMs;
  }

  /** The wait before the next attempt; each call widens the window up to the cap. */
  next(): number {
    const window = Math.min(this.#maxMs, this.#baseMs * 2 ** this.#attempt);
    this.#attempt++;
    return Math.random() * window;
  }

  /** After a success: the next wait starts from the base again. */
  reset(): void {
    this.#attempt = 0;
  }
}
