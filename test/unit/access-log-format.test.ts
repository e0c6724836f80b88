/** Envoy access-log formats compiled once and applied to real StreamInfo and TcpSessionInfo records. */
import { hostname } from 'node:os';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SkiffError } from '../../src/core/errors.js';
import { HeaderMap } from '../../src/http/headers.js';
import { StreamInfo } from '../../src/http/stream.js';
import { TcpSessionInfo } from '../../src/tcp/tcp-proxy.js';
import {
  compileJsonFormat,
  compileTextFormat,
  ISTIO_DEFAULT_JSON_FORMAT,
  ISTIO_DEFAULT_TEXT_FORMAT,
} from '../../src/telemetry/access-log-format.js';
import { connection, getRequest } from '../helpers/records.js';

const START = Date.UTC(2026, 0, 1, 0, 0, 0, 0);

/** A StreamInfo started at `startMs` (epoch) for a GET with the given request headers. */
function streamInfo(path: string, headers: Record<string, string>, startMs = START, conn = connection()): StreamInfo {
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(startMs);
  const info = new StreamInfo(conn);
  vi.useRealTimers();
  info.request = getRequest(path, 'reviews:9080', new HeaderMap(Object.keys(headers), Object.values(headers)));
  return info;
}

/** A request answered by the upstream, as a sidecar's outbound listener records it. */
function upstreamAnswered(): StreamInfo {
  const info = streamInfo('/api/items?page=2', { 'user-agent': 'curl/8.5.0', 'x-request-id': 'b6f1e2a0' });
  info.responseHeaders = new HeaderMap(['content-type', 'x-envoy-upstream-service-time'], ['application/json', '7']);
  info.responseCode = 200;
  info.responseCodeDetails = 'via_upstream';
  info.bytesSent = 295;
  info.upstreamHost = '10.0.0.5:9080';
  info.upstreamCluster = 'outbound|9080||reviews.default.svc.cluster.local';
  info.upstreamLocalAddress = '10.0.0.9:53412';
  info.routeName = 'default';
  info.endMs = info.startMs + 12.7;
  return info;
}

/** A local reply: no route (404 NR). */
function noRoute(): StreamInfo {
  const info = streamInfo('/nope', { 'user-agent': 'curl/8.5.0', 'x-request-id': 'c0ffee' });
  info.request = { ...info.request!, authority: 'unknown.example' };
  info.responseHeaders = new HeaderMap(['content-length'], ['0']);
  info.responseCode = 404;
  info.setFlag('NR');
  info.responseCodeDetails = 'route_not_found';
  info.endMs = info.startMs + 0.4;
  return info;
}

function tcpSession(): TcpSessionInfo {
  const info = new TcpSessionInfo('10.0.0.9', '10.96.0.20', 3306, 'outbound|3306||mysql.default.svc.cluster.local');
  info.upstreamHost = '10.0.0.7:3306';
  info.bytesReceived = 120;
  info.bytesSent = 3400;
  info.endMs = info.startMs + 50.2;
  info.details = 'closed';
  return info;
}

function compileError(format: string): SkiffError {
  try {
    compileTextFormat(format);
  } catch (err) {
    expect(err).toBeInstanceOf(SkiffError);
    expect((err as SkiffError).code).toBe('CONFIG_INVALID');
    return err as SkiffError;
  }
  throw new Error(`${JSON.stringify(format)} compiled`);
}

afterEach(() => {
  vi.useRealTimers();
});

