/**
 * Trace context extraction (W3C traceparent/tracestate, B3 single, B3 multi), the sampling
 * decision, and the headers written upstream.
 */
import { describe, expect, it } from 'vitest';
import { HeaderMap } from '../../src/http/headers.js';
import { injectTrace, startTrace, TRACE_B3, TRACE_B3_SINGLE, TRACE_W3C, type TraceContext } from '../../src/http/trace-context.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';
const PARENT = '05e3ac9a4f6e3b90';
const HEX16 = /^[0-9a-f]{16}$/;
const HEX32 = /^[0-9a-f]{32}$/;
const ALL_FORMATS = TRACE_W3C | TRACE_B3 | TRACE_B3_SINGLE;

function headers(...pairs: [string, string][]): HeaderMap {
  return new HeaderMap(pairs.map((p) => p[0]), pairs.map((p) => p[1]));
}

/** A context to inject; W3C only unless `formats` says otherwise (startTrace's own default). */
function ctx(overrides: Partial<TraceContext> = {}): TraceContext {
  return { traceId: TRACE, spanId: 'aaaaaaaaaaaaaaaa', parentSpanId: SPAN, sampled: true, traceState: null, formats: TRACE_W3C, ...overrides };
}

describe('startTrace: W3C traceparent', () => {
  it('continues the trace with a new span whose parent is the incoming one', () => {
    const c = startTrace(headers(['traceparent', `00-${TRACE}-${SPAN}-01`], ['tracestate', 'congo=t61rcWkgMzE']), 0);
    expect(c.traceId).toBe(TRACE);
    expect(c.parentSpanId).toBe(SPAN);
    expect(c.spanId).toMatch(HEX16);
    expect(c.spanId).not.toBe(SPAN);
    expect(c.sampled).toBe(true);
    expect(c.traceState).toBe('congo=t61rcWkgMzE');
  });

  it('joins repeated tracestate headers and leaves it null when absent', () => {
    const c = startTrace(headers(['tracestate', 'a=1'], ['traceparent', `00-${TRACE}-${SPAN}-01`], ['tracestate', 'b=2']), 0);
    expect(c.traceState).toBe('a=1,b=2');
    expect(startTrace(headers(['traceparent', `00-${TRACE}-${SPAN}-01`]), 0).traceState).toBeNull();
  });

  it('reads the sampled bit of the flags', () => {
    expect(startTrace(headers(['traceparent', `00-${TRACE}-${SPAN}-00`]), 100).sampled).toBe(false);
    expect(startTrace(headers(['traceparent', `00-${TRACE}-${SPAN}-03`]), 0).sampled).toBe(true);
    expect(startTrace(headers(['traceparent', `00-${TRACE}-${SPAN}-02`]), 100).sampled).toBe(false);
  });

  it.each([
    ['uppercase hex', `00-${TRACE.toUpperCase()}-${SPAN}-01`],
    ['zero trace id', `00-${'0'.repeat(32)}-${SPAN}-01`],
    ['zero span id', `00-${TRACE}-${'0'.repeat(16)}-01`],
    ['version ff', `ff-${TRACE}-${SPAN}-01`],
    ['version 01', `01-${TRACE}-${SPAN}-01`],
    ['too long', `00-${TRACE}-${SPAN}-01-extra`],
    ['short trace id', `00-${TRACE.slice(1)}-${SPAN}-01`],
    ['non-hex', `00-${TRACE.slice(0, 31)}g-${SPAN}-01`],
    ['bad separator', `00_${TRACE}-${SPAN}-01`],
    ['uppercase flags', `00-${TRACE}-${SPAN}-0A`],
    ['empty', ''],
  ])('ignores an invalid traceparent (%s) and its tracestate', (_name, value) => {
    const c = startTrace(headers(['traceparent', value], ['tracestate', 'a=1']), 0);
    expect(c.parentSpanId).toBeNull();
    expect(c.traceId).toMatch(HEX32);
    expect(c.traceId).not.toBe(TRACE);
    expect(c.traceState).toBeNull();
    expect(c.sampled).toBe(false);
  });

  it('falls back to B3 when traceparent is invalid', () => {
    const c = startTrace(headers(['traceparent', 'garbage'], ['x-b3-traceid', TRACE], ['x-b3-spanid', SPAN], ['x-b3-sampled', '1']), 0);
    expect(c).toMatchObject({ traceId: TRACE, parentSpanId: SPAN, sampled: true, traceState: null });
  });

  it('prefers traceparent over B3 headers', () => {
    const c = startTrace(headers(
      ['x-b3-traceid', '1'.repeat(32)], ['x-b3-spanid', '2'.repeat(16)], ['x-b3-sampled', '1'],
      ['b3', `${'3'.repeat(32)}-${'4'.repeat(16)}-1`],
      ['traceparent', `00-${TRACE}-${SPAN}-00`],
    ), 100);
    expect(c).toMatchObject({ traceId: TRACE, parentSpanId: SPAN, sampled: false });
  });
});

