/**
 * Telemetry through real proxies and sockets. Traces: a client calls skiff A, A's upstream is
 * skiff B (a ServiceEntry endpoint on B's outbound port, the Host B routes), B's is the app; the
 * trace context the app receives and the spans both proxies export to an in-test OTLP/HTTP
 * collector must form one chain client → A → B, each hop writing the trace formats the request
 * arrived with (W3C for a trace A starts: the provider is OpenTelemetry). Access logs: MeshConfig's accessLogFile written
 * in Istio's default TEXT format, in JSON, in a custom format, turned off, and a reload with a
 * bad format refused while the old log keeps writing.
 */
import { request as httpRequest } from 'node:http';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { TRACE_B3, TRACE_B3_SINGLE, TRACE_W3C, type TraceContext } from '../../src/http/trace-context.js';
import { Proxy, type ReloadOutcome } from '../../src/lifecycle/proxy.js';
import type { WorkloadMetadata } from '../../src/model/index.js';
import { ISTIO_DEFAULT_JSON_FORMAT } from '../../src/telemetry/access-log-format.js';
import { get, type Response } from '../helpers/client.js';
import { otlpSpans, startCollector, type Collector, type ReceivedSpan } from '../helpers/collector.js';
import { closedPort } from '../helpers/ports.js';
import { EMPTY_METADATA, serviceEntry, startProxy, type TestProxy } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

// === helpers ===