describe("Istio's default TEXT format", () => {
  const format = compileTextFormat(ISTIO_DEFAULT_TEXT_FORMAT);

  it('is the format of pilot/pkg/model/telemetry_logging.go, ending in a newline', () => {
    expect(ISTIO_DEFAULT_TEXT_FORMAT.endsWith('%ROUTE_NAME%\n')).toBe(true);
    expect(ISTIO_DEFAULT_TEXT_FORMAT).toContain('"%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS%');
  });

  it('formats a request the upstream answered', () => {
    expect(format(upstreamAnswered())).toBe(
      '[2026-01-01T00:00:00.000Z] "GET /api/items?page=2 HTTP/1.1" 200 - via_upstream - "-" 0 295 12 7 "-" "curl/8.5.0" ' +
        '"b6f1e2a0" "reviews:9080" "10.0.0.5:9080" outbound|9080||reviews.default.svc.cluster.local 10.0.0.9:53412 ' +
        '10.96.0.10:8080 10.0.0.9:41234 - default\n',
    );
  });

  it('formats a local reply with its flag (404 NR), unset fields as -', () => {
    expect(format(noRoute())).toBe(
      '[2026-01-01T00:00:00.000Z] "GET /nope HTTP/1.1" 404 NR route_not_found - "-" 0 0 0 - "-" "curl/8.5.0" "c0ffee" ' +
        '"unknown.example" "-" - - 10.96.0.10:8080 10.0.0.9:41234 - -\n',
    );
  });

  it('logs the original path of a rewritten request (REQ(X-ENVOY-ORIGINAL-PATH?:PATH))', () => {
    const info = upstreamAnswered();
    info.request!.headers.append('x-envoy-original-path', '/v1/items');
    expect(format(info)).toContain('"GET /v1/items HTTP/1.1" 200');
  });

  it('prints HTTP/2, the SNI, milliseconds of the start time', () => {
    const info = streamInfo('/', {}, START + 1_234, connection({ tls: true, requestedServerName: 'reviews.example' }));
    info.request = { ...info.request!, httpVersion: '2' };
    info.responseCode = 200;
    info.endMs = info.startMs + 3;
    const line = format(info);
    expect(line.startsWith('[2026-01-01T00:00:01.234Z] "GET / HTTP/2" 200 ')).toBe(true);
    expect(line.endsWith(' 10.96.0.10:8080 10.0.0.9:41234 reviews.example -\n')).toBe(true);
  });

  it('formats a TCP connection as Istio logs it: no request, response code 0', () => {
    const info = tcpSession();
    const start = new Date(Math.floor(performance.timeOrigin + info.startMs)).toISOString();
    expect(format(info)).toBe(
      `[${start}] "- - -" 0 - - - "-" 120 3400 50 - "-" "-" "-" "-" "10.0.0.7:3306" ` +
        'outbound|3306||mysql.default.svc.cluster.local - 10.96.0.20:3306 10.0.0.9 - -\n',
    );
  });

  it('formats a failed TCP connection with its flag', () => {
    const info = new TcpSessionInfo('10.0.0.9', '10.96.0.20', 3306, 'outbound|3306||mysql');
    info.setFlag('UH');
    info.endMs = info.startMs + 1;
    expect(format(info)).toMatch(/\] "- - -" 0 UH - - "-" 0 0 1 - "-" "-" "-" "-" "-" outbound\|3306\|\|mysql - 10\.96\.0\.20:3306 10\.0\.0\.9 - -\n$/);
  });
});

