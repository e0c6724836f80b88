/**
 * Real bodies through the proxy: large request and response bodies in both framings,
 * backpressure (response bodies, request bodies, pipelined requests), Expect: 100-continue
 * (curl), bodiless responses, pipelining, keep-alive, connection close, HTTP/1.0, the request
 * headers timeout and request trailers.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request, type Response } from '../helpers/client.js';
import { serviceEntry, startProxy, type TestProxy } from '../helpers/proxy.js';
import { RawClient } from '../helpers/raw-http.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const TEN_MB = 10 * MiB;
/** Size of the response the backpressure test asks for. */
const FLOOD_BYTES = 64 * MiB;

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A writer's progress: bytes handed to write(), and whether it waits for 'drain'. */
interface WriteProgress {
  written: number;
  blocked: boolean;
}

/**
 * Waits (at most ~15 s) until the writer has been blocked with no progress for 300 ms; returns
 * whether that happened. Used to see backpressure reach a writer, not to time anything.
 */
async function stalled(progress: WriteProgress): Promise<boolean> {
  let last = -1;
  let stable = 0;
  for (let i = 0; i < 150 && stable < 3; i++) {
    await sleep(100);
    stable = progress.blocked && progress.written === last ? stable + 1 : 0;
    last = progress.written;
  }
  return stable === 3;
}

/** Writes `total` bytes of `piece`s to `socket`, honouring backpressure and recording progress. */
function pump(socket: Socket, piece: Buffer, total: number, progress: WriteProgress, last?: Buffer): void {
  while (progress.written < total) {
    progress.written += piece.length;
    const ok = socket.write(piece);
    if (progress.written >= total && last !== undefined) socket.write(last);
    if (!ok) {
      progress.blocked = true;
      socket.once('drain', () => {
        progress.blocked = false;
        pump(socket, piece, total, progress, last);
      });
      return;
    }
  }
}

/**
 * An upstream that does not read request bodies while held (node:http stops reading the socket
 * when the request stream is paused); it answers each request with the number of body bytes.
 */