/** Polls `check` every 50 ms until it holds; fails after `timeoutMs`. */
async function until(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function meshConfig(spec: string): string {
  return `apiVersion: skiff.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n${spec}`;
}

function metadata(app: string, ip: string): WorkloadMetadata {
  return { ...EMPTY_METADATA, name: `${app}-7d4b9c-x2x4z`, workloadName: app, labels: { app, version: 'v1' }, instanceIps: [ip] };
}

// === traces across two hops ===

const APP = 'details.default.svc.cluster.local';
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const UNSAMPLED_TRACE = '80f198ee56343ba864fe8b2a57d3eff7';
const MIXED_TRACE = '0af7651916cd43dd8448eb211c80319c';
const B3_TRACE_64 = 'a3ce929d0e0e4736';
const CLIENT_SPAN = '00f067aa0ba902b7';
const TRACE_STATE = 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7';
const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const W3C_HEADERS = ['traceparent', 'tracestate'];
const B3_MULTI_HEADERS = ['x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags'];

/** Fails naming the first of `names` that `headers` has. */
function expectAbsent(headers: Record<string, string>, names: readonly string[]): void {
  for (const name of names) expect(headers[name], `${name} sent upstream`).toBeUndefined();
}

describe('trace context and spans through two skiff hops', () => {
  let app: Upstream;
  let collector: Collector;
  let a: TestProxy;
  let b: TestProxy;
  let aClosed = false;
  let bClosed = false;
  /** What the app received and what the client got back, by path. */
  const seen = new Map<string, { headers: Record<string, string>; response: Response }>();
  /** Every span the collector received, in arrival order. */
  const receivedSpans = (): ReceivedSpan[] => otlpSpans(collector.bodies).spans;

  const tracingMesh = (port: number): string =>
    meshConfig(`  defaultConfig:
    tracing: {sampling: 100}
  extensionProviders:
  - name: otel
    opentelemetry:
      service: 127.0.0.1
      port: ${port}
      http: {path: /v1/traces}
  defaultProviders:
    tracing: [otel]
`);

  async function call(path: string, headers: Record<string, string> = {}): Promise<void> {
    const response = await get(a.port, `${APP}:9080`, path, headers);
    expect(response.status).toBe(200);
    const received = app.requests.find((r) => r.url === path);
    expect(received, `the app received ${path}`).toBeDefined();
    seen.set(path, { headers: received!.headers as Record<string, string>, response });
  }

  /** The records of one request at A and at B (each proxy records the request once). */
  function records(path: string): { atA: TraceContext; atB: TraceContext } {
    const atA = a.records.filter((r) => r.request?.path === path);
    const atB = b.records.filter((r) => r.request?.path === path);
    expect(atA).toHaveLength(1);
    expect(atB).toHaveLength(1);
    return { atA: atA[0]!.trace!, atB: atB[0]!.trace! };
  }

  beforeAll(async () => {
    app = await startUpstream('details');
    collector = await startCollector();
    b = await startProxy(
      { 'mesh.yaml': tracingMesh(collector.port), 'details.yaml': serviceEntry(APP, 9080, [{ port: app.port }]) },
      { metadata: metadata('hop-b', '10.0.0.2') },
    );
    a = await startProxy(
      { 'mesh.yaml': tracingMesh(collector.port), 'details.yaml': serviceEntry(APP, 9080, [{ port: b.port }]) },
      { metadata: metadata('hop-a', '10.0.0.1') },
    );
    await call('/sampled', { traceparent: `00-${TRACE}-${CLIENT_SPAN}-01`, tracestate: TRACE_STATE });
    await call('/unsampled', { 'x-b3-traceid': UNSAMPLED_TRACE, 'x-b3-spanid': CLIENT_SPAN, 'x-b3-sampled': '0' });
    await call('/fresh');
    await call('/b3', { b3: `${B3_TRACE_64}-${CLIENT_SPAN}-1`, 'x-request-id': 'client-chosen-id-1' });
    await call('/mixed', { 'traceparent': `00-${MIXED_TRACE}-${CLIENT_SPAN}-01`, 'x-b3-traceid': MIXED_TRACE, 'x-b3-spanid': CLIENT_SPAN, 'x-b3-sampled': '1' });
  });

  afterAll(async () => {
    if (!aClosed) await a?.close();
    if (!bClosed) await b?.close();
    await collector?.close();
    await app?.close();
  });

  it("keeps the client's trace id and chains the parent span ids client → A → B → app", () => {
    const { headers } = seen.get('/sampled')!;
    const { atA, atB } = records('/sampled');
    expect(atA).toMatchObject({ traceId: TRACE, parentSpanId: CLIENT_SPAN, sampled: true });
    expect(atB).toMatchObject({ traceId: TRACE, parentSpanId: atA.spanId, sampled: true });
    expect(atA.spanId).toMatch(HEX16);
    expect(atB.spanId).toMatch(HEX16);
    expect(new Set([CLIENT_SPAN, atA.spanId, atB.spanId]).size).toBe(3);
    // The client spoke W3C only, and so does each hop: the app's parent is B's span.
    expect(atA.formats).toBe(TRACE_W3C);
    expect(atB.formats).toBe(TRACE_W3C);
    expect(headers['traceparent']).toBe(`00-${TRACE}-${atB.spanId}-01`);
    expect(headers['tracestate']).toBe(TRACE_STATE);
    // No B3 header of either kind is added.
    expectAbsent(headers, [...B3_MULTI_HEADERS, 'b3']);
  });

  it('keeps the x-request-id A made unchanged through B to the app', () => {
    const id = seen.get('/sampled')!.headers['x-request-id'];
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const atA = a.records.find((r) => r.request?.path === '/sampled')!;
    const atB = b.records.find((r) => r.request?.path === '/sampled')!;
    expect(atA.request!.headers.get('x-request-id')).toBe(id);
    expect(atB.request!.headers.get('x-request-id')).toBe(id);
    // One the client chose is kept too.
    expect(seen.get('/b3')!.headers['x-request-id']).toBe('client-chosen-id-1');
  });

  it('propagates an unsampled decision (x-b3-sampled: 0) with the ids still chained', () => {
    const { headers } = seen.get('/unsampled')!;
    const { atA, atB } = records('/unsampled');
    expect(atA).toMatchObject({ traceId: UNSAMPLED_TRACE, parentSpanId: CLIENT_SPAN, sampled: false });
    expect(atB).toMatchObject({ traceId: UNSAMPLED_TRACE, parentSpanId: atA.spanId, sampled: false });
    // B3 multi-header arrived, so B3 multi-header goes on at each hop, and nothing else.
    expect(atA.formats).toBe(TRACE_B3);
    expect(atB.formats).toBe(TRACE_B3);
    expect(headers['x-b3-traceid']).toBe(UNSAMPLED_TRACE);
    expect(headers['x-b3-spanid']).toBe(atB.spanId);
    expect(headers['x-b3-parentspanid']).toBe(atA.spanId);
    expect(headers['x-b3-sampled']).toBe('0');
    expectAbsent(headers, [...W3C_HEADERS, 'b3']);
  });

  it('starts a new sampled trace at A for a request without trace headers (sampling 100)', () => {
    const { headers } = seen.get('/fresh')!;
    const { atA, atB } = records('/fresh');
    expect(atA.traceId).toMatch(HEX32);
    expect(atA.traceId).not.toBe(TRACE);
    expect(atA).toMatchObject({ parentSpanId: null, sampled: true });
    expect(atB).toMatchObject({ traceId: atA.traceId, parentSpanId: atA.spanId, sampled: true });
    // The provider is OpenTelemetry, so A starts the trace in W3C, and B continues it in W3C.
    expect(atA.formats).toBe(TRACE_W3C);
    expect(atB.formats).toBe(TRACE_W3C);
    expect(headers['traceparent']).toBe(`00-${atA.traceId}-${atB.spanId}-01`);
    expectAbsent(headers, ['tracestate', ...B3_MULTI_HEADERS, 'b3']);
  });

  it('rewrites a single b3 header at each hop, keeping its 64-bit trace id', () => {
    const { headers } = seen.get('/b3')!;
    const { atA, atB } = records('/b3');
    const padded = `0000000000000000${B3_TRACE_64}`;
    expect(atA).toMatchObject({ traceId: padded, parentSpanId: CLIENT_SPAN, sampled: true });
    expect(atB).toMatchObject({ traceId: padded, parentSpanId: atA.spanId, sampled: true });
    // Only the single b3 header arrived, so only it goes on.
    expect(atA.formats).toBe(TRACE_B3_SINGLE);
    expect(atB.formats).toBe(TRACE_B3_SINGLE);
    expect(headers['b3']).toBe(`${B3_TRACE_64}-${atB.spanId}-1-${atA.spanId}`);
    expectAbsent(headers, [...W3C_HEADERS, ...B3_MULTI_HEADERS]);
  });

  it('writes both W3C and B3 multi-header when the request arrived with both, and no single b3', () => {
    const { headers } = seen.get('/mixed')!;
    const { atA, atB } = records('/mixed');
    expect(atA).toMatchObject({ traceId: MIXED_TRACE, parentSpanId: CLIENT_SPAN, sampled: true, formats: TRACE_W3C | TRACE_B3 });
    expect(atB).toMatchObject({ traceId: MIXED_TRACE, parentSpanId: atA.spanId, sampled: true, formats: TRACE_W3C | TRACE_B3 });
    expect(headers['traceparent']).toBe(`00-${MIXED_TRACE}-${atB.spanId}-01`);
    expect(headers['x-b3-traceid']).toBe(MIXED_TRACE);
    expect(headers['x-b3-spanid']).toBe(atB.spanId);
    expect(headers['x-b3-parentspanid']).toBe(atA.spanId);
    expect(headers['x-b3-sampled']).toBe('1');
    expectAbsent(headers, ['tracestate', 'x-b3-flags', 'b3']);
  });

  it('exports one CLIENT span per hop for each sampled request, without closing the proxies', async () => {
    // Four sampled requests, two hops each; the batch processor sends them within its 5 s delay.
    await until('8 spans', () => receivedSpans().length >= 8, 12_000);
    expect(new Set(collector.paths)).toEqual(new Set(['/v1/traces']));
    const sampled = records('/sampled');
    const spanA = receivedSpans().find((s) => s.spanId === sampled.atA.spanId)!;
    const spanB = receivedSpans().find((s) => s.spanId === sampled.atB.spanId)!;
    const rid = seen.get('/sampled')!.headers['x-request-id'];

    expect(spanA).toMatchObject({ service: 'hop-a.default', traceId: TRACE, parentSpanId: CLIENT_SPAN, traceState: TRACE_STATE, kind: 3, name: `${APP}:9080/*` });
    expect(spanB).toMatchObject({ service: 'hop-b.default', traceId: TRACE, parentSpanId: spanA.spanId, traceState: TRACE_STATE, kind: 3, name: `${APP}:9080/*` });
    // The app's parent (B's span id as sent in traceparent) is B's exported span.
    expect(seen.get('/sampled')!.headers['traceparent']).toBe(`00-${TRACE}-${spanB.spanId}-01`);
    const common = {
      'component': 'proxy',
      'http.method': 'GET',
      'http.url': `http://${APP}:9080/sampled`,
      'http.protocol': 'HTTP/1.1',
      'http.status_code': '200',
      'response_flags': '-',
      'upstream_cluster': `outbound|9080||${APP}`,
      'guid:x-request-id': rid,
      'request_size': '0',
    };
    expect(spanA.tags).toMatchObject({
      ...common,
      'node_id': 'sidecar~10.0.0.1~hop-a-7d4b9c-x2x4z.default~default.svc.cluster.local',
      'upstream_address': `127.0.0.1:${b.port}`,
    });
    expect(spanB.tags).toMatchObject({
      ...common,
      'node_id': 'sidecar~10.0.0.2~hop-b-7d4b9c-x2x4z.default~default.svc.cluster.local',
      'upstream_address': `127.0.0.1:${app.port}`,
    });
    expect(spanA.tags['peer.address']).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(spanA.tags['error']).toBeUndefined();
    // Both bodies are the app's JSON: the same size at each hop, as the client received it.
    expect(spanA.tags['response_size']).toBe(String(seen.get('/sampled')!.response.body.length));
    expect(spanB.tags['response_size']).toBe(spanA.tags['response_size']);
    // A's span encloses B's (start times are whole milliseconds on the wall clock).
    const ms = (t: string | number): number => Number(BigInt(t) / 1_000_000n);
    expect(ms(spanA.startTimeUnixNano)).toBeLessThanOrEqual(ms(spanB.startTimeUnixNano));
    expect(ms(spanA.endTimeUnixNano)).toBeGreaterThanOrEqual(ms(spanB.endTimeUnixNano) - 1);

    const fresh = records('/fresh');
    const freshA = receivedSpans().find((s) => s.spanId === fresh.atA.spanId)!;
    const freshB = receivedSpans().find((s) => s.spanId === fresh.atB.spanId)!;
    expect(freshA.traceId).toBe(fresh.atA.traceId);
    expect(freshA.parentSpanId ?? '').toBe('');
    expect(freshB.parentSpanId).toBe(freshA.spanId);

    const b3 = records('/b3');
    const b3A = receivedSpans().find((s) => s.spanId === b3.atA.spanId)!;
    const b3B = receivedSpans().find((s) => s.spanId === b3.atB.spanId)!;
    expect(b3A).toMatchObject({ traceId: `0000000000000000${B3_TRACE_64}`, parentSpanId: CLIENT_SPAN });
    expect(b3B).toMatchObject({ traceId: `0000000000000000${B3_TRACE_64}`, parentSpanId: b3A.spanId });
    expect(b3A.tags['guid:x-request-id']).toBe('client-chosen-id-1');

    const mixed = records('/mixed');
    const mixedA = receivedSpans().find((s) => s.spanId === mixed.atA.spanId)!;
    const mixedB = receivedSpans().find((s) => s.spanId === mixed.atB.spanId)!;
    expect(mixedA).toMatchObject({ traceId: MIXED_TRACE, parentSpanId: CLIENT_SPAN });
    expect(mixedB).toMatchObject({ traceId: MIXED_TRACE, parentSpanId: mixedA.spanId });
  }, 20_000);

  it('exports nothing for the unsampled trace, also once closing flushed the tracers', async () => {
    aClosed = true;
    await a.close();
    bClosed = true;
    await b.close();
    expect(receivedSpans().filter((s) => s.traceId === UNSAMPLED_TRACE)).toEqual([]);
    expect(receivedSpans()).toHaveLength(8);
    expect(new Set(receivedSpans().map((s) => s.spanId)).size).toBe(8);
  });
});

// === access log ===

const REVIEWS = 'reviews.default.svc.cluster.local';
const RATINGS = 'ratings.default.svc.cluster.local';
const USER_AGENT = 'telemetry-test/1.0';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
/** Envoy's details for a refused connect after the default retries: errno as the OS numbers it. */
const CONNECT_REFUSED = `delayed_connect_error:_${constants.errno.ECONNREFUSED}`;

/** reviews: only paths under /reviews have a route (named reviews-v1); ratings: nothing listens. */
function accessLogServices(reviewsPort: number, ratingsPort: number): string {
  return `${serviceEntry(REVIEWS, 9080, [{ port: reviewsPort }])}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [${REVIEWS}]
  http: [{name: reviews-v1, match: [{uri: {prefix: /reviews}}], route: [{destination: {host: ${REVIEWS}}}]}]
---
${serviceEntry(RATINGS, 9080, [{ port: ratingsPort }])}`;
}

interface Sent {
  readonly status: number;
  readonly body: Buffer;
  /** The client's side of the connection (the proxy's downstream remote port). */
  readonly clientPort: number;
}

/** One GET on its own connection, remembering the client's port. */
function send(port: number, host: string, path: string, headers: Record<string, string> = {}): Promise<Sent> {
  return new Promise((resolve, reject) => {
    let clientPort = 0;
    const req = httpRequest({ host: '127.0.0.1', port, path, agent: false, headers: { host, 'user-agent': USER_AGENT, ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), clientPort }));
      res.on('error', reject);
    });
    req.on('socket', (s) => s.once('connect', () => (clientPort = s.localPort ?? 0)));
    req.on('error', reject);
    req.end();
  });
}

