/**
 * Durations as Istio's CRDs accept them: Go duration strings ("5s", "100ms", "1m30s", "1.5h") and
 * the protobuf JSON form ("1.5s"). Values are returned in milliseconds (possibly fractional).
 */

const UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

const PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/y;

/** Parses a duration; returns the error text instead of throwing so validators can report it. */
export function parseDuration(text: string): { ms: number } | { error: string } {
  const input = text.trim();
  if (input === '') return { error: 'empty duration' };
  if (input === '0') return { ms: 0 };
  let total = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < input.length) {
    const at = PART.lastIndex;
    const m = PART.exec(input);
    if (m === null || m.index !== at) {
      return { error: `invalid duration "${text}": expected a number and a unit (ms, s, m, h), e.g. "5s" or "100ms"` };
    }
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
  }
  return { ms: total };
}

/** Formats milliseconds compactly for logs and config dumps ("1.5s", "250ms", "0s"). */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms >= 1000) return `${ms / 1000}s`;
  return `${ms}ms`;
}
