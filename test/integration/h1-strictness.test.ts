/**
 * Request smuggling corpus: malformed or ambiguous HTTP/1.1 requests sent over a real socket to
 * a running proxy. Each must be answered as Envoy answers a codec error (status, reason phrase
 * as body, `connection: close`), the connection must close, and the upstream the request names
 * must receive nothing at all. Valid edge cases at the end must still be served.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawExchange } from '../helpers/client.js';
import { serviceEntry, startProxy, type TestProxy } from '../helpers/proxy.js';
import { RawClient } from '../helpers/raw-http.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/** Reason phrases Envoy writes (and uses as the body of a codec error reply). */
const REASON: Record<number, string> = {
  400: 'Bad Request',
  431: 'Request Header Fields Too Large',
  501: 'Not Implemented',
  505: 'HTTP Version Not Supported',
};

/** A TCP server that records every byte and connection it gets and never answers. */
interface Recorder {
  readonly port: number;
  bytes: number;
  connections: number;
  close(): Promise<void>;
}

async function startRecorder(): Promise<Recorder> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    rec.connections++;
    sockets.add(socket);
    socket.on('data', (c: Buffer) => (rec.bytes += c.length));
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const rec: Recorder = {
    port: (server.address() as AddressInfo).port,
    bytes: 0,
    connections: 0,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  return rec;
}

const H = 'Host: strict\r\n';
const POST = `POST /upload HTTP/1.1\r\n${H}`;
const CHUNKED = `${POST}Transfer-Encoding: chunked\r\n\r\n`;