/** The fields of one line in Istio's default TEXT format; fails on a line of any other shape. */
function parseTextLine(line: string): Record<string, string> {
  const m = new RegExp(
    '^\\[(?<start>[^\\]]+)\\] "(?<method>\\S+) (?<path>\\S+) (?<protocol>\\S+)" (?<code>\\d+) (?<flags>\\S+) (?<details>\\S+) (?<termination>\\S+) ' +
      '"(?<transport>[^"]*)" (?<received>\\d+) (?<sent>\\d+) (?<duration>\\d+) (?<serviceTime>\\S+) "(?<xff>[^"]*)" "(?<userAgent>[^"]*)" ' +
      '"(?<requestId>[^"]*)" "(?<authority>[^"]*)" "(?<upstreamHost>[^"]*)" (?<cluster>\\S+) (?<upstreamLocal>\\S+) (?<downstreamLocal>\\S+) ' +
      '(?<downstreamRemote>\\S+) (?<sni>\\S+) (?<route>\\S+)$',
  ).exec(line);
  if (m === null) throw new Error(`not Istio's default TEXT format: ${JSON.stringify(line)}`);
  return { ...m.groups! };
}

/** The file's lines, each checked to end with the format's newline; [] when it does not exist. */
async function logLines(path: string): Promise<string[]> {
  const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return '';
    throw err;
  });
  if (text === '') return [];
  expect(text.endsWith('\n')).toBe(true);
  return text.slice(0, -1).split('\n');
}

