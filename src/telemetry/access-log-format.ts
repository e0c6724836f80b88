/**
 * Envoy access-log formats, compiled once at config time. A format string mixes literal text
 * with command operators, `%COMMAND%`, `%COMMAND(arg)%` or `%COMMAND(arg):N%` (N truncates),
 * and `%%` for a literal percent sign, as Envoy's substitution formatter reads it. Compiling
 * turns it into literal pieces and one value function per operator, so formatting a record is a
 * walk over two arrays: no parsing, no lookups, no per-record objects (only the strings of the
 * line; the start time's text up to the second is cached).
 *
 * One compiled format serves both record kinds the data path hands over: an HTTP request
 * (`StreamInfo`) and a TCP connection (`TcpSessionInfo`). Each operator compiles to a pair of
 * extractors, one per kind, and the formatter picks the array for the record's kind; operators
 * that mean nothing for TCP (headers, protocol, details) give what Envoy's TCP logs print.
 *
 * Values: an unset value is `-` in text and `null` in JSON. In JSON a field whose value is exactly
 * one operator keeps its type (numbers stay numbers); anything else renders as a string.
 * Unknown operators and malformed syntax are refused at compile time with a `CONFIG_INVALID`
 * SkiffError naming the operator and its column (1-based offset of its opening `%`).
 */
import { hostname } from 'node:os';
import { hostPort, unmappedAddress } from '../core/addresses.js';
import { closest } from '../core/did-you-mean.js';
import { SkiffError } from '../core/errors.js';
import { flagsText } from '../core/response-flags.js';
import { StreamInfo } from '../http/stream.js';
import type { TcpSessionInfo } from '../tcp/tcp-proxy.js';

/** A finished request or connection, as the data path hands it to telemetry. */
export type AccessLogRecord = StreamInfo | TcpSessionInfo;

/** Formats one record into one log entry (its trailing newline is part of the format). */
export type AccessLogFormatter = (record: AccessLogRecord) => string;

/** Envoy's json_format dictionary: operator strings, constant numbers, nested dictionaries. */
export interface JsonFormatFields {
  readonly [key: string]: string | number | JsonFormatFields;
}

/** Istio's default TEXT format (pilot/pkg/model/telemetry_logging.go, Istio 1.9 onwards). */
export const ISTIO_DEFAULT_TEXT_FORMAT =
  '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% ' +
  '%RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" ' +
  '%BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" ' +
  '"%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% ' +
  '%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n';

/** Istio's default JSON fields (EnvoyJSONLogFormatIstio in the same file). */
export const ISTIO_DEFAULT_JSON_FORMAT: Readonly<Record<string, string>> = Object.freeze({
  start_time: '%START_TIME%',
  route_name: '%ROUTE_NAME%',
  method: '%REQ(:METHOD)%',
  path: '%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%',
  protocol: '%PROTOCOL%',
  response_code: '%RESPONSE_CODE%',
  response_flags: '%RESPONSE_FLAGS%',
  response_code_details: '%RESPONSE_CODE_DETAILS%',
  connection_termination_details: '%CONNECTION_TERMINATION_DETAILS%',
  bytes_received: '%BYTES_RECEIVED%',
  bytes_sent: '%BYTES_SENT%',
  duration: '%DURATION%',
  upstream_service_time: '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%',
  x_forwarded_for: '%REQ(X-FORWARDED-FOR)%',
  user_agent: '%REQ(USER-AGENT)%',
  request_id: '%REQ(X-REQUEST-ID)%',
  authority: '%REQ(:AUTHORITY)%',
  upstream_host: '%UPSTREAM_HOST%',
  upstream_cluster: '%UPSTREAM_CLUSTER_RAW%',
  upstream_local_address: '%UPSTREAM_LOCAL_ADDRESS%',
  downstream_local_address: '%DOWNSTREAM_LOCAL_ADDRESS%',
  downstream_remote_address: '%DOWNSTREAM_REMOTE_ADDRESS%',
  requested_server_name: '%REQUESTED_SERVER_NAME%',
  upstream_transport_failure_reason: '%UPSTREAM_TRANSPORT_FAILURE_REASON%',
});

