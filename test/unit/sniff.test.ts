/**
 * Protocol detection on first bytes: streams captured from real clients (Node tls and http2,
 * curl, openssl s_client, raw sockets), fed whole, one byte at a time and in two halves, plus
 * hand-built and corrupted ClientHellos and request lines.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { connect as http2Connect } from 'node:http2';
import { connect as netConnect, createServer, type AddressInfo } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { beforeAll, describe, expect, it } from 'vitest';
import { MAX_SNIFF_BYTES, sniff, type Sniffed } from '../../src/listener/sniff.js';

// === capturing real clients ===

/** Something that connected to the capture server; `stop` tears it down. */
interface Client {
  stop(): Promise<void>;
}

/**
 * Starts a server on 127.0.0.1:0, runs `start(port)`, and returns the first connection's bytes
 * once it has been quiet for `quietMs` (a client that waits for the server sends nothing more).
 */
async function captureFirstBytes(start: (port: number) => Client, quietMs = 300): Promise<Buffer> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const bytes = new Promise<Buffer>((resolve) => {
    server.once('connection', (socket) => {
      const chunks: Buffer[] = [];
      let timer = setTimeout(done, quietMs);
      function done(): void {
        clearTimeout(timer);
        socket.destroy();
        resolve(Buffer.concat(chunks));
      }
      socket.on('error', () => {});
      socket.on('end', done);
      socket.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        clearTimeout(timer);
        timer = setTimeout(done, quietMs);
      });
    });
  });
  const client = start(port);
  try {
    return await bytes;
  } finally {
    await client.stop();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** A child process as a client; `stop` kills it (if still running) and waits for its exit. */
function processClient(command: string, args: string[]): Client {
  const child: ChildProcess = spawn(command, args, { stdio: ['pipe', 'ignore', 'ignore'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.on('error', () => {});
  return {
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill();
      await exited;
    },
  };
}

function socketClient(port: number, payload?: Buffer): Client {
  const socket = netConnect(port, '127.0.0.1', () => {
    if (payload !== undefined) socket.write(payload);
  });
  socket.on('error', () => {});
  return { async stop() { socket.destroy(); } };
}

const hasCommand = (name: string): boolean => spawnSync(name, ['--version'], { stdio: 'ignore' }).error === undefined;
const HAS_CURL = hasCommand('curl');
const HAS_OPENSSL = spawnSync('openssl', ['version'], { stdio: 'ignore' }).error === undefined;

// === feeding ===

interface Decision {
  readonly result: Sniffed | undefined;
  /** How many bytes had arrived when the answer first became defined, or -1. */
  readonly at: number;
}

/**
 * Feeds `chunks` as a caller would (accumulating, sniffing after each chunk), checking that once
 * an answer is given every longer prefix gives the same answer.
 */
function feed(chunks: readonly Buffer[]): Decision {
  // sniff is pure, so prefixes of one buffer stand in for a growing accumulation buffer.
  const all = Buffer.concat(chunks);
  let received = 0;
  let decision: Decision = { result: undefined, at: -1 };
  for (const chunk of chunks) {
    received += chunk.length;
    const acc = all.subarray(0, received);
    const result = sniff(acc);
    if (decision.result === undefined) {
      if (result !== undefined) decision = { result, at: acc.length };
    } else {
      expect(result).toEqual(decision.result);
    }
  }
  return decision;
}

function bytewise(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i++) out.push(data.subarray(i, i + 1));
  return out;
}

function halves(data: Buffer): Buffer[] {
  const mid = data.length >> 1;
  return [data.subarray(0, mid), data.subarray(mid)];
}

/**
 * Asserts `expected` for the whole stream and for the same stream fed byte by byte and in two
 * halves; returns the byte count at which the bytewise feed decided.
 */
function expectStream(data: Buffer, expected: Sniffed | undefined): number {
  expect(sniff(data)).toEqual(expected);
  const byByte = feed(bytewise(data));
  expect(byByte.result).toEqual(expected);
  expect(feed(halves(data)).result).toEqual(expected);
  for (let i = 0; i < byByte.at - 1; i++) expect(sniff(data.subarray(0, i))).toBeUndefined();
  return byByte.at;
}

// === hand-built TLS ===

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function u24(n: number): Buffer {
  const b = Buffer.alloc(3);
  b.writeUIntBE(n, 0, 3);
  return b;
}

function extension(type: number, body: Buffer): Buffer {
  return Buffer.concat([u16(type), u16(body.length), body]);
}

function sniExtension(host: string): Buffer {
  const name = Buffer.from(host, 'latin1');
  const entry = Buffer.concat([Buffer.from([0]), u16(name.length), name]);
  return extension(0, Buffer.concat([u16(entry.length), entry]));
}

function alpnExtension(protocols: string[]): Buffer {
  const list = Buffer.concat(protocols.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p, 'latin1')])));
  return extension(16, Buffer.concat([u16(list.length), list]));
}