/**
 * A proxy whose access log goes to `file`, with reviews and a dead ratings behind it, and
 * what the reviews app saw of each request (its x-request-id, x-forwarded-for and the proxy's
 * upstream port), by path.
 */
interface LoggedProxy {
  readonly tp: TestProxy;
  readonly up: Upstream;
  readonly dead: number;
  readonly atApp: Map<string, { requestId: string; xff: string | undefined; proxyPort: number }>;
}

/** `mesh` is the MeshConfig spec's lines; null starts without a MeshConfig. */
async function startLoggedProxy(mesh: string | null): Promise<LoggedProxy> {
  const atApp = new Map<string, { requestId: string; xff: string | undefined; proxyPort: number }>();
  const up = await startUpstream('reviews', (req) => {
    atApp.set(req.url ?? '', {
      requestId: String(req.headers['x-request-id']),
      xff: req.headers['x-forwarded-for'] as string | undefined,
      proxyPort: req.socket.remotePort ?? 0,
    });
  });
  const dead = await closedPort();
  const services = { 'services.yaml': accessLogServices(up.port, dead) };
  const tp = await startProxy(mesh === null ? services : { ...services, 'mesh.yaml': meshConfig(mesh) });
  return { tp, up, dead, atApp };
}

/** The three outcomes every format test logs: 200 via upstream, 404 NR, 503 UF (after retries). */
async function threeOutcomes(p: LoggedProxy): Promise<{ ok: Sent; nr: Sent; uf: Sent }> {
  const ok = await send(p.tp.port, `${REVIEWS}:9080`, '/reviews/1?shelf=2');
  expect(ok.status).toBe(200);
  const nr = await send(p.tp.port, `${REVIEWS}:9080`, '/other');
  expect(nr.status).toBe(404);
  const uf = await send(p.tp.port, `${RATINGS}:9080`, '/ratings/1');
  expect(uf.status).toBe(503);
  return { ok, nr, uf };
}