describe('startTrace: B3 single header', () => {
  it('reads trace id, span id, sampling and parent', () => {
    expect(startTrace(headers(['b3', `${TRACE}-${SPAN}-1-${PARENT}`]), 0)).toMatchObject({ traceId: TRACE, parentSpanId: SPAN, sampled: true });
    expect(startTrace(headers(['b3', `${TRACE}-${SPAN}-0`]), 100)).toMatchObject({ traceId: TRACE, parentSpanId: SPAN, sampled: false });
    expect(startTrace(headers(['b3', `${TRACE}-${SPAN}-d`]), 0)).toMatchObject({ traceId: TRACE, parentSpanId: SPAN, sampled: true });
  });

  it('defers to the sampling percentage without a sampling field', () => {
    expect(startTrace(headers(['b3', `${TRACE}-${SPAN}`]), 100)).toMatchObject({ traceId: TRACE, parentSpanId: SPAN, sampled: true });
    expect(startTrace(headers(['b3', `${TRACE}-${SPAN}`]), 0)).toMatchObject({ traceId: TRACE, parentSpanId: SPAN, sampled: false });
  });

  it('pads a 64-bit trace id to 32 digits', () => {
    expect(startTrace(headers(['b3', `a3ce929d0e0e4736-${SPAN}-1`]), 0).traceId).toBe('0000000000000000a3ce929d0e0e4736');
  });

  it('lowercases uppercase hex', () => {
    expect(startTrace(headers(['b3', `${TRACE.toUpperCase()}-${SPAN.toUpperCase()}-1`]), 0))
      .toMatchObject({ traceId: TRACE, parentSpanId: SPAN });
  });

  it('takes a sampling-only header as the decision for a new trace', () => {
    for (const [v, sampled, percent] of [['0', false, 100], ['1', true, 0], ['d', true, 0]] as const) {
      const c = startTrace(headers(['b3', v]), percent);
      expect(c.parentSpanId).toBeNull();
      expect(c.traceId).toMatch(HEX32);
      expect(c.sampled).toBe(sampled);
    }
  });

  it('lets a sampling-only b3 decide over x-b3-sampled', () => {
    const c = startTrace(headers(['b3', '0'], ['x-b3-traceid', TRACE], ['x-b3-spanid', SPAN], ['x-b3-sampled', '1']), 100);
    expect(c).toMatchObject({ traceId: TRACE, parentSpanId: SPAN, sampled: false });
  });

  it.each([
    ['bad sampling', `${TRACE}-${SPAN}-x`],
    ['short span id', `${TRACE}-${SPAN.slice(1)}-1`],
    ['24-digit trace id', `${TRACE.slice(8)}-${SPAN}-1`],
    ['zero trace id', `${'0'.repeat(32)}-${SPAN}-1`],
    ['zero span id', `${TRACE}-${'0'.repeat(16)}-1`],
    ['bad parent', `${TRACE}-${SPAN}-1-xyz`],
    ['parent without sampling', `${TRACE}-${SPAN}-${PARENT}`],
    ['bad single char', '2'],
    ['non-hex', `${TRACE.slice(0, 31)}z-${SPAN}-1`],
  ])('ignores an invalid b3 header (%s)', (_name, value) => {
    const c = startTrace(headers(['b3', value]), 0);
    expect(c.parentSpanId).toBeNull();
    expect(c.traceId).not.toBe(TRACE);
    expect(c.sampled).toBe(false);
  });

  it('falls back to B3 multi headers when b3 is invalid', () => {
    const c = startTrace(headers(['b3', 'nonsense'], ['x-b3-traceid', TRACE], ['x-b3-spanid', SPAN], ['x-b3-sampled', '1']), 0);
    expect(c).toMatchObject({ traceId: TRACE, parentSpanId: SPAN, sampled: true });
  });
});