/** Compiles an Envoy format string. Throws a CONFIG_INVALID SkiffError on a bad operator. */
export function compileTextFormat(format: string): AccessLogFormatter {
  const { literals, ops } = parseFormat(format, 'access log format');
  const http = ops.map((o) => o.http);
  const tcp = ops.map((o) => o.tcp);
  return (record) => (record instanceof StreamInfo ? renderText(literals, http, record) : renderText(literals, tcp, record));
}

/**
 * Compiles Envoy's json_format: one JSON object per record, keys sorted (Envoy always sorts
 * them), followed by a newline. Throws a CONFIG_INVALID SkiffError naming the field on a bad value.
 */
export function compileJsonFormat(fields: JsonFormatFields): AccessLogFormatter {
  const root = compileJsonObject(fields, '');
  return (record) => (record instanceof StreamInfo ? root.http(record) : root.tcp(record)) + '\n';
}

// === impl values ===

/** An operator's value for one record: null is unset. */
type Value = string | number | null;

/** One operator, compiled for both record kinds. */
interface Extractor {
  readonly http: (s: StreamInfo) => Value;
  readonly tcp: (t: TcpSessionInfo) => Value;
}

const unset = (): null => null;

/** '' and absent are unset, as Envoy's stream-info operators report them. */
function text(v: string | undefined): string | null {
  return v === undefined || v === '' ? null : v;
}

function renderText<R>(literals: readonly string[], ops: ReadonlyArray<(r: R) => Value>, record: R): string {
  let out = literals[0]!;
  for (let i = 0; i < ops.length; i++) {
    const v = ops[i]!(record);
    out += (v === null ? '-' : typeof v === 'number' ? String(v) : v) + literals[i + 1]!;
  }
  return out;
}

function jsonValue(v: Value): string {
  return v === null ? 'null' : typeof v === 'number' ? String(v) : JSON.stringify(v);
}

// === impl parsing ===

interface ParsedFormat {
  /** Invariant: `literals.length === ops.length + 1`; literal i precedes operator i. */
  readonly literals: readonly string[];
  readonly ops: readonly Extractor[];
}

/** Envoy's command syntax: upper-case name, optional (argument without ')'), optional :length. */
const COMMAND = /%([A-Z0-9_]+)(?:\(([^)]*)\))?(?::([0-9]+))?%/y;

function parseFormat(format: string, where: string): ParsedFormat {
  const literals: string[] = [];
  const ops: Extractor[] = [];
  let literal = '';
  let i = 0;
  while (i < format.length) {
    const pct = format.indexOf('%', i);
    if (pct === -1) {
      literal += format.slice(i);
      break;
    }
    literal += format.slice(i, pct);
    if (format.charCodeAt(pct + 1) === 0x25) {
      literal += '%';
      i = pct + 2;
      continue;
    }
    COMMAND.lastIndex = pct;
    const m = COMMAND.exec(format);
    if (m === null) {
      const near = format.slice(pct, pct + 24).split('\n')[0]!;
      throw new SkiffError(
        'CONFIG_INVALID',
        `${where}: invalid operator at column ${pct + 1} near ${JSON.stringify(near)}: expected %COMMAND%, %COMMAND(arg)% or %COMMAND(arg):N% (upper case); write %% for a literal %`,
      );
    }
    ops.push(compileOperator(m[0], m[1]!, m[2], m[3], pct + 1, where));
    literals.push(literal);
    literal = '';
    i = pct + m[0].length;
  }
  literals.push(literal);
  return { literals, ops };
}