describe("access log in Istio's default TEXT format", () => {
  let dir: string;
  let p: LoggedProxy;
  let sent: { ok: Sent; nr: Sent; uf: Sent };
  let lines: string[];
  let t0: number;
  let t1: number;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'skiff-access-log-'));
    const file = join(dir, 'access.log');
    p = await startLoggedProxy(`  accessLogFile: ${file}\n`);
    t0 = Date.now();
    sent = await threeOutcomes(p);
    t1 = Date.now();
    // Closing writes what the 1 s batch still holds.
    await p.tp.close();
    lines = await logLines(file);
  });

  afterAll(async () => {
    await p?.up.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('writes one line per request, in order, once the proxy closed', () => {
    expect(lines).toHaveLength(3);
    const fields = lines.map(parseTextLine);
    expect(fields.map((f) => `${f['method']} ${f['path']} ${f['code']} ${f['flags']}`)).toEqual([
      'GET /reviews/1?shelf=2 200 -',
      'GET /other 404 NR',
      'GET /ratings/1 503 UF,URX',
    ]);
    for (const f of fields) {
      expect(f['start']).toMatch(ISO_MS);
      const start = Date.parse(f['start']!);
      expect(start).toBeGreaterThanOrEqual(t0);
      expect(start).toBeLessThanOrEqual(t1);
    }
  });

  it('logs a proxied 200 with its upstream, route and request id', () => {
    const f = parseTextLine(lines[0]!);
    const app = p.atApp.get('/reviews/1?shelf=2')!;
    expect(f).toMatchObject({
      protocol: 'HTTP/1.1',
      termination: '-',
      transport: '-',
      received: '0',
      sent: String(sent.ok.body.length),
      xff: app.xff ?? '-',
      userAgent: USER_AGENT,
      requestId: app.requestId,
      authority: `${REVIEWS}:9080`,
      upstreamHost: `127.0.0.1:${p.up.port}`,
      cluster: `outbound|9080||${REVIEWS}`,
      upstreamLocal: `127.0.0.1:${app.proxyPort}`,
      downstreamLocal: `127.0.0.1:${p.tp.port}`,
      downstreamRemote: `127.0.0.1:${sent.ok.clientPort}`,
      sni: '-',
      route: 'reviews-v1',
    });
    expect(f['requestId']).toMatch(UUID);
    expect(f['duration']).toMatch(/^\d+$/);
    expect(f['serviceTime']).toMatch(/^\d+$/);
    expect(Number(f['serviceTime'])).toBeLessThanOrEqual(Number(f['duration']) + 1);
  });

  it('logs a 404 without a route as NR route_not_found, with no upstream', () => {
    expect(parseTextLine(lines[1]!)).toMatchObject({
      protocol: 'HTTP/1.1',
      details: 'route_not_found',
      termination: '-',
      transport: '-',
      received: '0',
      sent: '0',
      serviceTime: '-',
      xff: '-',
      userAgent: USER_AGENT,
      authority: `${REVIEWS}:9080`,
      upstreamHost: '-',
      cluster: '-',
      upstreamLocal: '-',
      downstreamLocal: `127.0.0.1:${p.tp.port}`,
      downstreamRemote: `127.0.0.1:${sent.nr.clientPort}`,
      sni: '-',
      route: '-',
    });
  });

  it('logs a refused connection as 503 UF,URX with the reset reason and the endpoint tried', () => {
    const f = parseTextLine(lines[2]!);
    expect(f).toMatchObject({
      protocol: 'HTTP/1.1',
      details: `upstream_reset_before_response_started{remote_connection_failure,${CONNECT_REFUSED}}`,
      termination: '-',
      received: '0',
      sent: String(sent.uf.body.length),
      serviceTime: '-',
      userAgent: USER_AGENT,
      authority: `${RATINGS}:9080`,
      upstreamHost: `127.0.0.1:${p.dead}`,
      cluster: `outbound|9080||${RATINGS}`,
      upstreamLocal: '-',
      downstreamRemote: `127.0.0.1:${sent.uf.clientPort}`,
      route: 'default',
    });
    expect(f['requestId']).toMatch(UUID);
    expect(sent.uf.body.toString()).toContain('reset reason: remote connection failure');
  });

  it('a proxied response has response code details via_upstream', () => {
    expect(parseTextLine(lines[0]!)['details']).toBe('via_upstream');
  });

  it('a 404 NR carries the x-request-id the connection manager generated', () => {
    expect(parseTextLine(lines[1]!)['requestId']).toMatch(UUID);
  });

  it('a UF logs the upstream transport failure reason, spaces as underscores', () => {
    expect(parseTextLine(lines[2]!)['transport']).toBe(CONNECT_REFUSED);
  });
});

