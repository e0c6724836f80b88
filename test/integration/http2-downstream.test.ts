/**
 * HTTP/2 from clients (h2c with prior knowledge) through skiff to HTTP/1.1 upstreams, with real
 * HTTP/2 peers: curl, nghttp (frames), h2load (load) and node:http2 (flow control). Requests are
 * routed like HTTP/1.1 ones (Host from :authority), bodies stream both ways, local replies are
 * proper HTTP/2 responses, a client that stops reading slows the upstream down, and a shutdown
 * sends GOAWAY.
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect as h2connect, constants, createServer as createH2Server, type Http2Server, type IncomingHttpHeaders } from 'node:http2';
import { createConnection, createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { upgradeRequestFrame } from '../../src/http/codec/h2/upgrade.js';
import { HeaderMap } from '../../src/http/headers.js';
import { prefixOnlyService, serviceEntry, startProxy, type TestProxy } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

function run(command: string, args: readonly string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { encoding: 'utf8', timeout: 30_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1, out: stdout + stderr });
    });
  });
}

/** An h2c upstream that records each request's headers and trailers, and answers what it saw. */
async function startH2Upstream(): Promise<{ port: number; sessions: () => number; seen: Array<{ headers: IncomingHttpHeaders; trailers?: IncomingHttpHeaders }>; close(): Promise<void> }> {
  const seen: Array<{ headers: IncomingHttpHeaders; trailers?: IncomingHttpHeaders }> = [];
  const server: Http2Server = createH2Server();
  let sessions = 0;
  server.on('session', () => sessions++);
  server.on('stream', (stream, headers) => {
    const record: { headers: IncomingHttpHeaders; trailers?: IncomingHttpHeaders } = { headers };
    seen.push(record);
    stream.on('trailers', (t: IncomingHttpHeaders) => (record.trailers = t));
    stream.resume();
    stream.on('end', () => {
      const answer = (): void => {
        if (stream.destroyed) return;
        stream.respond({ ':status': 200, 'content-type': 'application/json' });
        stream.end(JSON.stringify({ authority: headers[':authority'], ifNoneMatch: headers['if-none-match'] ?? null }));
      };
      // /slow answers after the test has opened all its streams; /die drops the connection.
      if (headers[':path'] === '/slow') setTimeout(answer, 200);
      else if (headers[':path'] === '/die') stream.session?.destroy();
      else answer();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as AddressInfo).port, sessions: () => sessions, seen, close: () => new Promise((r) => server.close(() => r())) };
}

/** h2.example.com on 127.0.0.1:`port`, a port declared HTTP2 (skiff speaks HTTP/2 to it). */
function h2Service(port: number): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: h2}
spec:
  hosts: [h2.example.com]
  ports: [{number: 80, name: http2, protocol: HTTP2}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http2: ${port}}}]