/** [name, raw request, expected status]. Every request names the `strict` service. */
const CORPUS: Array<[string, string, number]> = [
  // Framing ambiguity: Content-Length and Transfer-Encoding.
  ['CL and TE together', `${POST}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400],
  ['TE and CL together (TE first)', `${POST}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n`, 400],
  ['CL: 0 and TE together', `${POST}Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400],
  ['duplicate CL, same value', `${POST}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello`, 400],
  ['duplicate CL, different values', `${POST}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`, 400],
  ['CL as a list', `${POST}Content-Length: 5, 5\r\n\r\nhello`, 400],
  ['CL with a plus sign', `${POST}Content-Length: +5\r\n\r\nhello`, 400],
  ['CL negative', `${POST}Content-Length: -1\r\n\r\n`, 400],
  ['CL with an inner space', `${POST}Content-Length: 1 0\r\n\r\n0123456789`, 400],
  ['CL in hex', `${POST}Content-Length: 0x5\r\n\r\nhello`, 400],
  ['CL with a trailing letter', `${POST}Content-Length: 5a\r\n\r\nhello`, 400],
  ['CL empty', `${POST}Content-Length:\r\n\r\n`, 400],
  ['CL too big', `${POST}Content-Length: 1234567890123456\r\n\r\n`, 400],
  ['TE gzip, chunked', `${POST}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`, 501],
  ['TE chunked, gzip', `${POST}Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n`, 501],
  ['TE identity', `${POST}Transfer-Encoding: identity\r\n\r\n`, 501],
  ['TE xchunked', `${POST}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`, 501],
  ['TE chunked with a parameter', `${POST}Transfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n`, 501],
  ['TE repeated', `${POST}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 501],
  ['TE empty', `${POST}Transfer-Encoding:\r\n\r\n`, 501],
  ['CL with an unsupported TE', `${POST}Content-Length: 5\r\nTransfer-Encoding: gzip\r\n\r\nhello`, 400],
  ['TE chunked on CONNECT', `CONNECT strict:443 HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 501],
  ['CONNECT with a body', `CONNECT strict:443 HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhello`, 400],

  // Line structure.
  ['obs-fold', `GET / HTTP/1.1\r\n${H}X-A: one\r\n two\r\n\r\n`, 400],
  ['obs-fold with a tab on the first field line', `GET / HTTP/1.1\r\n\tHost: strict\r\n\r\n`, 400],
  ['bare LF ending the request line', `GET / HTTP/1.1\n${H}\r\n`, 400],
  ['bare LF ending a header line', `GET / HTTP/1.1\r\nHost: strict\nX-A: 1\r\n\r\n`, 400],
  ['bare LFs ending the head', `GET / HTTP/1.1\r\nHost: strict\n\n`, 400],
  ['bare CR in the request line', `GET / HTTP/1.1\rHost: strict\r\n\r\n`, 400],
  ['bare CR in a header value', `GET / HTTP/1.1\r\n${H}X-A: a\rb\r\n\r\n`, 400],
  ['space before the colon', `GET / HTTP/1.1\r\nHost : strict\r\n\r\n`, 400],
  ['tab before the colon', `GET / HTTP/1.1\r\n${H}Content-Length\t: 0\r\n\r\n`, 400],
  ['empty header name', `GET / HTTP/1.1\r\n${H}: value\r\n\r\n`, 400],
  ['header line without a colon', `GET / HTTP/1.1\r\n${H}NoColonHere\r\n\r\n`, 400],
  ['NUL in a header value', `GET / HTTP/1.1\r\n${H}X-A: a\x00b\r\n\r\n`, 400],
  ['control character in a header value', `GET / HTTP/1.1\r\n${H}X-A: a\x01b\r\n\r\n`, 400],
  ['DEL in a header value', `GET / HTTP/1.1\r\n${H}X-A: a\x7fb\r\n\r\n`, 400],
  ['ESC in a header value', `GET / HTTP/1.1\r\n${H}X-A: \x1b[31m\r\n\r\n`, 400],
  ['control character in a header name', `GET / HTTP/1.1\r\n${H}X\x01A: 1\r\n\r\n`, 400],
  ['separator in a header name', `GET / HTTP/1.1\r\n${H}X(A): 1\r\n\r\n`, 400],
  ['non-ASCII header name', `GET / HTTP/1.1\r\n${H}X-\xe9: 1\r\n\r\n`, 400],

  // Request line.
  ['invalid method character', `G(T / HTTP/1.1\r\n${H}\r\n`, 400],
  ['tab after the method', `GET\t/ HTTP/1.1\r\n${H}\r\n`, 400],
  ['empty method', ` / HTTP/1.1\r\n${H}\r\n`, 400],
  ['space inside the method', `GE T / HTTP/1.1\r\n${H}\r\n`, 400],
  ['two spaces after the method', `GET  / HTTP/1.1\r\n${H}\r\n`, 400],
  ['HTTP/0.9 request line', `GET /\r\n\r\n`, 400],
  ['HTTP/0.9 version', `GET / HTTP/0.9\r\n${H}\r\n`, 505],
  ['HTTP/2.0 text version', `GET / HTTP/2.0\r\n${H}\r\n`, 505],
  ['HTTP/1.2', `GET / HTTP/1.2\r\n${H}\r\n`, 505],
  ['lowercase http/1.1', `GET / http/1.1\r\n${H}\r\n`, 400],
  ['version without minor', `GET / HTTP/1\r\n${H}\r\n`, 400],
  ['version with two minor digits', `GET / HTTP/1.10\r\n${H}\r\n`, 400],
  ['trailing space after the version', `GET / HTTP/1.1 \r\n${H}\r\n`, 400],
  ['non-ASCII byte in the target', `GET /caf\xe9 HTTP/1.1\r\n${H}\r\n`, 400],
  ['space in the target', `GET /a b HTTP/1.1\r\n${H}\r\n`, 400],
  ['DEL in the target', `GET /a\x7f HTTP/1.1\r\n${H}\r\n`, 400],
  ['target that is neither origin nor absolute form', `GET strict/path HTTP/1.1\r\n${H}\r\n`, 400],
  ['asterisk target on GET', `GET * HTTP/1.1\r\n${H}\r\n`, 400],
  ['CONNECT without a port', `CONNECT strict HTTP/1.1\r\n${H}\r\n`, 400],
  ['CONNECT with an origin-form target', `CONNECT / HTTP/1.1\r\n${H}\r\n`, 400],
  ['absolute-form with userinfo', `GET http://user:pass@strict/ HTTP/1.1\r\n${H}\r\n`, 400],
  ['absolute-form with an empty authority', `GET http:///path HTTP/1.1\r\n${H}\r\n`, 400],

  // Host.
  ['missing Host', `GET / HTTP/1.1\r\nX-A: 1\r\n\r\n`, 400],
  ['empty Host', `GET / HTTP/1.1\r\nHost:\r\n\r\n`, 400],
  ['duplicate Host, same value', `GET / HTTP/1.1\r\n${H}${H}\r\n`, 400],
  ['duplicate Host, different values', `GET / HTTP/1.1\r\n${H}Host: other\r\n\r\n`, 400],
  ['Host with a path', `GET / HTTP/1.1\r\nHost: strict/evil\r\n\r\n`, 400],
  ['Host with a space', `GET / HTTP/1.1\r\nHost: str ict\r\n\r\n`, 400],
  ['Host with userinfo', `GET / HTTP/1.1\r\nHost: user@strict\r\n\r\n`, 400],
  ['Host with an empty port', `GET / HTTP/1.1\r\nHost: strict:\r\n\r\n`, 400],

  // Chunked bodies (the head is valid; the body arrives in the same packet).
  ['chunk size with 0x prefix', `${CHUNKED}0x5\r\nhello\r\n0\r\n\r\n`, 400],
  ['negative chunk size', `${CHUNKED}-5\r\nhello\r\n0\r\n\r\n`, 400],
  ['space before the chunk size', `${CHUNKED} 5\r\nhello\r\n0\r\n\r\n`, 400],
  ['space after the chunk size', `${CHUNKED}5 \r\nhello\r\n0\r\n\r\n`, 400],
  ['too many hex digits in a chunk size', `${CHUNKED}00000000000005\r\nhello\r\n0\r\n\r\n`, 400],
  ['chunk size beyond 2^53', `${CHUNKED}fffffffffffffff\r\nhello\r\n0\r\n\r\n`, 400],
  ['non-hex chunk size', `${CHUNKED}5g\r\nhello\r\n0\r\n\r\n`, 400],
  ['bare LF after a chunk size', `${CHUNKED}5\nhello\r\n0\r\n\r\n`, 400],
  ['missing CRLF after chunk data', `${CHUNKED}5\r\nhello0\r\n\r\n`, 400],
  ['chunk data longer than its size', `${CHUNKED}3\r\nhello\r\n0\r\n\r\n`, 400],
  ['bare LF after chunk data', `${CHUNKED}5\r\nhello\n0\r\n\r\n`, 400],
  ['obs-fold in trailers', `${CHUNKED}5\r\nhello\r\n0\r\nX-T: 1\r\n 2\r\n\r\n`, 400],

  // Limits.
  ['header section over 60 KiB', `GET / HTTP/1.1\r\n${H}X-Big: ${'b'.repeat(61 * 1024)}\r\n\r\n`, 431],
  [
    '101 header fields',
    `GET / HTTP/1.1\r\n${H}${Array.from({ length: 100 }, (_, i) => `X-F${i}: ${i}\r\n`).join('')}\r\n`,
    431,
  ],
];