describe("access log in Istio's default JSON fields", () => {
  let dir: string;
  let p: LoggedProxy;
  let sent: { ok: Sent; nr: Sent; uf: Sent };
  let entries: Record<string, unknown>[];
  let raw: string[];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'skiff-access-log-'));
    const file = join(dir, 'access.json');
    p = await startLoggedProxy(`  accessLogFile: ${file}\n  accessLogEncoding: JSON\n`);
    sent = await threeOutcomes(p);
    await p.tp.close();
    raw = await logLines(file);
    entries = raw.map((l) => JSON.parse(l) as Record<string, unknown>);
  });

  afterAll(async () => {
    await p?.up.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("writes one object per line with exactly Istio's keys, sorted as Envoy writes them", () => {
    expect(entries).toHaveLength(3);
    const keys = Object.keys(ISTIO_DEFAULT_JSON_FORMAT).sort();
    for (const [i, e] of entries.entries()) {
      expect(Object.keys(e)).toEqual(keys);
      expect(raw[i]!.startsWith('{"authority":')).toBe(true);
    }
  });

  it('keeps numbers numeric and writes unset values as null', () => {
    const app = p.atApp.get('/reviews/1?shelf=2')!;
    const [ok, nr, uf] = entries as [Record<string, unknown>, Record<string, unknown>, Record<string, unknown>];
    expect(ok).toMatchObject({
      method: 'GET',
      path: '/reviews/1?shelf=2',
      protocol: 'HTTP/1.1',
      response_code: 200,
      response_flags: '-',
      bytes_received: 0,
      bytes_sent: sent.ok.body.length,
      connection_termination_details: null,
      upstream_transport_failure_reason: null,
      user_agent: USER_AGENT,
      request_id: app.requestId,
      authority: `${REVIEWS}:9080`,
      upstream_host: `127.0.0.1:${p.up.port}`,
      upstream_cluster: `outbound|9080||${REVIEWS}`,
      upstream_local_address: `127.0.0.1:${app.proxyPort}`,
      downstream_local_address: `127.0.0.1:${p.tp.port}`,
      downstream_remote_address: `127.0.0.1:${sent.ok.clientPort}`,
      requested_server_name: null,
      route_name: 'reviews-v1',
      x_forwarded_for: app.xff ?? null,
    });
    expect(ok['start_time']).toMatch(ISO_MS);
    expect(typeof ok['duration']).toBe('number');
    // A header value stays a string even when it looks like a number.
    expect(ok['upstream_service_time']).toMatch(/^\d+$/);

    expect(nr).toMatchObject({
      path: '/other',
      response_code: 404,
      response_flags: 'NR',
      response_code_details: 'route_not_found',
      bytes_sent: 0,
      upstream_host: null,
      upstream_cluster: null,
      upstream_local_address: null,
      upstream_service_time: null,
      route_name: null,
      x_forwarded_for: null,
    });

    expect(uf).toMatchObject({
      path: '/ratings/1',
      response_code: 503,
      response_flags: 'UF,URX',
      response_code_details: `upstream_reset_before_response_started{remote_connection_failure,${CONNECT_REFUSED}}`,
      bytes_sent: sent.uf.body.length,
      upstream_host: `127.0.0.1:${p.dead}`,
      upstream_cluster: `outbound|9080||${RATINGS}`,
      upstream_local_address: null,
      route_name: 'default',
    });
    expect(uf['request_id']).toMatch(UUID);
  });
});