/** A ClientHello handshake message (header included) with the given extensions block. */
function clientHello(extensions: Buffer[] | null, sessionId = Buffer.alloc(32, 7)): Buffer {
  const parts = [
    Buffer.from([0x03, 0x03]),
    Buffer.alloc(32, 0xaa),
    Buffer.from([sessionId.length]),
    sessionId,
    u16(4),
    Buffer.from([0x13, 0x01, 0x13, 0x02]),
    Buffer.from([1, 0]),
  ];
  if (extensions !== null) {
    const block = Buffer.concat(extensions);
    parts.push(u16(block.length), block);
  }
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([1]), u24(body.length), body]);
}

/** Wraps handshake bytes in handshake records of at most `size` bytes each. */
function records(handshake: Buffer, size = 16384): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; i < handshake.length; i += size) {
    const fragment = handshake.subarray(i, i + size);
    out.push(Buffer.from([0x16, 0x03, 0x01]), u16(fragment.length), fragment);
  }
  return Buffer.concat(out);
}

/** The handshake message carried by a single-record capture. */
function unwrap(stream: Buffer): Buffer {
  expect(stream[0]).toBe(0x16);
  return stream.subarray(5, 5 + stream.readUInt16BE(3));
}

const tls = (sni: string | undefined, alpn: string[]): Sniffed => ({ kind: 'tls', sni, alpn });
const TCP: Sniffed = { kind: 'tcp' };
const HTTP1: Sniffed = { kind: 'http1' };
const H2: Sniffed = { kind: 'h2' };

/** Sniffs without letting an exception escape unnoticed: a throw fails with the input. */
function safeSniff(data: Buffer): Sniffed | undefined {
  try {
    return sniff(data);
  } catch (err) {
    throw new Error(`sniff threw on ${data.toString('hex')}: ${String(err)}`);
  }
}

// === tests ===

describe('sniff: real TLS clients', () => {
  let nodeHello: Buffer;
  let noSniHello: Buffer;

  beforeAll(async () => {
    nodeHello = await captureFirstBytes((port) => {
      const socket = tlsConnect({
        host: '127.0.0.1',
        port,
        servername: 'reviews.default.svc.cluster.local',
        ALPNProtocols: ['istio-http/1.1', 'h2'],
        rejectUnauthorized: false,
      });
      socket.on('error', () => {});
      return { async stop() { socket.destroy(); } };
    });
    noSniHello = await captureFirstBytes((port) => {
      const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false });
      socket.on('error', () => {});
      return { async stop() { socket.destroy(); } };
    });
  });

  it('reads SNI and ALPN from a Node tls.connect ClientHello, deciding at its last byte', () => {
    const expected = tls('reviews.default.svc.cluster.local', ['istio-http/1.1', 'h2']);
    const at = expectStream(nodeHello, expected);
    expect(at).toBe(5 + unwrap(nodeHello).length);
  });

  it('reports no SNI when tls.connect targets an IP without servername', () => {
    expectStream(noSniHello, tls(undefined, []));
  });

  it('reassembles the same hello split across two records, and across many tiny records', () => {
    const handshake = unwrap(nodeHello);
    const expected = tls('reviews.default.svc.cluster.local', ['istio-http/1.1', 'h2']);
    const two = records(handshake, Math.ceil(handshake.length / 2));
    expect(two.length).toBe(nodeHello.length + 5);
    expect(expectStream(two, expected)).toBe(two.length);
    for (const size of [1, 2, 3, 7, 100]) expect(sniff(records(handshake, size))).toEqual(expected);
    expectStream(records(handshake, 3), expected);
  });

  it('lowercases the SNI', () => {
    const hello = records(clientHello([sniExtension('Reviews.Default.SVC'), alpnExtension(['h2'])]));
    expectStream(hello, tls('reviews.default.svc', ['h2']));
  });

  it('never throws on any single-byte corruption or truncation of a real hello', () => {
    for (let i = 0; i < nodeHello.length; i++) {
      for (const value of [0x00, 0x01, 0x7f, 0x80, 0xff, nodeHello[i]! ^ 0x01]) {
        const corrupt = Buffer.from(nodeHello);
        corrupt[i] = value;
        const result = safeSniff(corrupt);
        if (result !== undefined) expect(['tls', 'tcp']).toContain(result.kind);
        safeSniff(corrupt.subarray(0, i + 1));
      }
    }
  });

  it.skipIf(!HAS_OPENSSL)('reads SNI and ALPN from openssl s_client (skipped when openssl is not installed)', async () => {
    const hello = await captureFirstBytes((port) =>
      processClient('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'x.example', '-alpn', 'h2']),
    );
    expectStream(hello, tls('x.example', ['h2']));
  });
});

