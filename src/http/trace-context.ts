/**
 * The trace a request belongs to, as propagated in W3C Trace Context and B3 headers.
 *
 * `startTrace` reads the incoming context (W3C `traceparent` first, then the single `b3` header,
 * then B3 multi headers) and gives this proxy a new span in it; `injectTrace` writes that span,
 * as the parent, onto the upstream request in every format. Both run on every request, so they
 * make one pass over the headers, keep no per-call objects beyond the context itself, and take
 * random ids from a pooled buffer.
 */
import { randomFillSync } from 'node:crypto';
import type { HeaderMap } from './headers.js';

/** One request's place in a trace. Ids are lowercase hex. */
export interface TraceContext {
  /** 32 hex digits (a 64-bit B3 id arrives left-padded with zeros). */
  readonly traceId: string;
  /** 16 hex digits: this proxy's span for the request, sent upstream as the parent. */
  readonly spanId: string;
  /** The span id the request arrived with; null when this proxy started the trace. */
  readonly parentSpanId: string | null;
  readonly sampled: boolean;
  /** W3C tracestate as received, passed on unchanged; null when absent. */
  readonly traceState: string | null;
  /** The header formats written upstream (TRACE_W3C, TRACE_B3, TRACE_B3_SINGLE, or'ed). */
  readonly formats: number;
}

/** W3C `traceparent` / `tracestate`. */
export const TRACE_W3C = 1;
/** B3 multi-header: `x-b3-traceid`, `x-b3-spanid`, `x-b3-parentspanid`, `x-b3-sampled`. */
export const TRACE_B3 = 2;
/** The single `b3` header. */
export const TRACE_B3_SINGLE = 4;

/**
 * Reads the trace context a request carries and starts this proxy's span in it.
 *
 * Precedence: a valid W3C `traceparent` (version 00, lowercase hex, non-zero ids) with its
 * `tracestate`; else a valid single `b3` header; else valid `x-b3-traceid` + `x-b3-spanid`.
 * Invalid headers are ignored as if absent. A sampling decision that arrived (traceparent flags,
 * b3 `0`/`1`/`d`, `x-b3-sampled`, `x-b3-flags: 1`) is kept, even on its own without ids;
 * without one the request is sampled with probability `samplingPercent / 100`.
 */
export function startTrace(headers: HeaderMap, samplingPercent: number, defaultFormats: number = TRACE_W3C): TraceContext {
  scanTraceHeaders(headers);
  // Propagation answers in the formats the request came with (each format's headers are
  // replaced, never left stale); a trace starting here uses the provider's (`defaultFormats`).
  const arrived = (tpHeader !== undefined ? TRACE_W3C : 0) | (b3Header !== undefined ? TRACE_B3_SINGLE : 0)
    | (xTraceId !== undefined || xSpanId !== undefined || xSampled !== undefined || xFlags !== undefined ? TRACE_B3 : 0);
  const found = (tpHeader !== undefined && readTraceparent(tpHeader))
    || (b3Header !== undefined && readB3Single(b3Header))
    || readB3Multi();
  const decision = inDecision === NONE ? (sampleByPercent(samplingPercent) ? YES : NO) : inDecision;
  const ctx: TraceContext = {
    traceId: found ? inTraceId : randomHex(16),
    spanId: randomHex(8),
    parentSpanId: found ? inSpanId : null,
    sampled: decision === YES,
    traceState: found ? inTraceState : null,
    formats: arrived === 0 ? defaultFormats : arrived,
  };
  clearScratch();
  return ctx;
}

/**
 * Writes `ctx` onto an upstream request with this proxy's span as the parent, in its formats:
 * W3C `traceparent` and `tracestate` (the one received; a stale one is removed); B3
 * `x-b3-traceid` / `x-b3-spanid` / `x-b3-parentspanid` (removed when the trace started here) /
 * `x-b3-sampled`; the single `b3`. Each replaces any previous value. B3 trace ids whose upper 64
 * bits are zero go out in their 16-digit form, as they came.
 */
