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
import { connect as h2connect, constants } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prefixOnlyService, serviceEntry, startProxy, type TestProxy } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

function run(command: string, args: readonly string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { encoding: 'utf8', timeout: 30_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1, out: stdout + stderr });
    });
  });
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