describe('sniff: real plaintext clients', () => {
  it.skipIf(!HAS_CURL)('detects a curl HTTP/1.1 request at the end of its request line', async () => {
    const request = await captureFirstBytes((port) =>
      processClient('curl', ['-s', '-o', '/dev/null', '--max-time', '5', `http://127.0.0.1:${port}/productpage?u=1`]),
    );
    expect(request.toString('latin1')).toMatch(/^GET \/productpage\?u=1 HTTP\/1\.1\r\n/);
    expect(expectStream(request, HTTP1)).toBe(request.indexOf('\r\n') + 2);
  });

  it.skipIf(!HAS_CURL)('detects the h2 preface from curl --http2-prior-knowledge at byte 24', async () => {
    const preface = await captureFirstBytes((port) =>
      processClient('curl', ['-s', '-o', '/dev/null', '--max-time', '5', '--http2-prior-knowledge', `http://127.0.0.1:${port}/`]),
    );
    expect(preface.length).toBeGreaterThan(24);
    expect(expectStream(preface, H2)).toBe(24);
  });

  it('detects the h2 preface from Node http2.connect', async () => {
    const preface = await captureFirstBytes((port) => {
      const session = http2Connect(`http://127.0.0.1:${port}`);
      session.on('error', () => {});
      return { async stop() { session.destroy(); } };
    });
    expect(expectStream(preface, H2)).toBe(24);
  });

  it('treats redis and postgres first bytes as tcp, deciding at the first impossible byte', async () => {
    const redis = await captureFirstBytes((port) => socketClient(port, Buffer.from('*1\r\n$4\r\nPING\r\n')));
    expect(expectStream(redis, TCP)).toBe(3);
    const startup = Buffer.from('\0\0\0\0\0\x03\0\0user\0postgres\0\0', 'latin1');
    startup.writeUInt32BE(startup.length, 0);
    const postgres = await captureFirstBytes((port) => socketClient(port, startup));
    expect(expectStream(postgres, TCP)).toBe(1);
  });

  it('has no answer for a server-first protocol whose client sends nothing', async () => {
    const silent = await captureFirstBytes((port) => socketClient(port), 400);
    expect(silent.length).toBe(0);
    expect(sniff(silent)).toBeUndefined();
  });
});

