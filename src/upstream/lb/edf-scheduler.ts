/**
 * Earliest-deadline-first scheduling (Envoy's EdfScheduler): each entry is due at
 * `now + 1 / weight`; a pick takes the earliest entry (the one added first on a tie), moves
 * `now` to its deadline and re-adds it with a weight computed at that moment. Over time each
 * entry is picked in proportion to its weight, smoothly interleaved.
 *
 * Invariant: `#heap` is a binary min-heap on (deadline, order); every entry is in it once.
 */

interface Slot<T> {
  deadline: number;
  order: number;
  readonly item: T;
}

export class EdfScheduler<T> {
  readonly #heap: Array<Slot<T>> = [];
  #now = 0;
  #order = 0;

  /**
   * Adds every item with its weight; like Envoy, then skips a random number of picks (below the
   * item count) so that proxies built from the same host list do not all start on one host.
   */
  constructor(items: readonly T[], weight: (item: T) => number) {
    for (const item of items) this.#add(item, weight(item));
    const skip = Math.floor(Math.random() * items.length);
    for (let i = 0; i < skip; i++) this.pickAndAdd(weight);
  }

  /** The earliest entry, re-added with `weight(entry)`; undefined when empty. */
  pickAndAdd(weight: (item: T) => number): T | undefined {
    const heap = this.#heap;
    if (heap.length === 0) return undefined;
    const top = heap[0]!;
    this.#now = top.deadline;
    top.deadline = this.#now + 1 / Math.max(weight(top.item), Number.MIN_VALUE);
    top.order = this.#order++;
    this.#siftDown(0);
    return top.item;
  }

  #add(item: T, weight: number): void {
    this.#heap.push({ deadline: this.#now + 1 / Math.max(weight, Number.MIN_VALUE), order: this.#order++, item });
    this.#siftUp(this.#heap.length - 1);
  }

  #before(a: Slot<T>, b: Slot<T>): boolean {
    return a.deadline < b.deadline || (a.deadline === b.deadline && a.order < b.order);
  }

  #siftUp(i: number): void {
    const heap = this.#heap;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#before(heap[i]!, heap[parent]!)) return;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  #siftDown(i: number): void {
    const heap = this.#heap;
    const n = heap.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && this.#before(heap[l]!, heap[m]!)) m = l;
      if (r < n && this.#before(heap[r]!, heap[m]!)) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  }
}