`;
}

/** A raw HTTP/1.1 upstream answering every request with `response` verbatim. */
async function startRawUpstream(response: string): Promise<{ port: number; close(): Promise<void> }> {
  const server: NetServer = createNetServer((s) => {
    s.on('error', () => undefined);
    s.once('data', () => s.end(response));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as AddressInfo).port, close: () => new Promise((r) => server.close(() => r())) };
}

describe('HTTP/2 downstream (h2c prior knowledge) to HTTP/1.1 upstreams', () => {
  let up: Upstream;
  let p: TestProxy;
  /** Bytes the /stream upstream has written, and whether its socket is applying backpressure. */
  const streamed = { written: 0 };

  beforeAll(async () => {
    up = await startUpstream('h1', (req, res) => {
      if (req.url !== '/stream') return false;
      // 64 MiB, written only as fast as the connection drains.
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 64 * 1024 * 1024 });
      const chunk = Buffer.alloc(64 * 1024, 1);
      const pump = (): void => {
        while (streamed.written < 64 * 1024 * 1024) {
          streamed.written += chunk.length;
          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
      return true;
    });
    p = await startProxy({
      'se.yaml': serviceEntry('svc.example.com', 80, [{ port: up.port }]),
      // rooms.example.com serves /rooms only: anything else has no route.
      'rooms.yaml': prefixOnlyService('rooms.example.com', 80, up.port, '/rooms'),
    });
  });

  afterAll(async () => {
    await p?.close();
    await up?.close();
  });

  it('curl: a GET is routed by :authority and answered over HTTP/2 from an HTTP/1.1 upstream', async () => {
    const r = await run('curl', ['-sS', '-i', '--http2-prior-knowledge', '-H', 'Host: svc.example.com', `http://127.0.0.1:${p.port}/hello?x=1`]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/^HTTP\/2 200/);
    expect(r.out).toMatch(/^server: envoy\r?$/m);
    expect(r.out).toMatch(/^x-envoy-upstream-service-time: \d+\r?$/m);
    const body = JSON.parse(r.out.slice(r.out.indexOf('{'))) as { server: string; url: string; headers: Record<string, string> };
    expect(body.server).toBe('h1');
    expect(body.url).toBe('/hello?x=1');
    expect(body.headers['host']).toBe('svc.example.com');
    expect(body.headers['x-forwarded-proto']).toBe('http');
    const seen = up.requests[up.requests.length - 1]!;
    expect(seen.httpVersion).toBe('1.1');
  });

  it('curl: request bodies reach the upstream (with and without content-length)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'skiff-h2-'));
    const file = join(dir, 'body');
    await writeFile(file, 'x'.repeat(1024 * 1024));
    const sized = await run('curl', ['-sS', '--http2-prior-knowledge', '-H', 'Host: svc.example.com', '--data-binary', `@${file}`, `http://127.0.0.1:${p.port}/echo`]);
    expect(sized.out.length).toBe(1024 * 1024);
    expect(sized.out).toMatch(/^x+$/);
    await rm(dir, { recursive: true, force: true });
    const streamedBody = await run('curl', ['-sS', '--http2-prior-knowledge', '-H', 'Host: svc.example.com', '-H', 'Transfer-Encoding: chunked', '--data-binary', 'abc', `http://127.0.0.1:${p.port}/echo`]);
    expect(streamedBody.out).toBe('abc');
  });

  it('local replies are HTTP/2 responses: 404 with no route, 503 for a cluster without hosts', async () => {
    const notFound = await run('curl', ['-sS', '-i', '--http2-prior-knowledge', '-H', 'Host: rooms.example.com', `http://127.0.0.1:${p.port}/lobby`]);
    expect(notFound.out).toMatch(/^HTTP\/2 404/);
    expect(notFound.out).toMatch(/^server: envoy\r?$/m);
    const passthrough = await run('curl', ['-sS', '-i', '--http2-prior-knowledge', '-H', 'Host: 127.0.0.1:1', `http://127.0.0.1:${p.port}/`]);
    expect(passthrough.out).toMatch(/^HTTP\/2 503/);
    expect(passthrough.out).toContain('upstream connect error or disconnect/reset before headers. reset reason: remote connection failure');
  });

  it('gRPC requests get trailers-only gRPC local replies: UNIMPLEMENTED for no route, UNAVAILABLE for a failed upstream', async () => {
    const client = h2connect(`http://127.0.0.1:${p.port}`);
    const call = async (authority: string, path: string): Promise<Record<string, unknown>> => {
      const req = client.request({ ':method': 'POST', ':path': path, ':authority': authority, 'content-type': 'application/grpc', te: 'trailers' });
      req.end(Buffer.from([0, 0, 0, 0, 0]));
      const [headers, flags] = (await once(req, 'response')) as [Record<string, unknown>, number];
      req.resume();
      await once(req, 'close');
      return { ...headers, endStream: (flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0 };
    };
    const noRoute = await call('rooms.example.com', '/pkg.Svc/Method');
    expect(noRoute).toMatchObject({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '12', endStream: true });
    const failed = await call('127.0.0.1:1', '/pkg.Svc/Method');
    expect(failed).toMatchObject({ ':status': 200, 'grpc-status': '14' });
    expect(String(failed['grpc-message'])).toMatch(/^upstream connect error or disconnect\/reset before headers\. reset reason: remote connection failure/);
    client.close();
  });

  it('a connection preface that arrives in pieces is still HTTP/2', async () => {
    // A relay that cuts the client's first bytes in two, with a pause in between.
    const relay = createNetServer((client) => {
      const upstream = createConnection(p.port, '127.0.0.1');
      let first = true;
      client.on('data', (c: Buffer) => {
        if (!first) return void upstream.write(c);
        first = false;
        client.pause();
        upstream.write(c.subarray(0, 5));
        setTimeout(() => {
          upstream.write(c.subarray(5));
          client.resume();
        }, 50);
      });
      upstream.pipe(client);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
    });
    relay.listen(0, '127.0.0.1');
    await once(relay, 'listening');
    const r = await run('curl', ['-sS', '-i', '--http2-prior-knowledge', '-H', 'Host: svc.example.com', `http://127.0.0.1:${(relay.address() as AddressInfo).port}/split`]);
    expect(r.out).toMatch(/^HTTP\/2 200/);
    await new Promise((resolve) => relay.close(resolve));
  });

  it('HTTP/1.1 Upgrade: h2c: a 101, then the request is answered as HTTP/2 stream 1 and the connection stays HTTP/2', async () => {
    const curl = await run('curl', ['-sS', '-i', '--http2', '-H', 'Host: svc.example.com', `http://127.0.0.1:${p.port}/upgraded`, `http://127.0.0.1:${p.port}/second`]);
    expect(curl.code, curl.out).toBe(0);
    expect(curl.out).toMatch(/^HTTP\/1\.1 101 Switching Protocols/);
    expect(curl.out.match(/HTTP\/2 200/g)).toHaveLength(2);
    expect(curl.out).toContain('"url":"/upgraded"');
    expect(curl.out).toContain('"url":"/second"');
    // nghttp's upgrade request names the proxy itself as Host: the answer on stream 1 is skiff's
    // loop refusal (508), which is enough to show the upgraded stream is served as HTTP/2.
    const nghttp = await run('nghttp', ['-nvu', `http://127.0.0.1:${p.port}/nghttp`]);
    expect(nghttp.code, nghttp.out).toBe(0);
    expect(nghttp.out).toContain('HTTP Upgrade success');
    expect(nghttp.out).toMatch(/recv \(stream_id=1\) :status: 508/);
    expect(nghttp.out).toMatch(/recv DATA frame <length=0, flags=0x01, stream_id=1>/);
    expect(nghttp.out).toContain('error_code=NO_ERROR');
    // A request with a body cannot be upgraded: it is served over HTTP/1.1.
    const withBody = await run('curl', ['-sS', '-i', '--http2', '-H', 'Host: svc.example.com', '--data-binary', 'abc', `http://127.0.0.1:${p.port}/echo`]);
    expect(withBody.out).toMatch(/^HTTP\/1\.1 200/);
    expect(withBody.out.endsWith('abc')).toBe(true);
  });

  it('nghttp: the frames are a well-formed exchange (SETTINGS, HEADERS, DATA ending the stream)', async () => {
    const r = await run('nghttp', ['-nv', '-H', ':authority: svc.example.com', `http://127.0.0.1:${p.port}/frames`]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain('recv SETTINGS frame');
    const id = /recv \(stream_id=(\d+)\) :status: 200/.exec(r.out)?.[1];
    expect(id).toBeDefined();
    expect(r.out).toMatch(new RegExp(`recv DATA frame <length=\\d+, flags=0x01, stream_id=${id}>`));
    expect(r.out).not.toContain('RST_STREAM');
  });

  it('h2load: 2000 requests, 100 streams on each of 4 connections, none failed', async () => {
    const r = await run('h2load', ['-n', '2000', '-c', '4', '-m', '100', '-H', ':authority: svc.example.com', `http://127.0.0.1:${p.port}/load`]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored/);
    expect(r.out).toMatch(/status codes: 2000 2xx/);
  });

  it('a client that stops reading holds the upstream back (flow control end to end), then gets every byte', async () => {
    const client = h2connect(`http://127.0.0.1:${p.port}`);
    const req = client.request({ ':path': '/stream', ':authority': 'svc.example.com' });
    const [headers] = (await once(req, 'response')) as [Record<string, unknown>];
    expect(headers[':status']).toBe(200);
    req.pause();
    await new Promise((r) => setTimeout(r, 500));
    // Windows and socket buffers on the way hold a few MiB at most; the upstream waits.
    expect(streamed.written).toBeLessThan(24 * 1024 * 1024);
    let received = 0;
    req.on('data', (c: Buffer) => (received += c.length));
    req.resume();
    await once(req, 'end');
    expect(received).toBe(64 * 1024 * 1024);
    client.close();
  });

  it('what HTTP/2 cannot carry is dropped or folded, never a crash: trailer te, repeated single-value headers', async () => {
    const odd = await startRawUpstream(
      'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-type: text/html\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n' +
        '5\r\nhello\r\n0\r\nte: gzip\r\nx-checksum: abc\r\n\r\n',
    );
    const q = await startProxy({ 'se.yaml': serviceEntry('odd.example.com', 80, [{ port: odd.port }]) });
    const client = h2connect(`http://127.0.0.1:${q.port}`);
    const req = client.request({ ':path': '/', ':authority': 'odd.example.com' });
    const [headers] = (await once(req, 'response')) as [IncomingHttpHeaders];
    const trailers = once(req, 'trailers');
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    await once(req, 'end');
    expect(headers[':status']).toBe(200);
    expect(headers['content-type']).toBe('text/plain');
    expect(body).toBe('hello');
    const [t] = (await trailers) as [IncomingHttpHeaders];
    expect(t['x-checksum']).toBe('abc');
    expect(t['te']).toBeUndefined();
    client.close();
    await q.close();
    await odd.close();
  });

  it('a response that ends before the request body closes the client stream (RST_STREAM NO_ERROR)', async () => {
    const client = h2connect(`http://127.0.0.1:${p.port}`);
    const req = client.request({ ':method': 'POST', ':path': '/', ':authority': '127.0.0.1:1' });
    req.write(Buffer.alloc(64 * 1024));
    const [headers] = (await once(req, 'response')) as [IncomingHttpHeaders];
    expect(headers[':status']).toBe(503);
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    await once(req, 'close');
    expect(req.rstCode).toBe(constants.NGHTTP2_NO_ERROR);
    // The whole reply arrived before the reset.
    expect(body).toBe(`upstream connect error or disconnect/reset before headers. reset reason: remote connection failure, transport failure reason: delayed connect error: 111`);
    client.close();
  });

  it('to an HTTP/2 upstream: Host is the :authority, repeated list headers are joined, request trailers arrive', async () => {
    const h2up = await startH2Upstream();
    const q = await startProxy({
      'se.yaml': h2Service(h2up.port),
    });
    // An HTTP/1.1 client with a repeated If-None-Match and a chunked body with a trailer.
    const raw = await new Promise<string>((resolve) => {
      const s = createConnection(q.port);
      let got = '';
      s.on('data', (c: Buffer) => (got += c.toString()));
      s.on('close', () => resolve(got));
      s.write('POST /up HTTP/1.1\r\nHost: h2.example.com\r\nIf-None-Match: "a"\r\nIf-None-Match: "b"\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\nx-sum: 42\r\n\r\n');
    });
    expect(raw).toMatch(/^HTTP\/1\.1 200/);
    const body = JSON.parse(raw.slice(raw.indexOf('{'), raw.lastIndexOf('}') + 1)) as { authority: string; ifNoneMatch: string };
    expect(body).toEqual({ authority: 'h2.example.com', ifNoneMatch: '"a", "b"' });
    expect(h2up.seen[0]!.headers['host']).toBeUndefined();
    expect(h2up.seen[0]!.trailers?.['x-sum']).toBe('42');
    // An HTTP/2 client's own Host header cannot disagree with its :authority.
    const client = h2connect(`http://127.0.0.1:${q.port}`);
    const req = client.request({ ':path': '/h2', ':authority': 'h2.example.com', host: 'other.example.com' });
    req.resume();
    await once(req, 'end');
    expect(h2up.seen[1]!.headers[':authority']).toBe('h2.example.com');
    client.close();
    await q.close();
    await h2up.close();
  });

  it('maxConcurrentStreams: a session takes that many streams at once, then another session is opened', async () => {
    const h2up = await startH2Upstream();
    const q = await startProxy({
      'se.yaml': `${h2Service(h2up.port)}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: h2}
spec:
  host: h2.example.com
  trafficPolicy: {connectionPool: {http: {maxConcurrentStreams: 2}}}
`,
    });
    const client = h2connect(`http://127.0.0.1:${q.port}`);
    const statuses = await Promise.all(
      Array.from({ length: 6 }, async () => {
        const req = client.request({ ':path': '/slow', ':authority': 'h2.example.com' });
        const [headers] = (await once(req, 'response')) as [IncomingHttpHeaders];
        req.resume();
        await once(req, 'end');
        return headers[':status'];
      }),
    );
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200]);
    expect(h2up.sessions()).toBe(3);
    client.close();
    await q.close();
    await h2up.close();
  });

  it('with every session full and no connection left to open, requests wait for a stream to end', async () => {
    const h2up = await startH2Upstream();
    const q = await startProxy({
      'se.yaml': `${h2Service(h2up.port)}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: h2}
spec:
  host: h2.example.com
  trafficPolicy: {connectionPool: {tcp: {maxConnections: 1}, http: {maxConcurrentStreams: 1}}}
`,
    });
    const client = h2connect(`http://127.0.0.1:${q.port}`);
    const statuses = await Promise.all(
      Array.from({ length: 3 }, async () => {
        const req = client.request({ ':path': '/slow', ':authority': 'h2.example.com' });
        const [headers] = (await once(req, 'response')) as [IncomingHttpHeaders];
        req.resume();
        await once(req, 'end');
        return headers[':status'];
      }),
    );
    expect(statuses).toEqual([200, 200, 200]);
    expect(h2up.sessions()).toBe(1);
    client.close();
    await q.close();
    await h2up.close();
  });

  it('a stream broken before it was handled does not bring the proxy down', async () => {
    // Preface, SETTINGS, then two HEADERS frames on stream 1 in one write: nghttp2 refuses the
    // second and tears the session down while the first is still queued for the handler.
    const headers = upgradeRequestFrame({ method: 'GET', path: '/', authority: 'svc.example.com', headers: new HeaderMap() }, '')!;
    const s = createConnection(p.port, '127.0.0.1');
    await once(s, 'connect');
    s.on('error', () => undefined);
    s.resume();
    s.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]), headers, headers]));
    await once(s, 'close');
    const after = await run('curl', ['-sS', '-i', '--http2-prior-knowledge', '-H', 'Host: svc.example.com', `http://127.0.0.1:${p.port}/still-here`]);
    expect(after.out).toMatch(/^HTTP\/2 200/);
  });

  it('an HTTP/2 upstream that drops its connection mid-call fails the call, and the next call gets a new session', async () => {
    const h2up = await startH2Upstream();
    const q = await startProxy({
      'se.yaml': h2Service(h2up.port),
    });
    const client = h2connect(`http://127.0.0.1:${q.port}`);
    const call = async (path: string): Promise<unknown> => {
      const req = client.request({ ':path': path, ':authority': 'h2.example.com' });
      req.on('error', () => undefined);
      const status = new Promise((resolve) => {
        req.on('response', (h: IncomingHttpHeaders) => resolve(h[':status']));
        req.on('close', () => resolve(`closed ${req.rstCode}`));
      });
      req.resume();
      return status;
    };
    expect(await call('/die')).toBe(503);
    expect(await call('/after')).toBe(200);
    expect(h2up.sessions()).toBe(2);
    client.close();
    await q.close();
    await h2up.close();
  });

  it('a graceful shutdown sends GOAWAY and lets the open stream finish', async () => {
    const q = await startProxy({ 'se.yaml': serviceEntry('svc.example.com', 80, [{ port: up.port }]) });
    const client = h2connect(`http://127.0.0.1:${q.port}`);
    const goaway = once(client, 'goaway');
    const req = client.request({ ':path': '/bytes/100000', ':authority': 'svc.example.com' });
    const [headers] = (await once(req, 'response')) as [Record<string, unknown>];
    expect(headers[':status']).toBe(200);
    const closing = q.proxy.close(false);
    const [code] = (await goaway) as [number];
    expect(code).toBe(constants.NGHTTP2_NO_ERROR);
    let received = 0;
    req.on('data', (c: Buffer) => (received += c.length));
    await once(req, 'end');
    expect(received).toBe(100000);
    client.close();
    await closing;
    await q.close();
  });
});