describe('sniff: HTTP/1.x request lines', () => {
  const decide = (text: string): Sniffed | undefined => sniff(Buffer.from(text, 'latin1'));

  it.each([
    'GET / HTTP/1.1\r\n',
    'GET /x HTTP/1.0\r\nHost: a\r\n\r\n',
    'CONNECT reviews:9080 HTTP/1.1\r\n',
    'OPTIONS * HTTP/1.1\r\n',
    'get /lowercase-token HTTP/1.1\r\n',
    `${'M'.repeat(20)} / HTTP/1.1\r\n`,
    'GET /caf\xe9 HTTP/1.1\r\n',
  ])('accepts %j', (line) => {
    expect(expectStream(Buffer.from(line, 'latin1'), HTTP1)).toBe(line.indexOf('\r\n') + 2);
  });

  it.each([
    ['PRI * HTTP/1.1\r\n', 12],
    ['PRI / HTTP/1.1\r\n', 5],
    ['GET / HTTP/2.0\r\n', 12],
    ['GET / HTTP/1.2\r\n', 14],
    ['GET / HTTP/1.1\n', 15],
    ['GET  / HTTP/1.1\r\n', 5],
    ['GET /a b HTTP/1.1\r\n', 8],
    ['GET /\r\n', 6],
    ['GET\r\n', 4],
    [' GET / HTTP/1.1\r\n', 1],
    [`${'M'.repeat(21)} / HTTP/1.1\r\n`, 21],
    ['SSH-2.0-OpenSSH_9.6\r\n', 20],
    ['\x00\x01', 1],
  ])('rejects %j at byte %i', (line, at) => {
    expect(expectStream(Buffer.from(line, 'latin1'), TCP)).toBe(at);
  });

  it('waits on viable prefixes', () => {
    for (const prefix of ['G', 'GET', 'GET ', 'GET /', 'GET / ', 'GET / HTTP/1.', 'GET / HTTP/1.1', 'GET / HTTP/1.1\r']) {
      expect(decide(prefix)).toBeUndefined();
    }
    expect(sniff(Buffer.alloc(0))).toBeUndefined();
  });

  it('gives up on a request line longer than 8 KiB', () => {
    const line = Buffer.from(`GET /${'a'.repeat(9000)} HTTP/1.1\r\n`);
    expect(sniff(line.subarray(0, 8191))).toBeUndefined();
    expect(expectStream(line, TCP)).toBe(8192);
    const fits = Buffer.from(`GET /${'a'.repeat(8000)} HTTP/1.1\r\n`);
    expect(sniff(fits)).toEqual(HTTP1);
  });
});

describe('sniff: HTTP/2 preface', () => {
  const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

  it('waits on every proper prefix and answers h2 at 24 bytes', () => {
    expect(expectStream(preface, H2)).toBe(24);
  });

  it('answers tcp on a mismatch after the shared PRI prefix', () => {
    expect(expectStream(Buffer.from('PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n', 'latin1'), TCP)).toBe(19);
    expect(expectStream(Buffer.from('PRI * HTTP/1.1\r\n\r\n', 'latin1'), TCP)).toBe(12);
  });
});