describe('access log settings on reload', () => {
  let dir: string;
  let p: LoggedProxy;
  let file: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'skiff-access-log-'));
    file = join(dir, 'access.log');
    p = await startLoggedProxy(`  accessLogFile: ${file}\n`);
  });

  afterAll(async () => {
    await p?.tp.close();
    await p?.up.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function reloadWith(mesh: string): Promise<ReloadOutcome> {
    await p.tp.write({ 'mesh.yaml': meshConfig(mesh) });
    return p.tp.proxy.reload();
  }

  it('switches to a custom format, refuses an unknown operator keeping the old one, then turns off', async () => {
    const custom = '%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_CLUSTER% trace=%TRACE_ID% id=%REQ(X-REQUEST-ID)% 100%%\n';
    const traced = '0af7651916cd43dd8448eb211c80319c';
    const withFile = `  accessLogFile: ${file}\n`;

    expect((await send(p.tp.port, `${REVIEWS}:9080`, '/reviews/default', { 'x-request-id': 'req-default' })).status).toBe(200);

    const switched = await reloadWith(`${withFile}  accessLogFormat: ${JSON.stringify(custom)}\n`);
    expect(switched).toMatchObject({ ok: true });
    expect((await send(p.tp.port, `${REVIEWS}:9080`, '/reviews/custom', { 'x-request-id': 'req-custom', 'traceparent': `00-${traced}-b7ad6b7169203331-01` })).status).toBe(200);

    const version = p.tp.proxy.snapshot.version;
    const refused = await reloadWith(`${withFile}  accessLogFormat: "%REQ(:METHOD)% %NOT_AN_OPERATOR%\\n"\n`);
    expect(refused.ok).toBe(false);
    expect(refused.error).toContain('%NOT_AN_OPERATOR%');
    expect(refused.error).toContain('accessLogFormat');
    expect(p.tp.proxy.snapshot.version).toBe(version);
    expect(p.tp.logs.some((l) => l.includes('config reload rejected') && l.includes('%NOT_AN_OPERATOR%'))).toBe(true);
    // Still serving, still logging in the custom format.
    expect((await send(p.tp.port, `${REVIEWS}:9080`, '/other', { 'x-request-id': 'req-after-refusal' })).status).toBe(404);

    const json = JSON.stringify({ method: '%REQ(:METHOD)%', code: '%RESPONSE_CODE%', upstream: { cluster: '%UPSTREAM_CLUSTER%' }, source: 'skiff', id: 'id-%REQ(X-REQUEST-ID)%' });
    const toJson = await reloadWith(`${withFile}  accessLogEncoding: JSON\n  accessLogFormat: ${JSON.stringify(json)}\n`);
    expect(toJson).toMatchObject({ ok: true });
    expect((await send(p.tp.port, `${REVIEWS}:9080`, '/reviews/json', { 'x-request-id': 'req-json' })).status).toBe(200);

    // Without accessLogFile the log is off (Istio's default): nothing more reaches the file.
    const off = await reloadWith('  accessLogEncoding: TEXT\n');
    expect(off).toMatchObject({ ok: true });
    expect((await send(p.tp.port, `${REVIEWS}:9080`, '/reviews/off', { 'x-request-id': 'req-off' })).status).toBe(200);

    await p.tp.close();
    const lines = await logLines(file);
    expect(lines).toHaveLength(4);
    expect(parseTextLine(lines[0]!)).toMatchObject({ path: '/reviews/default', code: '200', requestId: 'req-default' });
    expect(lines[1]).toBe(`GET /reviews/custom 200 - outbound|9080||${REVIEWS} trace=${traced} id=req-custom 100%`);
    expect(lines[2]).toBe(`GET /other 404 NR - trace=${p.tp.records.at(-3)!.trace!.traceId} id=req-after-refusal 100%`);
    expect(JSON.parse(lines[3]!)).toEqual({ code: 200, id: 'id-req-json', method: 'GET', source: 'skiff', upstream: { cluster: `outbound|9080||${REVIEWS}` } });
    expect(lines[3]!.startsWith('{"code":200,"id":')).toBe(true);
    expect(lines.join('\n')).not.toContain('req-off');
  });
});