describe('startTrace: B3 multi headers', () => {
  it('reads trace id and span id', () => {
    const c = startTrace(headers(['x-b3-traceid', TRACE], ['x-b3-spanid', SPAN], ['x-b3-parentspanid', PARENT], ['x-b3-sampled', '1']), 0);
    expect(c).toMatchObject({ traceId: TRACE, parentSpanId: SPAN, sampled: true, traceState: null });
    expect(c.spanId).toMatch(HEX16);
  });

  it('pads a 64-bit trace id', () => {
    const c = startTrace(headers(['x-b3-traceid', 'a3ce929d0e0e4736'], ['x-b3-spanid', SPAN]), 0);
    expect(c.traceId).toBe('0000000000000000a3ce929d0e0e4736');
  });

  it.each([
    ['1', 0, true], ['true', 0, true], ['0', 100, false], ['false', 100, false],
  ] as const)('honours x-b3-sampled: %s (at %i%%)', (value, percent, sampled) => {
    expect(startTrace(headers(['x-b3-traceid', TRACE], ['x-b3-spanid', SPAN], ['x-b3-sampled', value]), percent).sampled).toBe(sampled);
  });

  it('treats x-b3-flags: 1 (debug) as sampled, over x-b3-sampled: 0', () => {
    expect(startTrace(headers(['x-b3-traceid', TRACE], ['x-b3-spanid', SPAN], ['x-b3-sampled', '0'], ['x-b3-flags', '1']), 0).sampled).toBe(true);
  });

  it('keeps a decision that arrives without ids', () => {
    const off = startTrace(headers(['x-b3-sampled', '0']), 100);
    expect(off).toMatchObject({ parentSpanId: null, sampled: false });
    const on = startTrace(headers(['x-b3-sampled', '1']), 0);
    expect(on).toMatchObject({ parentSpanId: null, sampled: true });
  });

  it.each([
    ['missing span id', [['x-b3-traceid', TRACE]]],
    ['missing trace id', [['x-b3-spanid', SPAN]]],
    ['short span id', [['x-b3-traceid', TRACE], ['x-b3-spanid', SPAN.slice(2)]]],
    ['20-digit trace id', [['x-b3-traceid', TRACE.slice(12)], ['x-b3-spanid', SPAN]]],
    ['zero trace id', [['x-b3-traceid', '0'.repeat(16)], ['x-b3-spanid', SPAN]]],
    ['non-hex span id', [['x-b3-traceid', TRACE], ['x-b3-spanid', 'ghijklmnopqrstuv']]],
  ] as [string, [string, string][]][])('ignores invalid ids (%s)', (_name, pairs) => {
    const c = startTrace(headers(...pairs), 0);
    expect(c.parentSpanId).toBeNull();
    expect(c.traceId).not.toBe(TRACE);
  });
});