function compileOperator(token: string, command: string, arg: string | undefined, length: string | undefined, column: number, where: string): Extractor {
  const at = `${where}: operator ${token} at column ${column}`;
  const def = OPERATORS.get(command);
  if (def === undefined) {
    if (NOT_RECORDED.has(command)) {
      throw new SkiffError('CONFIG_INVALID', `${at}: not supported (skiff does not record what it reports)`);
    }
    const near = closest(command, OPERATORS.keys());
    const hint = near === undefined ? '' : ` (did you mean %${near}%?)`;
    throw new SkiffError('CONFIG_INVALID', `${where}: unknown operator ${token} at column ${column}${hint}`);
  }
  if (def.arg === 'none' && arg !== undefined) throw new SkiffError('CONFIG_INVALID', `${at}: takes no argument`);
  if (def.arg === 'required' && (arg === undefined || arg === '')) {
    throw new SkiffError('CONFIG_INVALID', `${at}: needs an argument, e.g. %${command}(X-REQUEST-ID)%`);
  }
  if (length !== undefined && !def.truncatable) throw new SkiffError('CONFIG_INVALID', `${at}: cannot be truncated (:${length})`);
  const fail = (why: string): never => {
    throw new SkiffError('CONFIG_INVALID', `${at}: ${why}`);
  };
  const ex = def.build(arg, fail);
  return length === undefined ? ex : truncated(ex, Number(length));
}

function truncated(ex: Extractor, max: number): Extractor {
  const cut = (v: Value): Value => (typeof v === 'string' && v.length > max ? v.slice(0, max) : v);
  return { http: (s) => cut(ex.http(s)), tcp: (t) => cut(ex.tcp(t)) };
}

// === impl JSON ===

interface JsonNode {
  readonly http: (s: StreamInfo) => string;
  readonly tcp: (t: TcpSessionInfo) => string;
}

function compileJsonObject(fields: JsonFormatFields, path: string): JsonNode {
  const keys = Object.keys(fields).sort();
  const prefixes = keys.map((k, i) => (i === 0 ? '' : ',') + JSON.stringify(k) + ':');
  const children = keys.map((k) => compileJsonValue(fields[k], path === '' ? k : `${path}.${k}`));
  return {
    http: (s) => {
      let out = '{';
      for (let i = 0; i < children.length; i++) out += prefixes[i]! + children[i]!.http(s);
      return out + '}';
    },
    tcp: (t) => {
      let out = '{';
      for (let i = 0; i < children.length; i++) out += prefixes[i]! + children[i]!.tcp(t);
      return out + '}';
    },
  };
}

function compileJsonValue(value: unknown, path: string): JsonNode {
  if (typeof value === 'number' && Number.isFinite(value)) {
    const constant = JSON.stringify(value);
    return { http: () => constant, tcp: () => constant };
  }
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) return compileJsonObject(value as JsonFormatFields, path);
  if (typeof value !== 'string') {
    throw new SkiffError('CONFIG_INVALID', `access log JSON format field "${path}": values must be strings (with operators), numbers or objects`);
  }
  const { literals, ops } = parseFormat(value, `access log JSON format field "${path}"`);
  if (ops.length === 0) {
    const constant = JSON.stringify(literals[0]);
    return { http: () => constant, tcp: () => constant };
  }
  if (ops.length === 1 && literals[0] === '' && literals[1] === '') {
    const op = ops[0]!;
    return { http: (s) => jsonValue(op.http(s)), tcp: (t) => jsonValue(op.tcp(t)) };
  }
  const http = ops.map((o) => o.http);
  const tcp = ops.map((o) => o.tcp);
  return {
    http: (s) => JSON.stringify(renderText(literals, http, s)),
    tcp: (t) => JSON.stringify(renderText(literals, tcp, t)),
  };
}

// === impl operators ===

interface OperatorDef {
  /** none: `%X%` only; required: `%X(arg)%`; optional: either. */
  readonly arg: 'none' | 'required' | 'optional';
  /** `%X(...):N%` truncates the value to N characters. */
  readonly truncatable: boolean;
  /** Builds the extractors; `fail` refuses a bad argument (it throws). */
  readonly build: (arg: string | undefined, fail: (why: string) => never) => Extractor;
}

/** An operator without argument; `tcp` defaults to unset. */
function field(http: (s: StreamInfo) => Value, tcp: (t: TcpSessionInfo) => Value = unset): OperatorDef {
  const ex: Extractor = { http, tcp };
  return { arg: 'none', truncatable: false, build: () => ex };
}

