/**
 * Shared tinybench harness for the micro benchmarks.
 *
 * Most hot-path operations take well under a microsecond, below what a single timer pair can
 * resolve (one performance.now() costs ~30–60 ns). So each tinybench sample is a *batch*: the task
 * calls the operation `n` times between two timestamps and reports the mean per call through
 * tinybench's `overriddenDuration` (and the whole batch as `overriddenIterationCost`, so the time
 * budget stays honest). `n` is calibrated per task, once the function is warm, so that a batch
 * takes about BATCH_TARGET_MS.
 *
 * Dead-code elimination: every operation returns a number derived from its result; the batch loop
 * sums them and folds the sum into a module-level sink that is checked at the end. The loop is
 * compiled separately for every task (`new Function` with a unique source), so its call site stays
 * monomorphic per task instead of becoming megamorphic across all tasks.
 */
import { Bench } from 'tinybench';

/** Target wall time of one batch (one tinybench sample). */
const BATCH_TARGET_MS = 0.05;
const MAX_BATCH = 1 << 20;

/** Results of every batch are folded in here so no work can be proven dead. */
export const sink = { value: 0, calls: 0 };

let loopId = 0;
/** A fresh, separately optimised batch loop: (fn, n, now, sink) → elapsed ms. */
function makeLoop() {
  const id = ++loopId;
  // The unique comment defeats V8's eval cache, which would otherwise share one function (and
  // its type feedback) between all tasks.
  return new Function(
    'fn',
    'n',
    'now',
    'sink',
    `/* skiff micro batch loop #${id} */
    let acc = 0;
    const t0 = now();
    for (let i = 0; i < n; i++) acc = (acc + fn(i)) | 0;
    const t1 = now();
    sink.value = (sink.value ^ acc) | 0;
    sink.calls += n;
    return t1 - t0;`,
  );
}

const now = () => performance.now();

export function options({ quick }) {
  return quick
    ? { time: 150, warmupTime: 60, iterations: 20, warmupIterations: 10 }
    : { time: 900, warmupTime: 250, iterations: 50, warmupIterations: 20 };
}

/**
 * A group of benchmarks. `add(name, fn)` registers `fn(i) → number` (i is the call index within
 * the batch, for cycling through inputs); `run()` returns the result rows.
 */
export function suite(group, { quick }) {
  const bench = new Bench({ ...options({ quick }), throws: true, name: group });
  const meta = new Map();
  return {
    add(name, fn) {
      const loop = makeLoop();
      const state = { n: 1 };
      meta.set(name, state);
      const calibrate = () => {
        // Grow the batch until it takes BATCH_TARGET_MS (the function is run, and optimised, on the way).
        // The fastest of three batches, so one preempted or GC-hit batch cannot shrink `n`.
        let n = 1;
        for (;;) {
          const ms = Math.min(loop(fn, n, now, sink), loop(fn, n, now, sink), loop(fn, n, now, sink));
          if (ms >= BATCH_TARGET_MS || n >= MAX_BATCH) {
            state.n = Math.max(1, Math.min(MAX_BATCH, Math.round((n * BATCH_TARGET_MS) / Math.max(ms, 1e-6))));
            return;
          }
          n *= 2;
        }
      };
      bench.add(
        name,
        () => {
          const n = state.n;
          const ms = loop(fn, n, now, sink);
          return { overriddenDuration: ms / n, overriddenIterationCost: ms };
        },
        // Calibrated before the warm-up and again before the measured run, when fn is optimised.
        { beforeAll: calibrate },
      );
    },
    async run() {
      await bench.run();
      return bench.tasks.map((task) => {
        const r = task.result;
        if (r.state !== 'completed') throw new Error(`${group}: ${task.name}: ${r.state}${r.error ? `: ${r.error.message}` : ''}`);
        const nsPerOp = r.latency.mean * 1e6;
        return {
          group,
          name: task.name,
          nsPerOp,
          opsPerSec: 1e9 / nsPerOp,
          samples: r.latency.samplesCount,
          rme: r.latency.rme,
          p50Ns: r.latency.p50 * 1e6,
          p99Ns: r.latency.p99 * 1e6,
          batch: meta.get(task.name).n,
        };
      });
    },
  };
}

/**
 * A flat, sequential copy of `s`, like the strings the codec makes from wire bytes. Template
 * literals build cons strings (ropes), which V8 reads more slowly and which no request carries.
 */
export function flat(s) {
  return Buffer.from(s, 'latin1').toString('latin1');
}

/** Throws unless `cond`: setup checks, so a benchmark never measures an error path. */
export function check(cond, message) {
  if (!cond) throw new Error(`micro benchmark setup: ${message}`);
}

/** A one-shot timing row (not tinybench): `ms` are the individual runs. */
export function oneShotRow(group, name, ms, extra = {}) {
  const mean = ms.reduce((s, x) => s + x, 0) / ms.length;
  let rme = NaN;
  if (ms.length > 1) {
    const sd = Math.sqrt(ms.reduce((s, x) => s + (x - mean) ** 2, 0) / (ms.length - 1));
    // 95% two-sided Student t for small samples (df 1..9), as tinybench reports rme.
    const t = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262][ms.length - 2] ?? 1.96;
    rme = (100 * t * sd) / Math.sqrt(ms.length) / mean;
  }
  return { group, name, nsPerOp: mean * 1e6, opsPerSec: 1000 / mean, samples: ms.length, rme, ms: mean, oneShot: true, ...extra };
}