describe('operators', () => {
  it('prints - for every unset value', () => {
    const info = new StreamInfo(connection({ remoteAddress: '', localAddress: '' }));
    const f = compileTextFormat(
      '%REQ(:METHOD)%|%REQ(:PATH)%|%PROTOCOL%|%RESP(SERVER)%|%TRAILER(GRPC-STATUS)%|%RESPONSE_CODE_DETAILS%|%UPSTREAM_HOST%|' +
        '%UPSTREAM_CLUSTER%|%ROUTE_NAME%|%DOWNSTREAM_REMOTE_ADDRESS%|%DOWNSTREAM_LOCAL_ADDRESS%|%DOWNSTREAM_PEER_URI_SAN%|' +
        '%REQUEST_DURATION%|%RESPONSE_DURATION%|%TRACE_ID%|%METHOD%|%RESPONSE_FLAGS%',
    );
    expect(f(info)).toBe('-|-|-|-|-|-|-|-|-|-|-|-|-|-|-|-|-');
  });

  it('REQ(X?Y) falls back to Y only when X is absent; an empty header stays empty', () => {
    const f = compileTextFormat('[%REQ(X-A?X-B)%]');
    expect(f(streamInfo('/', { 'x-b': 'b' }))).toBe('[b]');
    expect(f(streamInfo('/', { 'x-a': 'a', 'x-b': 'b' }))).toBe('[a]');
    expect(f(streamInfo('/', { 'x-a': '' }))).toBe('[]');
    expect(f(streamInfo('/', {}))).toBe('[-]');
  });

  it('header names are case-insensitive; pseudo-headers come from the request', () => {
    const info = streamInfo('/p?q=1', { 'user-agent': 'ua' });
    expect(compileTextFormat('%REQ(User-Agent)% %REQ(:method)% %REQ(:SCHEME)% %REQ(:AUTHORITY)% %REQ(:PATH)%')(info)).toBe(
      'ua GET http reviews:9080 /p?q=1',
    );
    expect(compileTextFormat('%REQ_WITHOUT_QUERY(:PATH)% %REQUEST_HEADER(USER-AGENT)%')(info)).toBe('/p ua');
  });

  it('RESP, TRAILER and RESP(:STATUS)', () => {
    const info = upstreamAnswered();
    info.responseTrailers = new HeaderMap(['grpc-status'], ['0']);
    expect(compileTextFormat('%RESP(CONTENT-TYPE)% %TRAILER(GRPC-STATUS)% %RESP(:STATUS)% %RESPONSE_TRAILER(GRPC-STATUS)%')(info)).toBe(
      'application/json 0 200 0',
    );
  });

  it('truncates with :N', () => {
    const info = streamInfo('/a/very/long/path', { 'user-agent': 'curl/8.5.0' });
    expect(compileTextFormat('%REQ(USER-AGENT):4% %REQ(:PATH):7% %REQ(X-NONE):3%')(info)).toBe('curl /a/very -');
  });

  it('%% is a literal percent sign', () => {
    expect(compileTextFormat('100%% %RESPONSE_CODE%%%')(upstreamAnswered())).toBe('100% 200%');
  });

  it('joins several response flags in Envoy order', () => {
    const info = upstreamAnswered();
    info.setFlag('URX');
    info.setFlag('UF');
    info.setFlag('UH');
    expect(compileTextFormat('%RESPONSE_FLAGS%')(info)).toBe('UH,UF,URX');
  });

  it('prints IPv6 addresses bracketed and IPv4-mapped ones plain', () => {
    const v6 = streamInfo('/', {}, START, connection({ remoteAddress: '2001:db8::1', remotePort: 5000, localAddress: '::ffff:10.1.2.3' }));
    expect(
      compileTextFormat('%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT% %DOWNSTREAM_LOCAL_PORT%')(v6),
    ).toBe('[2001:db8::1]:5000 2001:db8::1 10.1.2.3:8080 10.1.2.3 8080');
  });

  it('DOWNSTREAM_PEER_URI_SAN is the peer SPIFFE identity of an mTLS connection', () => {
    const peer = { identity: 'spiffe://cluster.local/ns/default/sa/productpage', certHash: 'ab12', localIdentity: 'spiffe://cluster.local/ns/default/sa/reviews' };
    const info = streamInfo('/', {}, START, connection({ peer, tls: true }));
    expect(compileTextFormat('%DOWNSTREAM_PEER_URI_SAN% %DOWNSTREAM_PEER_FINGERPRINT_256%')(info)).toBe(
      'spiffe://cluster.local/ns/default/sa/productpage ab12',
    );
    const gateway = streamInfo('/', {}, START, connection({ peer: { ...peer, identity: 'client.example.com' }, tls: true }));
    expect(compileTextFormat('%DOWNSTREAM_PEER_URI_SAN%')(gateway)).toBe('-');
  });

  it('DURATION is whole milliseconds, truncated like Envoy', () => {
    const info = upstreamAnswered();
    info.endMs = info.startMs + 99.9;
    expect(compileTextFormat('%DURATION%')(info)).toBe('99');
  });

  it('START_TIME takes a strftime format in UTC, with %s and %Nf', () => {
    const info = streamInfo('/', {}, START + 86_400_000 * 40 + 3_723_123);
    const f = compileTextFormat('%START_TIME(%Y/%m/%dT%H:%M:%S%z %s.%3f|%6f|%1f|%F %T %Z %a %b %j %%)%');
    expect(f(info)).toBe(`2026/02/10T01:02:03+0000 ${(START + 86_400_000 * 40 + 3_723_000) / 1000}.123|123000|1|2026-02-10 01:02:03 UTC Tue Feb 041 %`);
  });

  it('HOSTNAME is this host', () => {
    expect(compileTextFormat('%HOSTNAME%')(upstreamAnswered())).toBe(hostname());
  });

  it('compiles an empty format to empty lines', () => {
    expect(compileTextFormat('')(upstreamAnswered())).toBe('');
  });
});