/** `ip:port`, IPv6 bracketed, as Envoy prints socket addresses; unset without an address. */
function ipPort(address: string, port: number): string | null {
  if (address === '') return null;
  return hostPort(unmappedAddress(address), port);
}

function ipOnly(address: string): string | null {
  return address === '' ? null : unmappedAddress(address);
}

/** Envoy's %DURATION%: whole milliseconds (truncated) to the end, or so far when not ended. */
function elapsedMs(startMs: number, endMs: number): number {
  return Math.floor((endMs === 0 ? performance.now() : endMs) - startMs);
}

function protocolOf(s: StreamInfo): string {
  const v = s.request?.httpVersion;
  return v === undefined ? '-' : v === '2' ? 'HTTP/2' : `HTTP/${v}`;
}


/** The identity when it is a URI SAN (at gateways it may be a DNS SAN or a subject instead). */
function uriSan(identity: string | undefined): string | null {
  return identity !== undefined && /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(identity) ? identity : null;
}

type HeaderSource = 'request' | 'response' | 'trailer';

/** `%REQ(X?Y)%` and kin: header X, else Y; pseudo-headers of the request come from its facts. */
function headerOperator(source: HeaderSource, withoutQuery = false): OperatorDef {
  return {
    arg: 'required',
    truncatable: true,
    build: (arg, fail) => {
      const names = arg!.split('?');
      if (names.length > 2) fail('at most one alternative header (X?Y)');
      if (names.some((n) => n === '' || /[\r\n\0]/.test(n))) fail('empty or invalid header name');
      const main = headerLookup(source, names[0]!.toLowerCase());
      const alt = names.length === 2 ? headerLookup(source, names[1]!.toLowerCase()) : null;
      const lookup = alt === null ? main : (s: StreamInfo): string | undefined => main(s) ?? alt(s);
      const http = withoutQuery
        ? (s: StreamInfo): Value => {
            const v = lookup(s);
            if (v === undefined) return null;
            const q = v.indexOf('?');
            return q === -1 ? v : v.slice(0, q);
          }
        : (s: StreamInfo): Value => lookup(s) ?? null;
      return { http, tcp: unset };
    },
  };
}

function headerLookup(source: HeaderSource, name: string): (s: StreamInfo) => string | undefined {
  if (source === 'trailer') return (s) => s.responseTrailers?.get(name);
  if (source === 'response') {
    if (name === ':status') return (s) => (s.responseHeaders === null || s.responseCode === 0 ? undefined : String(s.responseCode));
    return (s) => s.responseHeaders?.get(name);
  }
  switch (name) {
    case ':method':
      return (s) => s.request?.method;
    case ':path':
      return (s) => s.request?.path;
    case ':authority':
      return (s) => s.request?.authority;
    case ':scheme':
      return (s) => s.request?.scheme;
    default:
      return (s) => s.request?.headers.get(name);
  }
}

/** `%START_TIME%` (ISO 8601 UTC with milliseconds) or `%START_TIME(strftime)%`. */
function startTimeOperator(): OperatorDef {
  return {
    arg: 'optional',
    truncatable: false,
    build: (arg, fail) => {
      const render = arg === undefined || arg === '' ? isoClock() : strftimeClock(arg, fail);
      // TcpSessionInfo has only the monotonic start; timeOrigin puts it on the wall clock.
      return { http: (s) => render(s.startTime), tcp: (t) => render(Math.floor(performance.timeOrigin + t.startMs)) };
    },
  };
}