describe('startTrace: new traces and sampling', () => {
  it('starts a trace when nothing arrived', () => {
    const c = startTrace(headers(['host', 'reviews:9080']), 100);
    expect(c.traceId).toMatch(HEX32);
    expect(c.spanId).toMatch(HEX16);
    expect(c).toMatchObject({ parentSpanId: null, sampled: true, traceState: null });
    expect(startTrace(new HeaderMap(), 0).sampled).toBe(false);
  });

  it('makes distinct non-zero ids', () => {
    const spans = new Set<string>();
    const traces = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const c = startTrace(new HeaderMap(), 0);
      spans.add(c.spanId);
      traces.add(c.traceId);
      expect(c.spanId).not.toBe('0'.repeat(16));
    }
    expect(spans.size).toBe(2000);
    expect(traces.size).toBe(2000);
  });

  it('samples roughly samplingPercent of requests without a decision', () => {
    const n = 20_000;
    for (const percent of [1, 25, 50]) {
      let sampled = 0;
      for (let i = 0; i < n; i++) if (startTrace(new HeaderMap(), percent).sampled) sampled++;
      const expected = (n * percent) / 100;
      // Over 6 standard deviations of slack: fails by chance essentially never.
      const slack = 6 * Math.sqrt(n * (percent / 100) * (1 - percent / 100)) + 5;
      expect(Math.abs(sampled - expected)).toBeLessThan(slack);
    }
  });

  it('keeps an upstream decision at any percentage', () => {
    for (let i = 0; i < 200; i++) {
      expect(startTrace(headers(['traceparent', `00-${TRACE}-${SPAN}-00`]), 100).sampled).toBe(false);
      expect(startTrace(headers(['x-b3-traceid', TRACE], ['x-b3-spanid', SPAN], ['x-b3-sampled', '0']), 100).sampled).toBe(false);
      expect(startTrace(headers(['traceparent', `00-${TRACE}-${SPAN}-01`]), 0).sampled).toBe(true);
      expect(startTrace(headers(['x-b3-traceid', TRACE], ['x-b3-spanid', SPAN], ['x-b3-sampled', '1']), 0).sampled).toBe(true);
    }
  });
});

