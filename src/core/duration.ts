/**
 * Durations as Istio's CRDs accept them: Go duration strings ("5s", "100ms", "1m30s", "1.5h") and
 * the protobuf JSON form ("1.5s"). Values are returned in milliseconds (possibly fractional).
 */

/** Nanoseconds per unit, as Go's time.ParseDuration has them (`µs` is U+00B5, `μs` U+03BC). */
const UNIT_NS: Readonly<Record<string, bigint>> = {
  ns: 1n,
  us: 1_000n,
  'µs': 1_000n,
  'μs': 1_000n,
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};

const PART = /(\d*)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)/y;

/**
 * Parses a duration; returns the error text instead of throwing so validators can report it.
 * Parts are summed in integer nanoseconds, as Go does, so "1.1s" is exactly 1100ms.
 */
export function parseDuration(text: string): { ms: number } | { error: string } {
  const input = text.trim();
  if (input === '') return { error: 'empty duration' };
  if (input === '0') return { ms: 0 };
  const invalid = { error: `invalid duration "${text}": expected a number and a unit (ms, s, m, h), e.g. "5s" or "100ms"` };
  let totalNs = 0n;
  PART.lastIndex = 0;
  while (PART.lastIndex < input.length) {
    const at = PART.lastIndex;
    const m = PART.exec(input);
    if (m === null || m.index !== at) return invalid;
    const whole = m[1]!;
    const fraction = m[2] ?? '';
    if (whole === '' && fraction === '') return invalid;
    const unit = UNIT_NS[m[3]!]!;
    totalNs += BigInt(whole === '' ? 0 : whole) * unit;
    if (fraction !== '') totalNs += (BigInt(fraction) * unit) / 10n ** BigInt(fraction.length);
  }
  return { ms: Number(totalNs) / 1e6 };
}

/** Formats milliseconds compactly for logs and config dumps ("1.5s", "250ms", "0s"). */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms >= 1000) return `${ms / 1000}s`;
  return `${ms}ms`;
}