const OPERATORS: ReadonlyMap<string, OperatorDef> = new Map<string, OperatorDef>([
  ['START_TIME', startTimeOperator()],
  ['REQ', headerOperator('request')],
  ['REQUEST_HEADER', headerOperator('request')],
  ['REQ_WITHOUT_QUERY', headerOperator('request', true)],
  ['RESP', headerOperator('response')],
  ['RESPONSE_HEADER', headerOperator('response')],
  ['TRAILER', headerOperator('trailer')],
  ['RESPONSE_TRAILER', headerOperator('trailer')],
  ['METHOD', field((s) => text(s.request?.method))],
  // Envoy prints `-` (a string even in JSON) where there is no protocol, as for TCP.
  ['PROTOCOL', field(protocolOf, () => '-')],
  ['RESPONSE_CODE', field((s) => s.responseCode, () => 0)],
  ['RESPONSE_FLAGS', field((s) => flagsText(s.responseFlags), (t) => flagsText(t.responseFlags))],
  ['RESPONSE_CODE_DETAILS', field((s) => text(s.responseCodeDetails))],
  // Neither record carries L4 termination details (Envoy sets them from filters such as RBAC).
  ['CONNECTION_TERMINATION_DETAILS', field(unset)],
  // Envoy writes the reason with spaces as underscores (delayed_connect_error:_111).
  ['UPSTREAM_TRANSPORT_FAILURE_REASON', field((s) => text(s.upstreamTransportFailureReason.replace(/ /g, '_')))],
  ['BYTES_RECEIVED', field((s) => s.bytesReceived, (t) => t.bytesReceived)],
  ['BYTES_SENT', field((s) => s.bytesSent, (t) => t.bytesSent)],
  ['DURATION', field((s) => elapsedMs(s.startMs, s.endMs), (t) => elapsedMs(t.startMs, t.endMs))],
  // Phase timings are not recorded: always unset.
  ['REQUEST_DURATION', field(unset)],
  ['REQUEST_TX_DURATION', field(unset)],
  ['RESPONSE_DURATION', field(unset)],
  ['RESPONSE_TX_DURATION', field(unset)],
  ['UPSTREAM_HOST', field((s) => text(s.upstreamHost), (t) => text(t.upstreamHost))],
  ['UPSTREAM_REMOTE_ADDRESS', field((s) => text(s.upstreamHost), (t) => text(t.upstreamHost))],
  // skiff has no alt_stat_name, so both name the cluster.
  ['UPSTREAM_CLUSTER', field((s) => text(s.upstreamCluster), (t) => text(t.upstreamCluster))],
  ['UPSTREAM_CLUSTER_RAW', field((s) => text(s.upstreamCluster), (t) => text(t.upstreamCluster))],
  ['UPSTREAM_LOCAL_ADDRESS', field((s) => text(s.upstreamLocalAddress))],
  [
    'DOWNSTREAM_LOCAL_ADDRESS',
    field((s) => ipPort(s.downstreamLocalAddress, s.downstreamLocalPort), (t) => ipPort(t.downstreamLocalAddress, t.downstreamLocalPort)),
  ],
  ['DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT', field((s) => ipOnly(s.downstreamLocalAddress), (t) => ipOnly(t.downstreamLocalAddress))],
  ['DOWNSTREAM_LOCAL_PORT', field((s) => s.downstreamLocalPort, (t) => t.downstreamLocalPort)],
  // A TcpSessionInfo keeps the client's address without its port.
  ['DOWNSTREAM_REMOTE_ADDRESS', field((s) => ipPort(s.downstreamRemoteAddress, s.downstreamRemotePort), (t) => ipOnly(t.downstreamRemoteAddress))],
  ['DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT', field((s) => ipOnly(s.downstreamRemoteAddress), (t) => ipOnly(t.downstreamRemoteAddress))],
  ['DOWNSTREAM_REMOTE_PORT', field((s) => s.downstreamRemotePort)],
  // No PROXY protocol or XFF-derived remote address in skiff: the direct peer is the remote.
  ['DOWNSTREAM_DIRECT_REMOTE_ADDRESS', field((s) => ipPort(s.downstreamRemoteAddress, s.downstreamRemotePort), (t) => ipOnly(t.downstreamRemoteAddress))],
  ['DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT', field((s) => ipOnly(s.downstreamRemoteAddress), (t) => ipOnly(t.downstreamRemoteAddress))],
  ['DOWNSTREAM_PEER_URI_SAN', field((s) => uriSan(s.connection.peer?.identity))],
  ['DOWNSTREAM_PEER_FINGERPRINT_256', field((s) => text(s.connection.peer?.certHash))],
  ['REQUESTED_SERVER_NAME', field((s) => text(s.connection.requestedServerName))],
  ['ROUTE_NAME', field((s) => text(s.routeName))],
  ['TRACE_ID', field((s) => s.trace?.traceId ?? null)],
  [
    'HOSTNAME',
    {
      arg: 'none',
      truncatable: false,
      build: () => {
        const name = hostname();
        return { http: () => name, tcp: () => name };
      },
    },
  ],
]);