export function injectTrace(headers: HeaderMap, ctx: TraceContext): void {
  const flag = ctx.sampled ? '1' : '0';
  const formats = ctx.formats;
  if ((formats & TRACE_W3C) !== 0) {
    headers.set('traceparent', `00-${ctx.traceId}-${ctx.spanId}-0${flag}`);
    if (ctx.traceState !== null) headers.set('tracestate', ctx.traceState);
    else headers.remove('tracestate');
  }
  if ((formats & (TRACE_B3 | TRACE_B3_SINGLE)) === 0) return;
  const b3TraceId = ctx.traceId.startsWith(ZERO_64) ? ctx.traceId.slice(16) : ctx.traceId;
  if ((formats & TRACE_B3) !== 0) {
    headers.set('x-b3-traceid', b3TraceId);
    headers.set('x-b3-spanid', ctx.spanId);
    if (ctx.parentSpanId !== null) headers.set('x-b3-parentspanid', ctx.parentSpanId);
    else headers.remove('x-b3-parentspanid');
    headers.set('x-b3-sampled', flag);
    // A debug flag left from an overridden context would turn an unsampled trace into a sampled one.
    if (!ctx.sampled) headers.remove('x-b3-flags');
  }
  if ((formats & TRACE_B3_SINGLE) !== 0) {
    headers.set('b3', ctx.parentSpanId === null ? `${b3TraceId}-${ctx.spanId}-${flag}` : `${b3TraceId}-${ctx.spanId}-${flag}-${ctx.parentSpanId}`);
  }
}

// === impl extraction ===

const NONE = 0;
const NO = 1;
const YES = 2;
type Decision = typeof NONE | typeof NO | typeof YES;

const ZERO_64 = '0000000000000000';
const ZERO_128 = ZERO_64 + ZERO_64;

/*
 * Scratch state of one startTrace call: the trace headers found by scanTraceHeaders, and the
 * context the readers accepted. Module-level so extraction allocates nothing; valid only within
 * a startTrace call, which runs synchronously and clears it before returning.
 */
let tpHeader: string | undefined;
let tsHeader: string | undefined;
let b3Header: string | undefined;
let xTraceId: string | undefined;
let xSpanId: string | undefined;
let xSampled: string | undefined;
let xFlags: string | undefined;
let inTraceId = '';
let inSpanId = '';
let inTraceState: string | null = null;
let inDecision: Decision = NONE;

function clearScratch(): void {
  tpHeader = tsHeader = b3Header = xTraceId = xSpanId = xSampled = xFlags = undefined;
  inTraceId = inSpanId = '';
  inTraceState = null;
  inDecision = NONE;
}

/** One pass over the header names (switching on length first) instead of a lookup per header. */
function scanTraceHeaders(headers: HeaderMap): void {
  const names = headers.names;
  const values = headers.values;
  for (let i = 0; i < names.length; i++) {
    const n = names[i]!;
    switch (n.length) {
      case 2:
        if (n === 'b3' && b3Header === undefined) b3Header = values[i];
        break;
      case 10:
        if (n === 'tracestate') tsHeader = tsHeader === undefined ? values[i] : `${tsHeader},${values[i]}`;
        else if (n === 'x-b3-flags' && xFlags === undefined) xFlags = values[i];
        break;
      case 11:
        if (n === 'traceparent' && tpHeader === undefined) tpHeader = values[i];
        else if (n === 'x-b3-spanid' && xSpanId === undefined) xSpanId = values[i];
        break;
      case 12:
        if (n === 'x-b3-traceid' && xTraceId === undefined) xTraceId = values[i];
        else if (n === 'x-b3-sampled' && xSampled === undefined) xSampled = values[i];
        break;
    }
  }
}

/** `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, all lowercase, ids not all zero. */
function readTraceparent(v: string): boolean {
  if (v.length !== 55 || v.charCodeAt(0) !== 48 || v.charCodeAt(1) !== 48) return false;
  if (v.charCodeAt(2) !== 45 || v.charCodeAt(35) !== 45 || v.charCodeAt(52) !== 45) return false;
  if (hexKind(v, 3, 35) !== LOWER || hexKind(v, 36, 52) !== LOWER) return false;
  const flags = lowerHexDigit(v.charCodeAt(54));
  if (flags < 0 || lowerHexDigit(v.charCodeAt(53)) < 0) return false;
  inTraceId = v.slice(3, 35);
  inSpanId = v.slice(36, 52);
  inDecision = (flags & 1) === 1 ? YES : NO;
  inTraceState = tsHeader ?? null;
  return true;
}

/**
 * `{traceid}-{spanid}[-{sampling}[-{parentspanid}]]` with a 16 or 32 digit trace id, or the
 * decision alone (`0`, `1`, `d`). Returns true only when ids were accepted; a lone decision is
 * still recorded. Hex may be uppercase (B3 implementations differ); ids are lowercased.
 */