describe('compile-time errors', () => {
  it('refuses an unknown operator, naming it and its column, with a suggestion', () => {
    expect(compileError('[%START_TIME%] %FOO%\n').message).toBe('access log format: unknown operator %FOO% at column 16');
    expect(compileError('%DURATON%').message).toBe('access log format: unknown operator %DURATON% at column 1 (did you mean %DURATION%?)');
  });

  it('refuses malformed operators', () => {
    expect(compileError('100% done').message).toMatch(/^access log format: invalid operator at column 4 near "% done"/);
    expect(compileError('%req(user-agent)%').message).toMatch(/invalid operator at column 1/);
    expect(compileError('%REQ(USER-AGENT').message).toMatch(/invalid operator at column 1/);
    expect(compileError('a %REQ% b').message).toBe('access log format: operator %REQ% at column 3: needs an argument, e.g. %REQ(X-REQUEST-ID)%');
    expect(compileError('%REQ()%').message).toMatch(/operator %REQ\(\)% at column 1: needs an argument/);
    expect(compileError('%DURATION(x)%').message).toBe('access log format: operator %DURATION(x)% at column 1: takes no argument');
    expect(compileError('%DURATION:3%').message).toBe('access log format: operator %DURATION:3% at column 1: cannot be truncated (:3)');
    expect(compileError('%REQ(A?B?C)%').message).toBe('access log format: operator %REQ(A?B?C)% at column 1: at most one alternative header (X?Y)');
    expect(compileError('%START_TIME(%Q)%').message).toBe('access log format: operator %START_TIME(%Q)% at column 1: unsupported time specifier %Q');
    expect(compileError('%START_TIME(%Y%n)%').message).toMatch(/newline/);
  });

  it('refuses Envoy operators whose data skiff does not record', () => {
    expect(compileError('%UPSTREAM_REQUEST_ATTEMPT_COUNT%').message).toBe(
      'access log format: operator %UPSTREAM_REQUEST_ATTEMPT_COUNT% at column 1: not supported (skiff does not record what it reports)',
    );
  });

  it('names the JSON field of a bad operator', () => {
    expect(() => compileJsonFormat({ ok: '%DURATION%', bad: 'x %NOPE%' })).toThrow('access log JSON format field "bad": unknown operator %NOPE% at column 3');
    expect(() => compileJsonFormat({ outer: { inner: '%NOPE%' } })).toThrow('field "outer.inner"');
    expect(() => compileJsonFormat({ flag: true } as never)).toThrow('field "flag": values must be strings');
  });
});

describe('JSON format', () => {
  const json = compileJsonFormat(ISTIO_DEFAULT_JSON_FORMAT);

  it("Istio's default fields for a request: typed numbers, null for unset, sorted keys, one line", () => {
    const line = json(upstreamAnswered());
    expect(line.endsWith('}\n')).toBe(true);
    expect(line.indexOf('\n')).toBe(line.length - 1);
    const parsed = JSON.parse(line) as Record<string, unknown>;
    expect(Object.keys(parsed)).toEqual(Object.keys(ISTIO_DEFAULT_JSON_FORMAT).sort());
    expect(parsed).toEqual({
      authority: 'reviews:9080',
      bytes_received: 0,
      bytes_sent: 295,
      connection_termination_details: null,
      downstream_local_address: '10.96.0.10:8080',
      downstream_remote_address: '10.0.0.9:41234',
      duration: 12,
      method: 'GET',
      path: '/api/items?page=2',
      protocol: 'HTTP/1.1',
      request_id: 'b6f1e2a0',
      requested_server_name: null,
      response_code: 200,
      response_code_details: 'via_upstream',
      response_flags: '-',
      route_name: 'default',
      start_time: '2026-01-01T00:00:00.000Z',
      upstream_cluster: 'outbound|9080||reviews.default.svc.cluster.local',
      upstream_host: '10.0.0.5:9080',
      upstream_local_address: '10.0.0.9:53412',
      upstream_service_time: '7',
      upstream_transport_failure_reason: null,
      user_agent: 'curl/8.5.0',
      x_forwarded_for: null,
    });
  });

  it('a local reply', () => {
    const parsed = JSON.parse(json(noRoute())) as Record<string, unknown>;
    expect(parsed).toMatchObject({ response_code: 404, response_flags: 'NR', response_code_details: 'route_not_found', upstream_host: null, route_name: null, duration: 0 });
  });

  it('a TCP connection: protocol "-", response code 0, request fields null', () => {
    const parsed = JSON.parse(json(tcpSession())) as Record<string, unknown>;
    expect(parsed).toMatchObject({
      protocol: '-',
      response_code: 0,
      response_flags: '-',
      method: null,
      path: null,
      bytes_received: 120,
      bytes_sent: 3400,
      duration: 50,
      upstream_host: '10.0.0.7:3306',
      upstream_cluster: 'outbound|3306||mysql.default.svc.cluster.local',
      downstream_local_address: '10.96.0.20:3306',
      downstream_remote_address: '10.0.0.9',
    });
  });

  it('a value with text around operators is a string (unset parts as -); constants and nesting are kept', () => {
    const f = compileJsonFormat({ summary: '%REQ(:METHOD)% %RESPONSE_CODE% %REQ(X-NONE)%', version: 2, literal: 'a"b', nested: { code: '%RESPONSE_CODE%' } });
    expect(f(upstreamAnswered())).toBe('{"literal":"a\\"b","nested":{"code":200},"summary":"GET 200 -","version":2}\n');
  });

  it('escapes header values', () => {
    const info = streamInfo('/', { 'user-agent': 'a "quoted"\tagent\\' });
    expect(JSON.parse(compileJsonFormat({ ua: '%REQ(USER-AGENT)%' })(info))).toEqual({ ua: 'a "quoted"\tagent\\' });
  });
});