/** Envoy operators whose data skiff's records do not carry: refused with that reason. */
const NOT_RECORDED: ReadonlySet<string> = new Set([
  'UPSTREAM_REQUEST_ATTEMPT_COUNT', 'UPSTREAM_PROTOCOL', 'CONNECTION_ID', 'UPSTREAM_CONNECTION_ID', 'VIRTUAL_CLUSTER_NAME',
  'LOCAL_REPLY_BODY', 'GRPC_STATUS', 'GRPC_STATUS_NUMBER', 'DYNAMIC_METADATA', 'CLUSTER_METADATA', 'UPSTREAM_METADATA',
  'FILTER_STATE', 'UPSTREAM_FILTER_STATE', 'REQUEST_HEADERS_BYTES', 'RESPONSE_HEADERS_BYTES', 'RESPONSE_TRAILERS_BYTES',
  'UPSTREAM_WIRE_BYTES_SENT', 'UPSTREAM_WIRE_BYTES_RECEIVED', 'UPSTREAM_HEADER_BYTES_SENT', 'UPSTREAM_HEADER_BYTES_RECEIVED',
  'DOWNSTREAM_WIRE_BYTES_SENT', 'DOWNSTREAM_WIRE_BYTES_RECEIVED', 'DOWNSTREAM_HEADER_BYTES_SENT', 'DOWNSTREAM_HEADER_BYTES_RECEIVED',
  'UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT', 'UPSTREAM_LOCAL_PORT', 'UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT', 'UPSTREAM_REMOTE_PORT',
  'DOWNSTREAM_LOCAL_URI_SAN', 'DOWNSTREAM_PEER_DNS_SAN', 'DOWNSTREAM_LOCAL_DNS_SAN', 'DOWNSTREAM_PEER_SUBJECT',
  'DOWNSTREAM_LOCAL_SUBJECT', 'DOWNSTREAM_TLS_SESSION_ID', 'DOWNSTREAM_TLS_CIPHER', 'DOWNSTREAM_TLS_VERSION',
  'DOWNSTREAM_PEER_FINGERPRINT_1', 'DOWNSTREAM_PEER_SERIAL', 'DOWNSTREAM_PEER_ISSUER', 'DOWNSTREAM_PEER_CERT',
  'DOWNSTREAM_PEER_CERT_V_START', 'DOWNSTREAM_PEER_CERT_V_END', 'UPSTREAM_TLS_VERSION', 'UPSTREAM_TLS_CIPHER',
]);

// === impl clocks ===

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

function pad3(n: number): string {
  return n < 10 ? `00${n}` : n < 100 ? `0${n}` : String(n);
}

/** Envoy's default START_TIME: `2026-01-01T00:00:00.000Z`. The part up to the second is cached. */
function isoClock(): (epochMs: number) => string {
  let second = Number.NaN;
  let prefix = '';
  return (epochMs) => {
    const s = Math.floor(epochMs / 1000);
    if (s !== second) {
      second = s;
      prefix = new Date(s * 1000).toISOString().slice(0, 20);
    }
    return `${prefix}${pad3(Math.floor(epochMs) - s * 1000)}Z`;
  };
}

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

function dayOfYear(d: Date): number {
  return Math.floor((d.getTime() - Date.UTC(d.getUTCFullYear(), 0, 1)) / 86_400_000) + 1;
}