describe('sniff: malformed and unusual ClientHellos', () => {
  const good = clientHello([sniExtension('a.example'), alpnExtension(['h2', 'http/1.1'])]);

  it('accepts the hand-built baseline, and hellos without extensions', () => {
    expectStream(records(good), tls('a.example', ['h2', 'http/1.1']));
    expectStream(records(clientHello(null)), tls(undefined, []));
    expectStream(records(clientHello([], Buffer.alloc(0))), tls(undefined, []));
  });

  /** Rewrites the byte at `offset` of the handshake message. */
  function patch8(handshake: Buffer, offset: number, value: number): Buffer {
    const copy = Buffer.from(handshake);
    copy[offset] = value;
    return copy;
  }
  /** Rewrites the two bytes at `offset` of the handshake message. */
  function patch16(handshake: Buffer, offset: number, value: number): Buffer {
    const copy = Buffer.from(handshake);
    copy.writeUInt16BE(value, offset);
    return copy;
  }
  // Offsets in `good`: 4 header + 2 version + 32 random + 1 + 32 session id = 71 cipher suites
  // length; 71 + 2 + 4 = 77 compression; 79 extensions length; 81 first extension (SNI).
  const SUITES = 71;
  const EXTENSIONS = 79;
  const SNI_EXT_LENGTH = 83;
  const SNI_LIST = 85;
  const SNI_NAME_LENGTH = 88;

  it.each([
    ['extensions length past the end', (h: Buffer) => patch16(h, EXTENSIONS, h.length - EXTENSIONS - 2 + 1)],
    ['extensions length short of the end', (h: Buffer) => patch16(h, EXTENSIONS, h.length - EXTENSIONS - 2 - 1)],
    ['extension length past the extensions', (h: Buffer) => patch16(h, SNI_EXT_LENGTH, 0xfff0)],
    ['SNI list length past the extension', (h: Buffer) => patch16(h, SNI_LIST, h.readUInt16BE(SNI_LIST) + 1)],
    ['SNI name length past the list', (h: Buffer) => patch16(h, SNI_NAME_LENGTH, 0x4000)],
    ['odd cipher suites length', (h: Buffer) => patch16(h, SUITES, 3)],
    ['cipher suites length past the message', (h: Buffer) => patch16(h, SUITES, 0xfffe)],
    ['session id longer than 32', (h: Buffer) => patch8(h, 38, 33)],
    ['message length shorter than its fields', (h: Buffer) => Buffer.concat([Buffer.from([1]), u24(20), h.subarray(4)])],
    ['message length past its extensions', (h: Buffer) => Buffer.concat([Buffer.from([1]), u24(h.length - 4 + 10), h.subarray(4), Buffer.alloc(10)])],
    ['a ServerHello instead', (h: Buffer) => patch8(h, 0, 2)],
    ['an empty ALPN name', () => clientHello([extension(16, Buffer.from([0, 3, 0, 1, 0x68]))])],
    ['an empty SNI list', () => clientHello([extension(0, u16(0))])],
    ['a duplicate SNI extension', () => clientHello([sniExtension('a'), sniExtension('b')])],
    ['an SNI host_name with NUL', () => clientHello([sniExtension('a\0b')])],
    ['a truncated extension header', () => {
      const h = clientHello([sniExtension('a')]);
      const body = Buffer.concat([h.subarray(4, EXTENSIONS), u16(h.length - EXTENSIONS - 2 + 2), h.subarray(EXTENSIONS + 2), Buffer.from([0, 5])]);
      return Buffer.concat([Buffer.from([1]), u24(body.length), body]);
    }],
  ] as const)('answers tcp for %s', (_name, mutate) => {
    const stream = records(mutate(good));
    expect(expectStream(stream, TCP)).toBeLessThanOrEqual(stream.length);
  });

  it.each([
    ['a non-handshake first record', Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28])],
    ['a record version 2.x', Buffer.concat([Buffer.from([0x16, 0x02, 0x00]), u16(good.length), good])],
    ['a zero-length record', Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00])],
    ['a record longer than 2^14', Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), u16(16385), good])],
    ['an SSLv2-compatible hello', Buffer.from('802e0103010015000000100100800300800700c0060040020080040080', 'hex')],
  ])('answers tcp for %s', (_name, stream) => {
    expectStream(stream, TCP);
  });

  it('answers tcp when an alert record interrupts a split hello', () => {
    const split = records(good, 40);
    const alert = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]);
    expect(expectStream(Buffer.concat([split.subarray(0, 45), alert, split.subarray(45)]), TCP)).toBe(46);
  });

  it('waits while a hello claiming a huge length is short of MAX_SNIFF_BYTES, then answers', () => {
    // An absurd length cannot match any extensions block: decided tcp once that length arrives.
    const absurd = Buffer.concat([Buffer.from([1]), u24(0xffffff), good.subarray(4)]);
    const absurdStream = Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), u16(16384), absurd]);
    expect(sniff(absurdStream.subarray(0, 5 + EXTENSIONS))).toBeUndefined();
    expect(sniff(absurdStream)).toEqual(TCP);
    // A 20000-byte hello whose SNI and ALPN come first: 'tls' with them at the byte limit.
    const padding = 20000 - good.length;
    const big = clientHello([sniExtension('big.example'), alpnExtension(['h2']), extension(21, Buffer.alloc(padding))]);
    const stream = records(big);
    expect(stream.length).toBeGreaterThan(MAX_SNIFF_BYTES);
    const at = expectStream(stream.subarray(0, MAX_SNIFF_BYTES + 100), tls('big.example', ['h2']));
    expect(at).toBe(MAX_SNIFF_BYTES);
    expect(sniff(stream)).toEqual(tls('big.example', ['h2']));
  });

  it('always answers from MAX_SNIFF_BYTES on', () => {
    for (let b = 0; b < 256; b++) {
      const data = Buffer.alloc(MAX_SNIFF_BYTES, b);
      expect(safeSniff(data)).toBeDefined();
    }
    const claimed = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x40, 0x00, 0x01]), u24(0x3ffc), Buffer.alloc(MAX_SNIFF_BYTES, 3)]);
    expect(safeSniff(claimed.subarray(0, MAX_SNIFF_BYTES))).toBeDefined();
  });

  it('never throws on random bytes behind a handshake record header', () => {
    let seed = 42;
    const random = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
    for (let n = 0; n < 2000; n++) {
      const body = Buffer.alloc(1 + (random() << 1));
      for (let i = 0; i < body.length; i++) body[i] = random();
      body[0] = 1;
      const stream = Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), u16(body.length), body]);
      for (let i = 1; i <= stream.length; i += 7) safeSniff(stream.subarray(0, i));
      safeSniff(stream);
    }
  });
});