describe('startTrace: the formats to propagate', () => {
  it('is W3C when a traceparent arrived, whatever the default', () => {
    expect(startTrace(headers(['traceparent', `00-${TRACE}-${SPAN}-01`]), 0).formats).toBe(TRACE_W3C);
    expect(startTrace(headers(['traceparent', `00-${TRACE}-${SPAN}-01`]), 0, TRACE_B3).formats).toBe(TRACE_W3C);
  });

  it('is B3 multi when any x-b3-* header arrived, whatever the default', () => {
    expect(startTrace(headers(['x-b3-traceid', TRACE], ['x-b3-spanid', SPAN], ['x-b3-sampled', '1']), 0).formats).toBe(TRACE_B3);
    expect(startTrace(headers(['x-b3-traceid', TRACE], ['x-b3-spanid', SPAN]), 0, TRACE_W3C).formats).toBe(TRACE_B3);
  });

  it.each([
    ['x-b3-traceid', TRACE], ['x-b3-spanid', SPAN], ['x-b3-sampled', '0'], ['x-b3-flags', '1'],
  ])('counts %s on its own as B3 multi arriving', (name, value) => {
    expect(startTrace(headers([name, value]), 0).formats).toBe(TRACE_B3);
  });

  it('is the single b3 header when b3 arrived, also a sampling-only one', () => {
    expect(startTrace(headers(['b3', `${TRACE}-${SPAN}-1`]), 0).formats).toBe(TRACE_B3_SINGLE);
    expect(startTrace(headers(['b3', '0']), 0, TRACE_B3).formats).toBe(TRACE_B3_SINGLE);
  });

  it('is every format that arrived when several did', () => {
    const w3cAndB3 = headers(['traceparent', `00-${TRACE}-${SPAN}-01`], ['x-b3-traceid', TRACE], ['x-b3-spanid', SPAN]);
    expect(startTrace(w3cAndB3, 0).formats).toBe(TRACE_W3C | TRACE_B3);
    expect(startTrace(headers(['b3', `${TRACE}-${SPAN}-1`], ['x-b3-sampled', '1']), 0).formats).toBe(TRACE_B3 | TRACE_B3_SINGLE);
    const all = headers(['traceparent', `00-${TRACE}-${SPAN}-01`], ['b3', `${TRACE}-${SPAN}-1`], ['x-b3-traceid', TRACE], ['x-b3-spanid', SPAN]);
    expect(startTrace(all, 0, TRACE_B3).formats).toBe(ALL_FORMATS);
  });

  it('counts an invalid header as arrived, so that it is replaced rather than forwarded stale', () => {
    expect(startTrace(headers(['traceparent', 'garbage']), 0, TRACE_B3).formats).toBe(TRACE_W3C);
    expect(startTrace(headers(['b3', 'nonsense'], ['x-b3-traceid', TRACE], ['x-b3-spanid', SPAN]), 0).formats).toBe(TRACE_B3 | TRACE_B3_SINGLE);
  });

  it('is defaultFormats when no trace header arrived: W3C unless told otherwise', () => {
    expect(startTrace(headers(['host', 'reviews:9080']), 100).formats).toBe(TRACE_W3C);
    expect(startTrace(new HeaderMap(), 0).formats).toBe(TRACE_W3C);
    expect(startTrace(headers(['host', 'reviews:9080']), 100, TRACE_B3).formats).toBe(TRACE_B3);
    expect(startTrace(new HeaderMap(), 0, TRACE_W3C | TRACE_B3).formats).toBe(TRACE_W3C | TRACE_B3);
  });

  it('does not count tracestate or x-b3-parentspanid alone as a format arriving', () => {
    expect(startTrace(headers(['tracestate', 'a=1']), 0, TRACE_B3).formats).toBe(TRACE_B3);
    expect(startTrace(headers(['x-b3-parentspanid', PARENT]), 0, TRACE_W3C).formats).toBe(TRACE_W3C);
  });
});