/** strftime conversions, in UTC as Envoy formats START_TIME. */
const TIME_FIELDS: Readonly<Record<string, (d: Date) => string>> = {
  Y: (d) => String(d.getUTCFullYear()),
  y: (d) => pad2(d.getUTCFullYear() % 100),
  m: (d) => pad2(d.getUTCMonth() + 1),
  d: (d) => pad2(d.getUTCDate()),
  e: (d) => String(d.getUTCDate()).padStart(2, ' '),
  j: (d) => pad3(dayOfYear(d)),
  H: (d) => pad2(d.getUTCHours()),
  I: (d) => pad2(((d.getUTCHours() + 11) % 12) + 1),
  p: (d) => (d.getUTCHours() < 12 ? 'AM' : 'PM'),
  M: (d) => pad2(d.getUTCMinutes()),
  S: (d) => pad2(d.getUTCSeconds()),
  F: (d) => `${d.getUTCFullYear()}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())}`,
  T: (d) => `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())}`,
  R: (d) => `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}`,
  D: (d) => `${pad2(d.getUTCMonth() + 1)}/${pad2(d.getUTCDate())}/${pad2(d.getUTCFullYear() % 100)}`,
  a: (d) => DAYS[d.getUTCDay()]!.slice(0, 3),
  A: (d) => DAYS[d.getUTCDay()]!,
  b: (d) => MONTHS[d.getUTCMonth()]!.slice(0, 3),
  h: (d) => MONTHS[d.getUTCMonth()]!.slice(0, 3),
  B: (d) => MONTHS[d.getUTCMonth()]!,
  u: (d) => String(d.getUTCDay() === 0 ? 7 : d.getUTCDay()),
  w: (d) => String(d.getUTCDay()),
  s: (d) => String(d.getTime() / 1000),
  z: () => '+0000',
  Z: () => 'UTC',
};

/**
 * `%START_TIME(spec)%`: the strftime conversions above plus Envoy's `%s` (epoch seconds) and
 * `%f`/`%1f`…`%9f` (fraction digits; below a millisecond they are zeros). Everything but the
 * fractions is rendered once per second.
 */
function strftimeClock(spec: string, fail: (why: string) => never): (epochMs: number) => string {
  /** Strings, per-second conversions, and fraction widths (numbers), in order. */
  const parts: Array<string | ((d: Date) => string) | number> = [];
  let literal = '';
  for (let i = 0; i < spec.length; i++) {
    if (spec[i] !== '%') {
      literal += spec[i];
      continue;
    }
    let c = spec[i + 1];
    let width = 9;
    if (c !== undefined && c >= '1' && c <= '9' && spec[i + 2] === 'f') {
      width = Number(c);
      c = 'f';
      i++;
    }
    i++;
    if (c === '%' || c === 't') {
      literal += c === '%' ? '%' : '\t';
      continue;
    }
    if (c === undefined) fail('time format ends with a lone %');
    if (c === 'n') fail('a newline (%n) is not allowed in a time format');
    const conversion = c === 'f' ? width : TIME_FIELDS[c];
    if (conversion === undefined) fail(`unsupported time specifier %${c}`);
    parts.push(literal, conversion);
    literal = '';
  }
  parts.push(literal);
  const widths = parts.filter((p): p is number => typeof p === 'number');
  let second = Number.NaN;
  /** Invariant: `segments.length === widths.length + 1`, rendered for `second`. */
  let segments: string[] = [];
  return (epochMs) => {
    const s = Math.floor(epochMs / 1000);
    if (s !== second) {
      second = s;
      const d = new Date(s * 1000);
      segments = [''];
      for (const p of parts) {
        if (typeof p === 'number') segments.push('');
        else segments[segments.length - 1] += typeof p === 'string' ? p : p(d);
      }
    }
    const millis = pad3(Math.floor(epochMs) - s * 1000);
    let out = segments[0]!;
    for (let i = 0; i < widths.length; i++) {
      const w = widths[i]!;
      out += (w <= 3 ? millis.slice(0, w) : millis.padEnd(w, '0')) + segments[i + 1]!;
    }
    return out;
  };
}