async function startSink(): Promise<{ port: number; hold(): void; release(): void; close(): Promise<void> }> {
  let reading = true;
  const waiting: Array<() => void> = [];
  const server = createHttpServer((req, res) => {
    let count = 0;
    req.pause();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' });
      res.end(String(count));
    });
    const start = (): void => {
      req.on('data', (c: Buffer) => (count += c.length));
      req.resume();
    };
    if (reading) start();
    else waiting.push(start);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    hold: () => {
      reading = false;
    },
    release: () => {
      reading = true;
      for (const start of waiting.splice(0)) start();
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Progress of the upstream writing the /flood response, with backpressure honoured. */
const flood = { written: 0, blocked: false, finished: false };

/**
 * A raw upstream for the connection reuse test: `GET /big` gets a response of exactly
 * `BIG_TOTAL` bytes (head included) in one write, so the proxy's last 64 KiB read of it is full;
 * anything else gets `ok`.
 */
const BIG_TOTAL = 2 * MiB;
const BIG_PREFIX = 'HTTP/1.1 200 OK\r\ncontent-length: ';
/** Body length that makes the head (with its 7-digit length) and body exactly BIG_TOTAL bytes. */
const BIG_BODY = BIG_TOTAL - BIG_PREFIX.length - String(BIG_TOTAL).length - '\r\n\r\n'.length;
async function startRawUpstream(): Promise<{ server: Server; port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let pending = '';
    socket.on('data', (c: Buffer) => {
      pending += c.toString('latin1');
      let end: number;
      while ((end = pending.indexOf('\r\n\r\n')) !== -1) {
        const head = pending.slice(0, end);
        pending = pending.slice(end + 4);
        if (head.startsWith('GET /big ')) {
          socket.write(Buffer.concat([Buffer.from(`${BIG_PREFIX}${BIG_BODY}\r\n\r\n`), Buffer.alloc(BIG_BODY, 0x7a)]));
        } else {
          socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
        }
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, sockets };
}

const VIRTUAL_SERVICE = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: bodies
spec:
  hosts: [bodies]
  http:
  - match: [{uri: {prefix: /direct}}]
    directResponse: {status: 200, body: {string: direct}}
  - route: [{destination: {host: bodies}}]
`;

/** POSTs `pieces` as a chunked body (one chunk per piece), honouring backpressure. */
function postChunked(port: number, host: string, path: string, pieces: Buffer[]): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, path, method: 'POST', agent: false, headers: { host, 'transfer-encoding': 'chunked' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: () => body.toString(), json: () => JSON.parse(body.toString()) });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    let i = 0;
    const pump = (): void => {
      while (i < pieces.length) {
        if (!req.write(pieces[i++]!)) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

describe('bodies and connection handling', () => {
  let up: Upstream;
  let big: Upstream;
  let ka: Upstream;
  let kaConnections = 0;
  let raw: Awaited<ReturnType<typeof startRawUpstream>>;
  let sink: Awaited<ReturnType<typeof startSink>>;
  let proxy: TestProxy;
  let tmp: string;

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'skiff-bodies-'));
    up = await startUpstream('bodies', (req, res, body) => {
      if (req.url === '/trailers') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ trailers: req.trailers, body: body.toString('latin1'), te: req.headers['transfer-encoding'] ?? null }));
        return true;
      }
      return false;
    });
    // Large bodies use a service whose connections are not reused (each response closes it), so
    // each test stands alone; reuse after a large response has its own test below.
    big = await startUpstream('big', (req, res) => {
      res.setHeader('connection', 'close');
      if (req.url === '/flood') {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': FLOOD_BYTES });
        const chunk = Buffer.alloc(64 * 1024, 0x66);
        const pump = (): void => {
          while (flood.written < FLOOD_BYTES) {
            flood.written += chunk.length;
            if (!res.write(chunk)) {
              flood.blocked = true;
              res.once('drain', () => {
                flood.blocked = false;
                pump();
              });
              return;
            }
          }
          flood.finished = true;
          res.end();
        };
        pump();
        return true;
      }
      return false;
    });
    ka = await startUpstream('ka');
    ka.server.on('connection', () => kaConnections++);
    raw = await startRawUpstream();
    sink = await startSink();
    proxy = await startProxy({
      'bodies.yaml': serviceEntry('bodies', 80, [{ port: up.port }]),
      'bodies-vs.yaml': VIRTUAL_SERVICE,
      'big.yaml': serviceEntry('big', 80, [{ port: big.port }]),
      'ka.yaml': serviceEntry('ka', 80, [{ port: ka.port }]),
      'reuse.yaml': serviceEntry('reuse', 80, [{ port: raw.port }]),
      'sink.yaml': serviceEntry('sink', 80, [{ port: sink.port }]),
    });
  });

  afterAll(async () => {
    await proxy?.close();
    await up?.close();
    await big?.close();
    await ka?.close();
    await sink?.close();
    if (raw !== undefined) {
      for (const socket of raw.sockets) socket.destroy();
      await new Promise((r) => raw.server.close(r));
    }
    if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
  });

  describe('large bodies', () => {
    it('streams a 10 MB Content-Length request body to the upstream and back', async () => {
      const body = randomBytes(TEN_MB);
      const res = await request(proxy.port, '/echo', { method: 'POST', headers: { host: 'big' }, body });
      expect(res.status).toBe(200);
      expect(res.body.length).toBe(TEN_MB);
      expect(sha256(res.body)).toBe(sha256(body));
      const seen = big.requests.at(-1)!;
      expect(seen.bodyLength).toBe(TEN_MB);
      expect(seen.headers['content-length']).toBe(String(TEN_MB));
      expect(seen.headers['transfer-encoding']).toBeUndefined();
    });

    it('streams a 10 MB chunked request body (160 chunks) to the upstream, re-chunked', async () => {
      const body = randomBytes(TEN_MB);
      const pieces: Buffer[] = [];
      for (let off = 0; off < body.length; off += 64 * 1024) pieces.push(body.subarray(off, off + 64 * 1024));
      const res = await postChunked(proxy.port, 'big', '/echo', pieces);
      expect(res.status).toBe(200);
      expect(sha256(res.body)).toBe(sha256(body));
      const seen = big.requests.at(-1)!;
      expect(seen.bodyLength).toBe(TEN_MB);
      expect(seen.headers['transfer-encoding']).toBe('chunked');
      expect(seen.headers['content-length']).toBeUndefined();
    });

    it('relays a 10 MB Content-Length response', async () => {
      const res = await request(proxy.port, `/bytes/${TEN_MB}`, { headers: { host: 'big' } });
      expect(res.status).toBe(200);
      expect(res.headers['content-length']).toBe(String(TEN_MB));
      expect(res.body.length).toBe(TEN_MB);
      expect(sha256(res.body)).toBe(sha256(Buffer.alloc(TEN_MB, 0x61)));
    });

    it('relays a 10 MB chunked response', async () => {
      const res = await request(proxy.port, `/chunked/${TEN_MB}`, { headers: { host: 'big' } });
      expect(res.status).toBe(200);
      expect(res.headers['transfer-encoding']).toBe('chunked');
      expect(res.headers['content-length']).toBeUndefined();
      expect(res.body.length).toBe(TEN_MB);
      expect(sha256(res.body)).toBe(sha256(Buffer.alloc(TEN_MB, 0x62)));
    });
  });

  describe('backpressure', () => {
    it('stops reading from the upstream while the client does not read, then completes', async () => {
      const socket = connect(proxy.port, '127.0.0.1');
      let received = 0;
      let reading = false;
      let headLength = -1;
      let head = Buffer.alloc(0);
      const done = new Promise<void>((resolve, reject) => {
        socket.on('data', (c: Buffer) => {
          if (headLength < 0) {
            head = Buffer.concat([head, c]);
            const end = head.indexOf('\r\n\r\n');
            if (end !== -1) headLength = end + 4;
          }
          received += c.length;
          if (!reading) socket.pause();
          if (headLength >= 0 && received - headLength >= FLOOD_BYTES) resolve();
        });
        socket.on('error', reject);
        socket.on('end', () => reject(new Error(`closed after ${received} bytes`)));
      });
      done.catch(() => undefined); // awaited below; a failure before that is reported there
      try {
        socket.write('GET /flood HTTP/1.1\r\nHost: big\r\n\r\n');

        expect(await stalled(flood), `upstream wrote ${flood.written} bytes without stalling`).toBe(true);
        expect(flood.finished).toBe(false);
        // What is in flight sits in kernel socket buffers and a few stream buffers, not in the proxy.
        expect(flood.written).toBeLessThan(FLOOD_BYTES / 2);
        expect(received).toBeLessThan(MiB);
        expect(head.toString('latin1')).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
        expect(head.toString('latin1')).toContain(`content-length: ${FLOOD_BYTES}\r\n`);

        reading = true;
        socket.resume();
        await done;
        expect(flood.finished).toBe(true);
        expect(received - headLength).toBe(FLOOD_BYTES);
      } finally {
        socket.destroy();
      }
    });
  });

  describe('pipelining backpressure', () => {
    it('stops reading pipelined requests while the one before them waits for its response', async () => {
      const total = 16 * MiB;
      const client = await RawClient.connect(proxy.port);
      const progress: WriteProgress = { written: 0, blocked: false };
      sink.hold();
      try {
        // The sink does not answer while held, so the first request stays in flight.
        client.write('POST /held HTTP/1.1\r\nHost: sink\r\nContent-Length: 2\r\n\r\nhi');
        const next = Buffer.from('GET /queued HTTP/1.1\r\nHost: bodies\r\n\r\n'.repeat(1024));
        pump(client.socket, next, total, progress);
        expect(await stalled(progress), `client wrote ${progress.written} bytes without stalling`).toBe(true);
        expect(progress.written).toBeLessThan(total / 2);
        sink.release();
        const first = await client.read();
        expect(first.body.toString()).toBe('2');
        const second = await client.read();
        expect(JSON.parse(second.body.toString()).url).toBe('/queued');
      } finally {
        sink.release();
        client.destroy();
      }
    });
  });

  describe('request body backpressure', () => {
    it('stops reading a request body the upstream does not take, then completes', async () => {
      const total = 64 * MiB;
      const client = await RawClient.connect(proxy.port);
      const progress: WriteProgress = { written: 0, blocked: false };
      sink.hold();
      try {
        client.write(`POST /upload HTTP/1.1\r\nHost: sink\r\nContent-Length: ${total}\r\n\r\n`);
        pump(client.socket, Buffer.alloc(64 * 1024, 0x75), total, progress);
        expect(await stalled(progress), `client wrote ${progress.written} bytes without stalling`).toBe(true);
        // The proxy holds at most a read or two; the rest waits in kernel buffers.
        expect(progress.written).toBeLessThan(total / 2);
        sink.release();
        const res = await client.read({ timeoutMs: 20_000 });
        expect(res.status).toBe(200);
        expect(res.body.toString()).toBe(String(total));
      } finally {
        sink.release();
        client.destroy();
      }
    });

    // Regression: the router used to add a `once('drain')` listener to the upstream socket for
    // every body chunk written while the socket was congested, and leave them on the pooled
    // connection after the exchange.
    it('does not pile up drain listeners for a body of many small chunks', async () => {
      const warnings: string[] = [];
      const onWarning = (w: Error): void => {
        warnings.push(`${w.name}: ${w.message}`);
      };
      process.on('warning', onWarning);
      const client = await RawClient.connect(proxy.port);
      const progress: WriteProgress = { written: 0, blocked: false };
      sink.hold();
      try {
        client.write('POST /upload HTTP/1.1\r\nHost: sink\r\nTransfer-Encoding: chunked\r\n\r\n');
        const chunk = Buffer.concat([Buffer.from('400\r\n'), Buffer.alloc(1024, 0x63), Buffer.from('\r\n')]);
        pump(client.socket, chunk, 16 * MiB, progress, Buffer.from('0\r\n\r\n'));
        expect(await stalled(progress)).toBe(true);
        sink.release();
        const res = await client.read({ timeoutMs: 20_000 });
        expect(res.body.toString()).toBe(String((progress.written / chunk.length) * 1024));
        await sleep(50);
        expect(warnings).toEqual([]);
      } finally {
        process.off('warning', onWarning);
        sink.release();
        client.destroy();
      }
    });
  });

  describe('upstream connection reuse', () => {
    // Regression: when the last read of a response met downstream backpressure, the router
    // returned the upstream socket to the pool still paused, and the next request on it hung.
    it('serves the next request on a connection whose last response met backpressure', async () => {
      for (let i = 0; i < 5; i++) {
        const slow = await RawClient.connect(proxy.port);
        try {
          slow.write('GET /big HTTP/1.1\r\nHost: reuse\r\n\r\n');
          const res = await slow.read({ timeoutMs: 10_000 });
          expect(res.body.length).toBe(BIG_BODY);
        } finally {
          slow.destroy();
        }
        const next = await RawClient.connect(proxy.port);
        try {
          next.write(`GET /after/${i} HTTP/1.1\r\nHost: reuse\r\n\r\n`);
          const res = await next.read({ timeoutMs: 2000 });
          expect(res.body.toString()).toBe('ok');
        } finally {
          next.destroy();
        }
      }
    });
  });

  describe('Expect: 100-continue', () => {
    it('answers 100 Continue itself for curl and does not forward the expectation', async () => {
      const body = randomBytes(2 * MiB);
      const input = join(tmp, 'upload.bin');
      const output = join(tmp, 'download.bin');
      await writeFile(input, body);
      const { stdout, stderr } = await run(
        '/usr/bin/curl',
        ['-sS', '-v', '--max-time', '20', '--data-binary', `@${input}`, '-H', 'Host: big', '-o', output, '-w', '%{http_code}', `http://127.0.0.1:${proxy.port}/echo`],
        { timeout: 30_000 },
      );
      expect(stdout).toBe('200');
      expect(stderr).toMatch(/^> Expect: 100-continue\r?$/im);
      expect(stderr).toMatch(/^< HTTP\/1\.1 100 Continue\r?$/m);
      expect(sha256(await readFile(output))).toBe(sha256(body));
      const seen = big.requests.at(-1)!;
      expect(seen.bodyLength).toBe(2 * MiB);
      expect(seen.headers['expect']).toBeUndefined();
    });
  });

  describe('one connection, many exchanges', () => {
    it('serves HEAD, 204 and 304 without a body and keeps the connection usable', async () => {
      const client = await RawClient.connect(proxy.port);
      try {
        client.write('HEAD /bytes/100 HTTP/1.1\r\nHost: bodies\r\n\r\n');
        const head = await client.read({ head: true });
        expect(head.status).toBe(200);
        expect(head.headers['content-length']).toBe('100');
        expect(head.body.length).toBe(0);

        client.write('GET /status/204 HTTP/1.1\r\nHost: bodies\r\n\r\n');
        const noContent = await client.read();
        expect(noContent.status).toBe(204);
        expect(noContent.headers['content-length']).toBeUndefined();
        expect(noContent.headers['transfer-encoding']).toBeUndefined();

        client.write('GET /status/304 HTTP/1.1\r\nHost: bodies\r\n\r\n');
        const notModified = await client.read();
        expect(notModified.status).toBe(304);
        expect(notModified.headers['transfer-encoding']).toBeUndefined();

        client.write('GET /bytes/5 HTTP/1.1\r\nHost: bodies\r\n\r\n');
        const after = await client.read();
        expect(after.status).toBe(200);
        expect(after.body.toString()).toBe('aaaaa');
        // No stray body bytes arrived for the bodiless responses.
        expect(client.pending.length).toBe(0);
        expect(client.ended).toBe(false);
      } finally {
        client.destroy();
      }
    });

    it('answers pipelined requests in order, including synchronous local replies', async () => {
      const client = await RawClient.connect(proxy.port);
      try {
        client.write(
          'GET /p1 HTTP/1.1\r\nHost: bodies\r\n\r\n' +
            'GET /direct HTTP/1.1\r\nHost: bodies\r\n\r\n' +
            'HEAD /bytes/10 HTTP/1.1\r\nHost: bodies\r\n\r\n' +
            'POST /echo HTTP/1.1\r\nHost: bodies\r\nContent-Length: 4\r\n\r\nping' +
            'GET /direct/again HTTP/1.1\r\nHost: bodies\r\n\r\n' +
            'GET /status/204 HTTP/1.1\r\nHost: bodies\r\n\r\n' +
            'POST /echo HTTP/1.1\r\nHost: bodies\r\nTransfer-Encoding: chunked\r\n\r\n4\r\npong\r\n0\r\n\r\n' +
            'GET /p2 HTTP/1.1\r\nHost: bodies\r\n\r\n',
        );
        const p1 = await client.read();
        expect(JSON.parse(p1.body.toString()).url).toBe('/p1');
        const direct = await client.read();
        expect(direct.status).toBe(200);
        expect(direct.body.toString()).toBe('direct');
        const head = await client.read({ head: true });
        expect(head.headers['content-length']).toBe('10');
        const ping = await client.read();
        expect(ping.body.toString()).toBe('ping');
        const direct2 = await client.read();
        expect(direct2.body.toString()).toBe('direct');
        const noContent = await client.read();
        expect(noContent.status).toBe(204);
        const pong = await client.read();
        expect(pong.body.toString()).toBe('pong');
        const p2 = await client.read();
        expect(JSON.parse(p2.body.toString()).url).toBe('/p2');
        expect(client.ended).toBe(false);
      } finally {
        client.destroy();
      }
    });

    it('reuses one upstream connection for sequential keep-alive requests', async () => {
      const client = await RawClient.connect(proxy.port);
      const before = kaConnections;
      try {
        for (let i = 0; i < 10; i++) {
          client.write(`GET /seq/${i} HTTP/1.1\r\nHost: ka\r\n\r\n`);
          const res = await client.read();
          expect(res.status).toBe(200);
          expect(JSON.parse(res.body.toString()).url).toBe(`/seq/${i}`);
          expect(res.headers['connection']).toBeUndefined();
        }
        expect(kaConnections - before).toBe(1);
        expect(client.ended).toBe(false);
      } finally {
        client.destroy();
      }
    });

    it('closes after the response when the client sends connection: close', async () => {
      const client = await RawClient.connect(proxy.port);
      try {
        client.write('GET /bye HTTP/1.1\r\nHost: bodies\r\nConnection: close\r\n\r\n');
        const res = await client.read();
        expect(res.status).toBe(200);
        expect(res.headers['connection']).toBe('close');
        expect(await client.closed()).toBe(true);
        // Connection is hop-by-hop: the upstream does not see the client's close.
        expect(up.requests.at(-1)!.url).toBe('/bye');
        expect(up.requests.at(-1)!.headers['connection']).toBeUndefined();
      } finally {
        client.destroy();
      }
    });

    it('closes after a response sent before the request body was read', async () => {
      const client = await RawClient.connect(proxy.port);
      try {
        // The direct response is written as soon as the head is routed; most of the body is unread.
        client.write(`POST /direct/early HTTP/1.1\r\nHost: bodies\r\nContent-Length: ${MiB}\r\n\r\n`);
        client.write(Buffer.alloc(MiB, 0x65));
        const res = await client.read();
        expect(res.status).toBe(200);
        expect(res.body.toString()).toBe('direct');
        expect(res.headers['connection']).toBe('close');
        expect(await client.closed()).toBe(true);
        expect(client.pending.length).toBe(0);
      } finally {
        client.destroy();
      }
    });

    it('answers HTTP/1.0 with 426, an empty body and a close', async () => {
      const before = up.requests.length;
      const client = await RawClient.connect(proxy.port);
      try {
        client.write('GET /old HTTP/1.0\r\nHost: bodies\r\n\r\n');
        const res = await client.read();
        expect(res.statusLine).toBe('HTTP/1.1 426 Upgrade Required');
        expect(res.headers['content-length']).toBe('0');
        expect(res.headers['connection']).toBe('close');
        expect(res.body.length).toBe(0);
        expect(await client.closed()).toBe(true);
        expect(client.pending.length).toBe(0);
        expect(up.requests.length).toBe(before);
      } finally {
        client.destroy();
      }
    });

    it('forwards chunked request trailers to the upstream', async () => {
      const client = await RawClient.connect(proxy.port);
      try {
        client.write(
          'POST /trailers HTTP/1.1\r\nHost: bodies\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n' +
            '5\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: abc123\r\nX-Count: 2\r\n\r\n',
        );
        const res = await client.read();
        expect(res.status).toBe(200);
        const seen = JSON.parse(res.body.toString());
        expect(seen.body).toBe('hello world');
        expect(seen.te).toBe('chunked');
        expect(seen.trailers).toEqual({ 'x-checksum': 'abc123', 'x-count': '2' });
      } finally {
        client.destroy();
      }
    });
  });
});

