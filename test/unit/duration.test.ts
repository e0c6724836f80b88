/** Durations as Istio CRDs accept them (Go duration strings and protobuf JSON "1.5s"). */
import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../src/core/duration.js';

describe('parseDuration', () => {
  it.each([
    ['5s', 5000],
    ['100ms', 100],
    ['1m30s', 90_000],
    ['1.5h', 5_400_000],
    ['0', 0],
    ['0s', 0],
    ['0.5s', 500],
    ['.5s', 500],
    ['1.s', 1000],
    ['2h45m', 9_900_000],
    ['1h1m1s1ms', 3_661_001],
    ['250us', 0.25],
    ['250µs', 0.25],
    ['250μs', 0.25],
    ['1500000ns', 1.5],
    ['10m', 600_000],
    ['86400s', 86_400_000],
  ])('%s is %d ms', (text, ms) => {
    expect(parseDuration(text)).toEqual({ ms });
  });

  it('sums decimal parts exactly, like Go (integer nanoseconds), with no floating-point residue', () => {
    expect(parseDuration('1.1s')).toEqual({ ms: 1100 });
    expect(parseDuration('0.3s')).toEqual({ ms: 300 });
    expect(parseDuration('2.3s')).toEqual({ ms: 2300 });
    expect(parseDuration('0.1s0.2s')).toEqual({ ms: 300 });
    expect(parseDuration('1.000000001s')).toEqual({ ms: 1000.000001 });
  });

  it('accepts surrounding whitespace', () => {
    expect(parseDuration(' 5s ')).toEqual({ ms: 5000 });
  });

  it.each(['5x', '5', '10 s', 's', '.s', '-5s', '+5s', '5s ms', '1e3s', '5S', '1d', 'ms5', '5s!'])('rejects %j', (text) => {
    expect(parseDuration(text)).toEqual({
      error: `invalid duration "${text}": expected a number and a unit (ms, s, m, h), e.g. "5s" or "100ms"`,
    });
  });

  it('rejects the empty string', () => {
    expect(parseDuration('')).toEqual({ error: 'empty duration' });
    expect(parseDuration('   ')).toEqual({ error: 'empty duration' });
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0s'],
    [5000, '5s'],
    [100, '100ms'],
    [1500, '1.5s'],
    [90_000, '90s'],
    [60_000, '1m'],
    [600_000, '10m'],
    [3_600_000, '1h'],
    [5_400_000, '90m'],
    [0.25, '0.25ms'],
  ])('%d ms is %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it('round-trips through parseDuration', () => {
    for (const ms of [0, 1, 250, 1000, 1500, 59_000, 60_000, 90_000, 3_600_000, 7_200_000]) {
      expect(parseDuration(formatDuration(ms))).toEqual({ ms });
    }
  });
});