function readB3Single(v: string): boolean {
  if (v.length === 1) {
    const d = b3SingleDecision(v.charCodeAt(0));
    if (d !== NONE) inDecision = d;
    return false;
  }
  const t = v.length >= 33 && v.charCodeAt(32) === 45 ? 32 : 16;
  if (v.charCodeAt(t) !== 45) return false;
  const rest = v.length - t - 1; // spanid [-s [-parent]]
  if (rest !== 16 && rest !== 18 && rest !== 35) return false;
  if (rest >= 18 && v.charCodeAt(t + 17) !== 45) return false;
  if (rest === 35 && v.charCodeAt(t + 19) !== 45) return false;
  const tk = hexKind(v, 0, t);
  const sk = hexKind(v, t + 1, t + 17);
  if (tk === INVALID || sk === INVALID) return false;
  let d: Decision = NONE;
  if (rest >= 18) {
    d = b3SingleDecision(v.charCodeAt(t + 18));
    if (d === NONE) return false;
  }
  // The parent span id is the caller's parent; it must be well formed but is not kept.
  if (rest === 35 && hexKind(v, t + 20, t + 36) === INVALID) return false;
  inTraceId = b3TraceId(v, 0, t, tk);
  inSpanId = lowerSlice(v, t + 1, t + 17, sk);
  inDecision = d;
  return true;
}

/**
 * `x-b3-traceid` (16 or 32 hex) and `x-b3-spanid` (16 hex); the decision (`x-b3-sampled`,
 * `x-b3-flags`) even without them, unless a sampling-only `b3` header already gave one.
 */
function readB3Multi(): boolean {
  if (inDecision === NONE) {
    // x-b3-flags: 1 is debug, which implies sampled and overrides x-b3-sampled.
    if (xFlags === '1' || xSampled === '1' || xSampled === 'true') inDecision = YES;
    else if (xSampled === '0' || xSampled === 'false') inDecision = NO;
  }
  if (xTraceId === undefined || xSpanId === undefined) return false;
  const t = xTraceId.length;
  if ((t !== 16 && t !== 32) || xSpanId.length !== 16) return false;
  const tk = hexKind(xTraceId, 0, t);
  const sk = hexKind(xSpanId, 0, 16);
  if (tk === INVALID || sk === INVALID) return false;
  inTraceId = b3TraceId(xTraceId, 0, t, tk);
  inSpanId = lowerSlice(xSpanId, 0, 16, sk);
  return true;
}

function b3SingleDecision(c: number): Decision {
  if (c === 48 /* 0 */) return NO;
  if (c === 49 /* 1 */ || c === 100 /* d */) return YES;
  return NONE;
}

function b3TraceId(s: string, start: number, end: number, kind: HexKind): string {
  const id = lowerSlice(s, start, end, kind);
  return end - start === 16 ? ZERO_64 + id : id;
}

function lowerSlice(s: string, start: number, end: number, kind: HexKind): string {
  const out = start === 0 && end === s.length ? s : s.slice(start, end);
  return kind === MIXED ? out.toLowerCase() : out;
}

const INVALID = 0;
const LOWER = 1;
const MIXED = 2;
type HexKind = typeof INVALID | typeof LOWER | typeof MIXED;

/** Whether s[start, end) is hex and not all zeros (INVALID otherwise), and whether it has A-F. */
function hexKind(s: string, start: number, end: number): HexKind {
  let nonZero = false;
  let upper = false;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (c !== 48) nonZero = true;
    } else if (c >= 97 && c <= 102) {
      nonZero = true;
    } else if (c >= 65 && c <= 70) {
      nonZero = true;
      upper = true;
    } else {
      return INVALID;
    }
  }
  if (!nonZero) return INVALID;
  return upper ? MIXED : LOWER;
}

function lowerHexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

// === impl sampling and ids ===

function sampleByPercent(percent: number): boolean {
  if (percent >= 100) return true;
  if (!(percent > 0)) return false;
  return Math.random() * 100 < percent;
}

/*
 * Random ids come from a pool: 4 KiB of random bytes, hex-encoded in one call, handed out as
 * slices (one randomFillSync and one hex conversion per 512 span ids, instead of a crypto call
 * and a conversion per id). Invariant: hex digits before `poolOffset` have been handed out.
 */
const POOL_BYTES = 4096;
const poolBytes = Buffer.allocUnsafeSlow(POOL_BYTES);
let poolHex = '';
let poolOffset = 0;

/** `bytes` random bytes as lowercase hex, never all zeros (an invalid id in both formats). */
function randomHex(bytes: 8 | 16): string {
  const digits = bytes * 2;
  for (;;) {
    if (poolOffset + digits > poolHex.length) {
      randomFillSync(poolBytes);
      poolHex = poolBytes.toString('hex');
      poolOffset = 0;
    }
    const id = poolHex.slice(poolOffset, poolOffset + digits);
    poolOffset += digits;
    if (id !== ZERO_64 && id !== ZERO_128) return id;
  }
}