describe('request headers timeout', () => {
  let up: Upstream;
  let proxy: TestProxy;

  beforeAll(async () => {
    up = await startUpstream('slowloris');
    proxy = await startProxy({
      'se.yaml': serviceEntry('slowloris', 80, [{ port: up.port }]),
      'mesh.yaml': 'apiVersion: skiff.dev/v1alpha1\nkind: MeshConfig\nmetadata:\n  name: mesh\nspec:\n  requestHeadersTimeout: 200ms\n',
    });
  });

  afterAll(async () => {
    await proxy?.close();
    await up?.close();
  });

  /** Asserts Envoy's request header timeout reply, then the close. */
  async function expectHeaderTimeout(client: RawClient): Promise<void> {
    const res = await client.read({ timeoutMs: 5000 });
    expect(res.statusLine).toBe('HTTP/1.1 408 Request Timeout');
    expect(res.body.toString()).toBe('request header timeout');
    expect(res.headers['connection']).toBe('close');
    expect(await client.closed()).toBe(true);
  }

  it('answers an unfinished head with 408 and closes', async () => {
    const client = await RawClient.connect(proxy.port);
    try {
      client.write('GET /never HTTP/1.1\r\nHost: slowloris\r\nX-Partial: ');
      await expectHeaderTimeout(client);
      expect(up.requests.length).toBe(0);
    } finally {
      client.destroy();
    }
  });

  it('times out a partial pipelined head once the request before it is answered', async () => {
    const client = await RawClient.connect(proxy.port);
    try {
      client.write('GET /first HTTP/1.1\r\nHost: slowloris\r\n\r\nGET /second HTTP/1.1\r\nHo');
      const first = await client.read();
      expect(first.status).toBe(200);
      expect(JSON.parse(first.body.toString()).url).toBe('/first');
      await expectHeaderTimeout(client);
    } finally {
      client.destroy();
    }
  });

  it('does not apply to an idle keep-alive connection, even after an empty line', async () => {
    const client = await RawClient.connect(proxy.port);
    try {
      client.write('GET /a HTTP/1.1\r\nHost: slowloris\r\n\r\n');
      expect((await client.read()).status).toBe(200);
      client.write('\r\n');
      // Longer than the timeout plus the listener's 1 s sweep interval.
      await sleep(1500);
      expect(client.ended).toBe(false);
      expect(client.pending.length).toBe(0);
      client.write('GET /b HTTP/1.1\r\nHost: slowloris\r\n\r\n');
      const res = await client.read();
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body.toString()).url).toBe('/b');
    } finally {
      client.destroy();
    }
  });
});