describe('HTTP/1.1 strictness', () => {
  let recorder: Recorder;
  let echo: Upstream;
  let proxy: TestProxy;

  beforeAll(async () => {
    recorder = await startRecorder();
    echo = await startUpstream('echo');
    proxy = await startProxy({
      'strict.yaml': serviceEntry('strict', 80, [{ port: recorder.port }]),
      'echo.yaml': serviceEntry('echo', 80, [{ port: echo.port }]),
    });
  });

  afterAll(async () => {
    await proxy?.close();
    await echo?.close();
    await recorder?.close();
  });

  it(`has a corpus of at least 30 malformed requests (${CORPUS.length})`, () => {
    expect(CORPUS.length).toBeGreaterThanOrEqual(30);
    expect(new Set(CORPUS.map(([name]) => name)).size).toBe(CORPUS.length);
  });

  describe('rejects', () => {
    it.each(CORPUS)('%s', async (_name, raw, status) => {
      const { text, closed } = await rawExchange(proxy.port, Buffer.from(raw, 'latin1'), 3000);
      const reason = REASON[status]!;
      const split = text.indexOf('\r\n\r\n');
      expect(split, `response: ${JSON.stringify(text)}`).toBeGreaterThan(0);
      const [statusLine, ...fieldLines] = text.slice(0, split).split('\r\n');
      const headers = Object.fromEntries(fieldLines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      expect(statusLine).toBe(`HTTP/1.1 ${status} ${reason}`);
      expect(headers).toMatchObject({
        'content-length': String(reason.length),
        'content-type': 'text/plain',
        server: 'envoy',
        connection: 'close',
      });
      expect(headers['date']).toMatch(/ GMT$/);
      // The body is the reason phrase and nothing follows it: one reply, then the close.
      expect(text.slice(split + 4)).toBe(reason);
      expect(closed).toBe(true);
      expect(recorder.bytes).toBe(0);
    });

    it('sent nothing to the upstream, not even a connection', async () => {
      // Leaked bytes would travel through the same event loop: give them a moment to land.
      await new Promise((r) => setTimeout(r, 100));
      expect(recorder.bytes).toBe(0);
      expect(recorder.connections).toBe(0);
    });

    it('rejects a header section that passes 60 KiB before its end has arrived', async () => {
      const client = await RawClient.connect(proxy.port);
      try {
        client.write(`GET / HTTP/1.1\r\n${H}X-Big: ${'b'.repeat(62 * 1024)}`);
        const res = await client.read();
        expect(res.status).toBe(431);
        expect(res.body.toString()).toBe(REASON[431]);
        expect(res.headers['connection']).toBe('close');
        expect(await client.closed()).toBe(true);
      } finally {
        client.destroy();
      }
    });

    it('does not keep a connection whose client leaves its side open after the error reply', async () => {
      const socket = connect({ port: proxy.port, host: '127.0.0.1', allowHalfOpen: true });
      let text = '';
      let gone = false;
      socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
      socket.on('error', () => (gone = true));
      socket.on('close', () => (gone = true));
      const ended = new Promise<void>((resolve) => socket.once('end', resolve));
      try {
        await new Promise<void>((resolve) => socket.once('connect', resolve));
        socket.write(`GET / HTTP/1.1\r\nHost: strict\r\nHost: strict\r\n\r\n`);
        await ended;
        expect(text).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
        // Past the proxy's linger (1 s) the proxy side is gone: late writes are reset.
        await new Promise((r) => setTimeout(r, 1500));
        for (let i = 0; i < 20 && !gone; i++) {
          socket.write('x');
          await new Promise((r) => setTimeout(r, 50));
        }
        expect(gone).toBe(true);
      } finally {
        socket.destroy();
      }
    });

    it('answers a framing error after a valid request on the same connection, and closes', async () => {
      const client = await RawClient.connect(proxy.port);
      try {
        client.write(`GET /first HTTP/1.1\r\nHost: echo\r\n\r\n`);
        const first = await client.read();
        expect(first.status).toBe(200);
        expect(first.headers['connection']).toBeUndefined();
        const before = echo.requests.length;
        client.write(`POST /second HTTP/1.1\r\nHost: echo\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd`);
        const second = await client.read();
        expect(second.status).toBe(400);
        expect(second.body.toString()).toBe('Bad Request');
        expect(await client.closed()).toBe(true);
        expect(echo.requests.length).toBe(before);
      } finally {
        client.destroy();
      }
    });
  });

  describe('accepts valid edge cases', () => {
    async function exchange(raw: string): Promise<{ status: number; json: Record<string, unknown>; headers: Record<string, string> }> {
      const client = await RawClient.connect(proxy.port);
      try {
        client.write(raw);
        const res = await client.read();
        return { status: res.status, headers: res.headers, json: res.status === 200 ? JSON.parse(res.body.toString()) : {} };
      } finally {
        client.destroy();
      }
    }

    it('a GET with Host and no body', async () => {
      const res = await exchange('GET /ok?x=1 HTTP/1.1\r\nHost: echo\r\n\r\n');
      expect(res.status).toBe(200);
      expect(res.json).toMatchObject({ server: 'echo', method: 'GET', url: '/ok?x=1' });
    });

    it('absolute-form, whose authority replaces the Host header', async () => {
      const res = await exchange('GET http://echo/abs?q=2 HTTP/1.1\r\nHost: strict\r\n\r\n');
      expect(res.status).toBe(200);
      expect(res.json).toMatchObject({ server: 'echo', url: '/abs?q=2' });
      expect((res.json.headers as Record<string, string>).host).toBe('echo');
    });

    it('header names in any case, and a Host with a port', async () => {
      const res = await exchange('GET /case HTTP/1.1\r\nHOST: echo:80\r\nX-MiXeD-CaSe: v\r\nuser-AGENT: t\r\n\r\n');
      expect(res.status).toBe(200);
      const headers = res.json.headers as Record<string, string>;
      expect(headers['x-mixed-case']).toBe('v');
      expect(headers['user-agent']).toBe('t');
    });

    it('empty lines before the request line', async () => {
      const res = await exchange('\r\n\r\nGET /after-crlf HTTP/1.1\r\nHost: echo\r\n\r\n');
      expect(res.status).toBe(200);
      expect(res.json.url).toBe('/after-crlf');
    });

    it('Transfer-Encoding in any case, chunk extensions and hex digits in any case', async () => {
      const res = await exchange(
        'POST /te HTTP/1.1\r\nHost: echo\r\nTransfer-Encoding: CHUNKED\r\n\r\n5;ext="a b"\r\nhello\r\nA\r\n0123456789\r\n0;done\r\n\r\n',
      );
      expect(res.status).toBe(200);
      expect(res.json.bodyLength).toBe(15);
    });

    it('Content-Length with leading zeros and optional whitespace', async () => {
      const res = await exchange('POST /cl HTTP/1.1\r\nHost: echo\r\nContent-Length:  007 \t\r\n\r\nsevenxx');
      expect(res.status).toBe(200);
      expect(res.json.bodyLength).toBe(7);
    });

    it('exactly 100 header fields', async () => {
      const fields = Array.from({ length: 99 }, (_, i) => `X-F${i}: ${i}\r\n`).join('');
      const res = await exchange(`GET /many HTTP/1.1\r\nHost: echo\r\n${fields}\r\n`);
      expect(res.status).toBe(200);
      expect((res.json.headers as Record<string, string>)['x-f98']).toBe('98');
    });

    it('obs-text in a header value, passed on byte for byte', async () => {
      const res = await exchange('GET /latin1 HTTP/1.1\r\nHost: echo\r\nX-Latin: caf\xe9\r\n\r\n');
      expect(res.status).toBe(200);
      // node:http decodes header bytes as latin1, so 0xe9 arrives as U+00E9.
      expect((res.json.headers as Record<string, string>)['x-latin']).toBe('caf\u00e9');
    });

    it('never reached the service named by the Host of the absolute-form request', () => {
      expect(recorder.bytes).toBe(0);
    });
  });
});