describe('access log off by default and a bad format at start', () => {
  it('writes no access log anywhere without a MeshConfig (Istio: accessLogFile is empty by default)', async () => {
    const p = await startLoggedProxy(null);
    const out = vi.spyOn(process.stdout, 'write');
    const err = vi.spyOn(process.stderr, 'write');
    try {
      expect((await send(p.tp.port, `${REVIEWS}:9080`, '/reviews/1', { 'x-request-id': 'req-default-off' })).status).toBe(200);
      expect((await send(p.tp.port, `${REVIEWS}:9080`, '/other', { 'x-request-id': 'req-default-off-nr' })).status).toBe(404);
      // Both requests reached telemetry (metrics and traces see them)...
      expect(p.tp.records.map((r) => r.request?.headers.get('x-request-id'))).toEqual(['req-default-off', 'req-default-off-nr']);
      // ...and closing, which writes out any access log, put neither on stdout or stderr.
      await p.tp.close();
      const written = [...out.mock.calls, ...err.mock.calls].map((c) => String(c[0])).join('');
      expect(written).not.toContain('req-default-off');
    } finally {
      out.mockRestore();
      err.mockRestore();
      await p.up.close();
    }
  });

  it('refuses to start with an unknown operator, naming it, and creates no log file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'skiff-access-log-'));
    const file = join(dir, 'access.log');
    try {
      await writeFile(join(dir, 'mesh.yaml'), meshConfig(`  accessLogFile: ${file}\n  accessLogFormat: "[%START_TIME%] %REQ(:METHOD)% %BYTES_SENTT%\\n"\n`));
      const start = Proxy.start({ configPath: dir, watch: false, ports: { outbound: 0, admin: 0, readiness: 0 }, metadata: EMPTY_METADATA });
      await expect(start).rejects.toThrow(/unknown operator %BYTES_SENTT% at column \d+ \(did you mean %BYTES_SENT%\?\)/);
      expect(await readdir(dir)).toEqual(['mesh.yaml']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