describe('injectTrace', () => {
  it('writes only traceparent and tracestate for W3C, with this proxy as the parent', () => {
    const h = headers(['host', 'reviews:9080']);
    injectTrace(h, ctx({ traceState: 'congo=t61rcWkgMzE', formats: TRACE_W3C }));
    expect(h.toObject()).toEqual({
      'host': 'reviews:9080',
      'traceparent': `00-${TRACE}-aaaaaaaaaaaaaaaa-01`,
      'tracestate': 'congo=t61rcWkgMzE',
    });
  });

  it('writes only the x-b3-* headers for B3 multi, with this proxy as the parent', () => {
    const h = headers(['host', 'reviews:9080']);
    injectTrace(h, ctx({ traceState: 'congo=t61rcWkgMzE', formats: TRACE_B3 }));
    expect(h.toObject()).toEqual({
      'host': 'reviews:9080',
      'x-b3-traceid': TRACE,
      'x-b3-spanid': 'aaaaaaaaaaaaaaaa',
      'x-b3-parentspanid': SPAN,
      'x-b3-sampled': '1',
    });
  });

  it('writes only the single b3 header for B3 single, with the parent when there is one', () => {
    const withParent = headers(['host', 'reviews:9080']);
    injectTrace(withParent, ctx({ traceState: 'congo=t61rcWkgMzE', formats: TRACE_B3_SINGLE }));
    expect(withParent.toObject()).toEqual({ 'host': 'reviews:9080', 'b3': `${TRACE}-aaaaaaaaaaaaaaaa-1-${SPAN}` });
    const started = new HeaderMap();
    injectTrace(started, ctx({ parentSpanId: null, sampled: false, formats: TRACE_B3_SINGLE }));
    expect(started.toObject()).toEqual({ 'b3': `${TRACE}-aaaaaaaaaaaaaaaa-0` });
  });

  it('writes every format when all of them are asked for', () => {
    const h = headers(['host', 'reviews:9080']);
    injectTrace(h, ctx({ traceState: 'congo=t61rcWkgMzE', formats: ALL_FORMATS }));
    expect(h.toObject()).toEqual({
      'host': 'reviews:9080',
      'traceparent': `00-${TRACE}-aaaaaaaaaaaaaaaa-01`,
      'tracestate': 'congo=t61rcWkgMzE',
      'x-b3-traceid': TRACE,
      'x-b3-spanid': 'aaaaaaaaaaaaaaaa',
      'x-b3-parentspanid': SPAN,
      'x-b3-sampled': '1',
      'b3': `${TRACE}-aaaaaaaaaaaaaaaa-1-${SPAN}`,
    });
  });

  it('replaces stale trace headers instead of appending', () => {
    const h = headers(
      ['traceparent', `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01`], ['traceparent', 'dup'],
      ['tracestate', 'old=1'],
      ['x-b3-traceid', '1'.repeat(32)], ['x-b3-spanid', '2'.repeat(16)], ['x-b3-parentspanid', '3'.repeat(16)],
      ['x-b3-sampled', '1'], ['x-b3-flags', '1'],
      ['b3', `${'1'.repeat(32)}-${'2'.repeat(16)}-1`],
    );
    injectTrace(h, ctx({ parentSpanId: null, sampled: false, formats: ALL_FORMATS }));
    expect(h.toObject()).toEqual({
      'traceparent': `00-${TRACE}-aaaaaaaaaaaaaaaa-00`,
      'x-b3-traceid': TRACE,
      'x-b3-spanid': 'aaaaaaaaaaaaaaaa',
      'x-b3-sampled': '0',
      'b3': `${TRACE}-aaaaaaaaaaaaaaaa-0`,
    });
    expect(h.count('traceparent')).toBe(1);
  });

  it('keeps x-b3-flags on a sampled trace and drops it on an unsampled one', () => {
    const sampled = headers(['x-b3-flags', '1']);
    injectTrace(sampled, ctx({ formats: TRACE_B3 }));
    expect(sampled.get('x-b3-flags')).toBe('1');
    const unsampled = headers(['x-b3-flags', '1']);
    injectTrace(unsampled, ctx({ sampled: false, formats: TRACE_B3 }));
    expect(unsampled.has('x-b3-flags')).toBe(false);
    expect(unsampled.get('x-b3-sampled')).toBe('0');
  });

  it('sends a padded 64-bit trace id in its 16-digit B3 form and 32 digits in traceparent', () => {
    const h = new HeaderMap();
    injectTrace(h, ctx({ traceId: '0000000000000000a3ce929d0e0e4736', formats: ALL_FORMATS }));
    expect(h.get('x-b3-traceid')).toBe('a3ce929d0e0e4736');
    expect(h.get('b3')).toBe(`a3ce929d0e0e4736-aaaaaaaaaaaaaaaa-1-${SPAN}`);
    expect(h.get('traceparent')).toBe('00-0000000000000000a3ce929d0e0e4736-aaaaaaaaaaaaaaaa-01');
  });

  it('round-trips: what one proxy injects, the next extracts as its parent, in the same format', () => {
    const first = startTrace(headers(['traceparent', `00-${TRACE}-${SPAN}-01`], ['tracestate', 'a=1']), 0);
    const upstream = new HeaderMap();
    injectTrace(upstream, first);
    const second = startTrace(upstream, 0, TRACE_B3);
    expect(second).toMatchObject({ traceId: TRACE, parentSpanId: first.spanId, sampled: true, traceState: 'a=1', formats: TRACE_W3C });

    const fresh = startTrace(new HeaderMap(), 100, TRACE_B3);
    const b3Upstream = new HeaderMap();
    injectTrace(b3Upstream, fresh);
    const next = startTrace(b3Upstream, 0);
    expect(next).toMatchObject({ traceId: fresh.traceId, parentSpanId: fresh.spanId, sampled: true, formats: TRACE_B3 });
  });
});

