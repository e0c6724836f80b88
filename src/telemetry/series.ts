/**
 * Labelled counters and histograms that are cheap to update: a series is found once by its
 * label set and then updated with plain arithmetic. They implement the metric interface of
 * prom-client's Registry (`get`, `reset`, `aggregator`), so the registry formats them, sums
 * them across workers and resets them like its own metrics. (prom-client's own labelled
 * metrics hash the label object on every update, which costs more than the request itself.)
 */
import type { Registry } from 'prom-client';

export type Labels = Readonly<Record<string, string>>;

/** Envoy's default histogram buckets (stats.proto), which Istio keeps for its metrics. */
export const ENVOY_DEFAULT_BUCKETS: readonly number[] = [
  0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000,
];

interface MetricValue {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

/** What prom-client's Registry reads from a metric. */
interface RegistryMetric {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram';
  readonly aggregator: 'sum';
  get(): Promise<{ name: string; help: string; type: string; values: MetricValue[]; aggregator: 'sum' }>;
  reset(): void;
}

export class CounterSeries {
  value = 0;
  constructor(readonly labels: Labels) {}
}

export class HistogramSeries {
  /** Per bucket (not cumulative); the last slot counts values above every bound. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    readonly labels: Labels,
    readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

abstract class SeriesMetric<S extends { readonly labels: Labels }> implements RegistryMetric {
  abstract readonly type: 'counter' | 'histogram';
  readonly aggregator = 'sum' as const;
  readonly #series = new Map<string, S>();

  /** Runs before every collection (e.g. to record what is still queued). */
  beforeCollect: (() => void) | null = null;

  constructor(
    readonly name: string,
    readonly help: string,
    registry: Registry,
  ) {
    registry.registerMetric(this as never);
  }

  /** The series for a label set, made on first use; `key` identifies the label set. */
  series(key: string, labels: () => Labels): S {
    let s = this.#series.get(key);
    if (s === undefined) {
      s = this.create(labels());
      this.#series.set(key, s);
    }
    return s;
  }

  has(key: string): boolean {
    return this.#series.has(key);
  }

  get size(): number {
    return this.#series.size;
  }

  protected abstract create(labels: Labels): S;
  protected abstract values(series: S, out: MetricValue[]): void;

  get(): Promise<{ name: string; help: string; type: string; values: MetricValue[]; aggregator: 'sum' }> {
    this.beforeCollect?.();
    const values: MetricValue[] = [];
    for (const s of this.#series.values()) this.values(s, values);
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator });
  }

  reset(): void {
    this.#series.clear();
  }
}

export class SeriesCounter extends SeriesMetric<CounterSeries> {
  readonly type = 'counter' as const;

  protected create(labels: Labels): CounterSeries {
    return new CounterSeries(labels);
  }

  protected values(s: CounterSeries, out: MetricValue[]): void {
    out.push({ labels: { ...s.labels }, value: s.value });
  }
}

export class SeriesHistogram extends SeriesMetric<HistogramSeries> {
  readonly type = 'histogram' as const;
  readonly #bounds: readonly number[];

  constructor(name: string, help: string, registry: Registry, bounds: readonly number[] = ENVOY_DEFAULT_BUCKETS) {
    super(name, help, registry);
    this.#bounds = bounds;
  }

  protected create(labels: Labels): HistogramSeries {
    return new HistogramSeries(labels, this.#bounds);
  }

  protected values(s: HistogramSeries, out: MetricValue[]): void {
    let cumulative = 0;
    for (let i = 0; i < s.bounds.length; i++) {
      cumulative += s.counts[i]!;
      out.push({ labels: { ...s.labels, le: s.bounds[i]! }, value: cumulative, metricName: `${this.name}_bucket` });
    }
    out.push({ labels: { ...s.labels, le: '+Inf' }, value: s.count, metricName: `${this.name}_bucket` });
    out.push({ labels: { ...s.labels }, value: s.sum, metricName: `${this.name}_sum` });
    out.push({ labels: { ...s.labels }, value: s.count, metricName: `${this.name}_count` });
  }
}