describe('startTrace then injectTrace: the headers sent upstream for each arrival', () => {
  /** What goes upstream when the request carried `pairs` (injected onto its own headers, as the router does). */
  function upstream(pairs: [string, string][], defaultFormats?: number): { sent: Record<string, string>; c: TraceContext } {
    const h = headers(['host', 'reviews:9080'], ...pairs);
    const c = startTrace(h, 100, defaultFormats);
    injectTrace(h, c);
    return { sent: h.toObject(), c };
  }

  it('answers a traceparent with W3C only: no x-b3-* and no b3 added', () => {
    const { sent, c } = upstream([['traceparent', `00-${TRACE}-${SPAN}-01`], ['tracestate', 'a=1']], TRACE_B3);
    expect(sent).toEqual({ 'host': 'reviews:9080', 'traceparent': `00-${TRACE}-${c.spanId}-01`, 'tracestate': 'a=1' });
  });

  it('answers x-b3-* with B3 multi only: no traceparent, tracestate or b3 added', () => {
    const { sent, c } = upstream([['x-b3-traceid', TRACE], ['x-b3-spanid', SPAN], ['x-b3-parentspanid', PARENT], ['x-b3-sampled', '0']]);
    expect(sent).toEqual({
      'host': 'reviews:9080',
      'x-b3-traceid': TRACE,
      'x-b3-spanid': c.spanId,
      'x-b3-parentspanid': SPAN,
      'x-b3-sampled': '0',
    });
  });

  it('answers a single b3 with a single b3 only: no traceparent or x-b3-* added', () => {
    const { sent, c } = upstream([['b3', `a3ce929d0e0e4736-${SPAN}-1`]]);
    expect(sent).toEqual({ 'host': 'reviews:9080', 'b3': `a3ce929d0e0e4736-${c.spanId}-1-${SPAN}` });
  });

  it('answers traceparent and x-b3-* with both, in the one trace traceparent gave, and no b3', () => {
    const { sent, c } = upstream([
      ['traceparent', `00-${TRACE}-${SPAN}-01`],
      ['x-b3-traceid', '1'.repeat(32)], ['x-b3-spanid', '2'.repeat(16)], ['x-b3-sampled', '0'],
    ]);
    expect(c).toMatchObject({ traceId: TRACE, parentSpanId: SPAN, sampled: true });
    expect(sent).toEqual({
      'host': 'reviews:9080',
      'traceparent': `00-${TRACE}-${c.spanId}-01`,
      'x-b3-traceid': TRACE,
      'x-b3-spanid': c.spanId,
      'x-b3-parentspanid': SPAN,
      'x-b3-sampled': '1',
    });
  });

  it('replaces an invalid traceparent that arrived, in the trace the B3 headers gave', () => {
    const { sent, c } = upstream([['traceparent', 'garbage'], ['x-b3-traceid', TRACE], ['x-b3-spanid', SPAN], ['x-b3-sampled', '1']]);
    expect(sent).toEqual({
      'host': 'reviews:9080',
      'traceparent': `00-${TRACE}-${c.spanId}-01`,
      'x-b3-traceid': TRACE,
      'x-b3-spanid': c.spanId,
      'x-b3-parentspanid': SPAN,
      'x-b3-sampled': '1',
    });
  });

  it('starts a trace in W3C by default when nothing arrived, with no B3 headers', () => {
    const { sent, c } = upstream([]);
    expect(sent).toEqual({ 'host': 'reviews:9080', 'traceparent': `00-${c.traceId}-${c.spanId}-01` });
  });

  it('starts a trace in B3 multi when that is the default, with no traceparent', () => {
    const { sent, c } = upstream([], TRACE_B3);
    expect(sent).toEqual({
      'host': 'reviews:9080',
      'x-b3-traceid': c.traceId,
      'x-b3-spanid': c.spanId,
      'x-b3-sampled': '1',
    });
  });
});
