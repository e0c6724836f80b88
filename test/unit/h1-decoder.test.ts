/**
 * The HTTP/1.1 decoder and head parser on plain Buffers: incremental input (down to one byte per
 * push), body framing, pipelining, response framing and limits.
 */
import { describe, expect, it } from 'vitest';
import { MAX_HEADER_BYTES, RequestDecoder, ResponseDecoder } from '../../src/http/codec/h1/decoder.js';
import { H1Error, MAX_HEADERS_COUNT, parseRequestHead, type RequestHead, type ResponseHead } from '../../src/http/codec/h1/head.js';
import { internHeaderName } from '../../src/http/codec/h1/header-names.js';
import type { HeaderMap } from '../../src/http/headers.js';

interface Recorder<H> {
  heads: H[];
  bodies: Buffer[];
  trailers: Array<HeaderMap | null>;
  errors: H1Error[];
  /** Event names in order: head, body, complete, error. */
  events: string[];
  body(): string;
}

function recorder<H>(): Recorder<H> {
  const r: Recorder<H> = {
    heads: [],
    bodies: [],
    trailers: [],
    errors: [],
    events: [],
    body: () => Buffer.concat(r.bodies).toString('latin1'),
  };
  return r;
}

function requestDecoder(options: { resumeOnComplete?: boolean } = {}): { decoder: RequestDecoder; rec: Recorder<RequestHead> } {
  const rec = recorder<RequestHead>();
  const decoder: RequestDecoder = new RequestDecoder({
    onHead: (h) => {
      rec.heads.push(h);
      rec.events.push('head');
    },
    onBody: (b) => {
      rec.bodies.push(Buffer.from(b));
      rec.events.push('body');
    },
    onComplete: (t) => {
      rec.trailers.push(t);
      rec.events.push('complete');
      if (options.resumeOnComplete === true) decoder.resume();
    },
    onError: (e) => {
      rec.errors.push(e);
      rec.events.push('error');
    },
  });
  return { decoder, rec };
}

function responseDecoder(): { decoder: ResponseDecoder; rec: Recorder<ResponseHead> } {
  const rec = recorder<ResponseHead>();
  const decoder = new ResponseDecoder({
    onHead: (h) => {
      rec.heads.push(h);
      rec.events.push('head');
    },
    onBody: (b) => {
      rec.bodies.push(Buffer.from(b));
      rec.events.push('body');
    },
    onComplete: (t) => {
      rec.trailers.push(t);
      rec.events.push('complete');
    },
    onError: (e) => {
      rec.errors.push(e);
      rec.events.push('error');
    },
  });
  return { decoder, rec };
}

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

function pushBytewise(decoder: RequestDecoder | ResponseDecoder, text: string): void {
  const buf = b(text);
  for (let i = 0; i < buf.length; i++) decoder.push(buf.subarray(i, i + 1));
}

/** Parses a whole request head (text must end with CRLFCRLF). */
function parseHead(text: string): RequestHead | H1Error {
  const buf = b(text);
  return parseRequestHead(buf, 0, buf.indexOf('\r\n\r\n'));
}

function errorOf(text: string): H1Error {
  const r = parseHead(text);
  if (!(r instanceof H1Error)) throw new Error(`expected an error for ${JSON.stringify(text)}`);
  return r;
}

describe('request heads', () => {
  it('parses the request line, headers and derived fields', () => {
    const { decoder, rec } = requestDecoder();
    decoder.push(b('GET /p/q?x=1 HTTP/1.1\r\nHost: svc.local:8080\r\nUser-Agent: t\r\nX-Empty:\r\n\r\n'));
    expect(rec.events).toEqual(['head', 'complete']);
    const h = rec.heads[0]!;
    expect(h.method).toBe('GET');
    expect(h.target).toBe('/p/q?x=1');
    expect(h.path).toBe('/p/q?x=1');
    expect(h.form).toBe('origin');
    expect(h.minorVersion).toBe(1);
    expect(h.authority).toBe('svc.local:8080');
    expect(h.contentLength).toBe(-1);
    expect(h.chunked).toBe(false);
    expect(h.keepAlive).toBe(true);
    expect(h.headers.names).toEqual(['host', 'user-agent', 'x-empty']);
    expect(h.headers.values).toEqual(['svc.local:8080', 't', '']);
    expect(rec.trailers).toEqual([null]);
  });

  it('decodes a head and body pushed one byte at a time', () => {
    const { decoder, rec } = requestDecoder();
    pushBytewise(decoder, 'POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\nX-Trace: abc\r\n\r\nhello world');
    expect(rec.errors).toEqual([]);
    expect(rec.heads).toHaveLength(1);
    expect(rec.heads[0]!.headers.get('x-trace')).toBe('abc');
    expect(rec.body()).toBe('hello world');
    // Bytes are handed on as they arrive: one body event per pushed body byte.
    expect(rec.bodies).toHaveLength(11);
    expect(rec.events.at(-1)).toBe('complete');
    expect(rec.events.filter((e) => e === 'complete')).toHaveLength(1);
  });

  it('gives the same result for a request split at every possible offset', () => {
    const text = 'PUT /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-T: v\r\n\r\n';
    const whole = b(text);
    for (let cut = 1; cut < whole.length; cut++) {
      const { decoder, rec } = requestDecoder();
      decoder.push(whole.subarray(0, cut));
      decoder.push(whole.subarray(cut));
      expect(rec.errors, `cut at ${cut}`).toEqual([]);
      expect(rec.body(), `cut at ${cut}`).toBe('abc0123456789abcdef');
      expect(rec.trailers[0]?.get('x-t'), `cut at ${cut}`).toBe('v');
      expect(rec.events.filter((e) => e === 'head')).toHaveLength(1);
    }
  });

  it('ignores empty lines before the request line', () => {
    const { decoder, rec } = requestDecoder();
    decoder.push(b('\r\n\r'));
    expect(rec.events).toEqual([]);
    decoder.push(b('\nGET / HTTP/1.1\r\nHost: a\r\n\r\n'));
    expect(rec.errors).toEqual([]);
    expect(rec.heads[0]!.path).toBe('/');
  });

  it('rejects a bare LF as soon as it arrives, before the head is complete', () => {
    const { decoder, rec } = requestDecoder();
    decoder.push(b('GET / HTTP/1.1\r\nHost: a\nX: '));
    expect(rec.errors).toHaveLength(1);
    expect(rec.errors[0]!.status).toBe(400);
    decoder.push(b('y\r\n\r\n'));
    expect(rec.events).toEqual(['error']);
  });

  it('trims optional whitespace around values and keeps repeated fields in order', () => {
    const h = parseHead('GET / HTTP/1.1\r\nHost: a\r\nX-A: \t one two \t\r\nx-a: three\r\nSet-Cookie: c=1\r\n\r\n');
    if (h instanceof H1Error) throw new Error(h.message);
    expect(h.headers.get('x-a')).toBe('one two');
    expect(h.headers.count('x-a')).toBe(2);
    expect(h.headers.getJoined('x-a')).toBe('one two,three');
    expect(h.headers.names).toEqual(['host', 'x-a', 'x-a', 'set-cookie']);
  });

  it('keeps obs-text bytes in values byte-exact (latin1)', () => {
    const h = parseHead('GET / HTTP/1.1\r\nHost: a\r\nX-Bin: caf\xe9 \xff\r\n\r\n');
    if (h instanceof H1Error) throw new Error(h.message);
    expect(Buffer.from(h.headers.get('x-bin')!, 'latin1')).toEqual(Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0xff]));
  });

  it('takes the authority of an absolute-form target instead of Host', () => {
    const h = parseHead('GET HTTP://Svc.Example:81?q=1 HTTP/1.1\r\nHost: other\r\n\r\n');
    if (h instanceof H1Error) throw new Error(h.message);
    expect(h.form).toBe('absolute');
    expect(h.scheme).toBe('http');
    expect(h.authority).toBe('Svc.Example:81');
    expect(h.path).toBe('/?q=1');
    const bare = parseHead('GET http://svc HTTP/1.1\r\n\r\n');
    if (bare instanceof H1Error) throw new Error(bare.message);
    expect(bare.authority).toBe('svc');
    expect(bare.path).toBe('/');
  });

  it('accepts asterisk-form for OPTIONS and authority-form for CONNECT', () => {
    const o = parseHead('OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n');
    if (o instanceof H1Error) throw new Error(o.message);
    expect(o.form).toBe('asterisk');
    expect(o.path).toBe('*');
    const c = parseHead('CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\n');
    if (c instanceof H1Error) throw new Error(c.message);
    expect(c.form).toBe('authority');
    expect(c.authority).toBe('db.internal:5432');
    expect(c.path).toBe('');
  });

  it('derives keep-alive and 100-continue from the head', () => {
    const cases: Array<[string, boolean]> = [
      ['GET / HTTP/1.1\r\nHost: a\r\n\r\n', true],
      ['GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n', false],
      ['GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n', false],
      ['GET / HTTP/1.0\r\n\r\n', false],
      ['GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n', true],
    ];
    for (const [text, keepAlive] of cases) {
      const h = parseHead(text);
      if (h instanceof H1Error) throw new Error(h.message);
      expect(h.keepAlive, text).toBe(keepAlive);
    }
    const e = parseHead('POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n');
    if (e instanceof H1Error) throw new Error(e.message);
    expect(e.expectsContinue).toBe(true);
  });

  it('names the Envoy details and statuses of framing errors', () => {
    expect(errorOf('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n')).toMatchObject({
      status: 400,
      details: 'http1.content_length_and_chunked_not_allowed',
    });
    expect(errorOf('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n')).toMatchObject({
      status: 501,
      details: 'http1.invalid_transfer_encoding',
    });
    // Both framings is a 400 whatever the coding, checked before the coding itself.
    expect(errorOf('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nContent-Length: 1\r\n\r\n')).toMatchObject({
      status: 400,
      details: 'http1.content_length_and_chunked_not_allowed',
    });
    // Repeated Transfer-Encoding fields read as one list ("chunked,chunked"), as in Envoy.
    expect(errorOf('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n')).toMatchObject({
      status: 501,
      details: 'http1.invalid_transfer_encoding',
    });
    expect(errorOf('CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nTransfer-Encoding: chunked\r\n\r\n').status).toBe(501);
    expect(errorOf('CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nContent-Length: 1\r\n\r\n').status).toBe(400);
    expect(errorOf('GET / HTTP/1.1\r\n\r\n')).toMatchObject({ status: 400, details: 'missing_host_header' });
    expect(errorOf('GET / HTTP/2.0\r\nHost: a\r\n\r\n').status).toBe(505);
    expect(errorOf('GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n')).toMatchObject({ status: 400, details: 'http1.invalid_characters' });
    expect(errorOf('GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n')).toMatchObject({ status: 400, details: 'http1.invalid_url' });
  });
});

describe('header-name interning', () => {
  it('maps common names in any case to one lowercase string', () => {
    for (const raw of ['content-length', 'Content-Length', 'CONTENT-LENGTH', 'cOnTeNt-LeNgTh']) {
      expect(internHeaderName(raw, 0, raw.length)).toBe('content-length');
    }
    expect(internHeaderName('xx X-Request-Id yy', 3, 15)).toBe('x-request-id');
  });

  it('does not confuse names that differ only outside letters', () => {
    for (const raw of ['x_request_id', 'x-request-ix', 'content-lengths', 'hosts', 'x-b3-traceid-']) {
      expect(internHeaderName(raw, 0, raw.length), raw).toBeUndefined();
    }
  });

  it('lowercases every name the parser stores, interned or not', () => {
    const h = parseHead('GET / HTTP/1.1\r\nHOST: a\r\nX-Custom-THING: 1\r\nContent-TYPE: t\r\nX_Under_Score: 2\r\n\r\n');
    if (h instanceof H1Error) throw new Error(h.message);
    expect(h.headers.names).toEqual(['host', 'x-custom-thing', 'content-type', 'x_under_score']);
    expect(h.authority).toBe('a');
  });
});

describe('Content-Length bodies', () => {
  it('hands body bytes on as they arrive across pushes', () => {
    const { decoder, rec } = requestDecoder();
    decoder.push(b('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n012'));
    expect(rec.events).toEqual(['head', 'body']);
    expect(rec.body()).toBe('012');
    expect(decoder.midMessage).toBe(true);
    decoder.push(b('3456'));
    expect(rec.body()).toBe('0123456');
    decoder.push(b('789'));
    expect(rec.events).toEqual(['head', 'body', 'body', 'body', 'complete']);
    expect(rec.body()).toBe('0123456789');
    expect(decoder.midMessage).toBe(false);
  });

  it('completes a Content-Length: 0 request without body events', () => {
    const { decoder, rec } = requestDecoder();
    decoder.push(b('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n'));
    expect(rec.events).toEqual(['head', 'complete']);
    expect(rec.heads[0]!.contentLength).toBe(0);
  });

  it('reports EOF in the middle of a body as an error, and EOF between messages as nothing', () => {
    const mid = requestDecoder();
    mid.decoder.push(b('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab'));
    mid.decoder.end();
    expect(mid.rec.events).toEqual(['head', 'body', 'error']);
    expect(mid.rec.errors[0]!.status).toBe(400);

    const partialHead = requestDecoder();
    partialHead.decoder.push(b('GET / HT'));
    partialHead.decoder.end();
    expect(partialHead.rec.events).toEqual(['error']);

    const idle = requestDecoder();
    idle.decoder.end();
    expect(idle.rec.events).toEqual([]);
  });
});

describe('chunked bodies', () => {
  it('decodes chunks pushed byte by byte, with extensions and hex in any case', () => {
    const { decoder, rec } = requestDecoder();
    pushBytewise(
      decoder,
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n' +
        '5;name=value\r\nhello\r\n' +
        '1;a;b="q x"\r\n \r\n' +
        '00A\r\n0123456789\r\n' +
        'b\r\nabcdefghijk\r\n' +
        '0;last\r\n\r\n',
    );
    expect(rec.errors).toEqual([]);
    expect(rec.heads[0]!.chunked).toBe(true);
    expect(rec.body()).toBe('hello 0123456789abcdefghijk');
    expect(rec.trailers).toEqual([null]);
  });

  it('hands chunk data on before the chunk is complete', () => {
    const { decoder, rec } = requestDecoder();
    decoder.push(b('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n14\r\n01234'));
    expect(rec.body()).toBe('01234');
    decoder.push(b('56789012345678'));
    decoder.push(b('9\r\n0\r\n\r\n'));
    expect(rec.body()).toBe('01234567890123456789');
    expect(rec.events.at(-1)).toBe('complete');
  });

  it('returns trailers with lowercase names', () => {
    const { decoder, rec } = requestDecoder();
    decoder.push(b('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Checksum: abc\r\nGrpc-Status: 0\r\n'));
    expect(rec.events).toEqual(['head', 'body']);
    decoder.push(b('\r\n'));
    expect(rec.events).toEqual(['head', 'body', 'complete']);
    const t = rec.trailers[0]!;
    expect(t.names).toEqual(['x-checksum', 'grpc-status']);
    expect(t.get('x-checksum')).toBe('abc');
  });

  it.each([
    ['0x prefix', '0x5\r\nhello\r\n0\r\n\r\n'],
    ['negative', '-5\r\nhello\r\n0\r\n\r\n'],
    ['leading space', ' 5\r\nhello\r\n0\r\n\r\n'],
    ['space after size', '5 \r\nhello\r\n0\r\n\r\n'],
    ['space before extension', '5 ;a=b\r\nhello\r\n0\r\n\r\n'],
    ['too many hex digits', '00000000000005\r\nhello\r\n0\r\n\r\n'],
    ['non-hex', 'g\r\nhello\r\n0\r\n\r\n'],
    ['empty size', '\r\nhello\r\n0\r\n\r\n'],
    ['bare LF after size', '5\nhello\r\n0\r\n\r\n'],
    ['bare CR in extension', '5;a\rb\r\nhello\r\n0\r\n\r\n'],
    ['control character in extension', '5;a=\x01\r\nhello\r\n0\r\n\r\n'],
    ['data longer than size', '3\r\nhello\r\n0\r\n\r\n'],
    ['data not followed by CRLF', '5\r\nhelloX\r\n0\r\n\r\n'],
    ['data followed by bare LF', '5\r\nhello\n0\r\n\r\n'],
    ['bare LF ending the trailer section', '0\r\n\n'],
    ['obs-fold in trailers', '0\r\nX-A: 1\r\n  folded\r\n\r\n'],
    ['trailer without colon', '0\r\nnot a field\r\n\r\n'],
  ])('rejects a chunked body with %s', (_name, body) => {
    const head = 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n';
    // Whole, and one byte at a time: the verdict must not depend on how bytes arrive.
    for (const bytewise of [false, true]) {
      const { decoder, rec } = requestDecoder();
      if (bytewise) pushBytewise(decoder, head + body);
      else decoder.push(b(head + body));
      expect(rec.errors, `bytewise=${bytewise}`).toHaveLength(1);
      expect(rec.errors[0]!.status).toBe(400);
      expect(rec.events).not.toContain('complete');
    }
  });

  it('rejects a chunk-size line longer than 4 KiB before its end arrives', () => {
    const { decoder, rec } = requestDecoder();
    decoder.push(b('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;' + 'x'.repeat(5000)));
    expect(rec.errors.map((e) => e.status)).toEqual([400]);
  });

  it('ignores input after an error', () => {
    const { decoder, rec } = requestDecoder();
    decoder.push(b('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'));
    decoder.push(b('GET / HTTP/1.1\r\nHost: a\r\n\r\n'));
    decoder.resume();
    expect(rec.events).toEqual(['head', 'error']);
  });
});

describe('pipelining', () => {
  const two = 'GET /one HTTP/1.1\r\nHost: a\r\n\r\nPOST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz';

  it('pauses after each message until resumed', () => {
    const { decoder, rec } = requestDecoder();
    decoder.push(b(two));
    expect(rec.heads.map((h) => h.path)).toEqual(['/one']);
    expect(rec.events).toEqual(['head', 'complete']);
    expect(decoder.idle).toBe(false);
    expect(decoder.heldBytes).toBe(b(two).length - b('GET /one HTTP/1.1\r\nHost: a\r\n\r\n').length);
    decoder.resume();
    expect(rec.heads.map((h) => h.path)).toEqual(['/one', '/two']);
    expect(rec.body()).toBe('xyz');
    expect(rec.events).toEqual(['head', 'complete', 'head', 'body', 'complete']);
    decoder.resume();
    expect(decoder.idle).toBe(true);
  });

  it('holds bytes pushed while paused, including a partial next head', () => {
    const { decoder, rec } = requestDecoder();
    decoder.push(b('GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /tw'));
    decoder.push(b('o HTTP/1.1\r\nHo'));
    expect(rec.heads).toHaveLength(1);
    decoder.resume();
    expect(rec.heads).toHaveLength(1);
    expect(decoder.idle).toBe(false);
    decoder.push(b('st: a\r\n\r\n'));
    expect(rec.heads.map((h) => h.path)).toEqual(['/one', '/two']);
  });

  it('reads on when the owner resumes from inside onComplete', () => {
    const { decoder, rec } = requestDecoder({ resumeOnComplete: true });
    decoder.push(b(two + 'GET /three HTTP/1.1\r\nHost: a\r\n\r\n'));
    expect(rec.heads.map((h) => h.path)).toEqual(['/one', '/two', '/three']);
    expect(rec.events.filter((e) => e === 'complete')).toHaveLength(3);
  });

  it('gives the bytes after a CONNECT head to takeHeld', () => {
    const { decoder, rec } = requestDecoder();
    decoder.push(b('CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n\x00\x01binary'));
    decoder.push(b('-more'));
    expect(rec.events).toEqual(['head', 'complete']);
    expect(decoder.takeHeld()?.toString('latin1')).toBe('\x00\x01binary-more');
    expect(decoder.takeHeld()).toBeNull();
    decoder.stop();
    decoder.push(b('GET / HTTP/1.1\r\nHost: a\r\n\r\n'));
    decoder.resume();
    expect(rec.events).toEqual(['head', 'complete']);
  });
});

describe('partial heads from a peer that does not speak HTTP', () => {
  it('a response that does not start with HTTP/1. fails at once, without a terminator', () => {
    const { decoder, rec } = responseDecoder();
    decoder.push(b('SSH-2.0-OpenSSH_9.2\r\n'));
    expect(rec.events).toEqual(['error']);
    expect(rec.errors[0]!.message).toBe('malformed status line');
  });

  it('a response start that is a prefix of HTTP/1. is still awaited', () => {
    const { decoder, rec } = responseDecoder();
    decoder.push(b('HTT'));
    decoder.push(b('P/1.1 204 No Content\r\n\r\n'));
    expect(rec.events).toEqual(['head', 'complete']);
  });

  it('a request whose method has a non-token character fails at once', () => {
    const { decoder, rec } = requestDecoder();
    decoder.push(b('GE(T / HTTP/1.1\r\nHo'));
    expect(rec.events).toEqual(['error']);
  });

  it('a request line starting with a space fails at once', () => {
    const { decoder, rec } = requestDecoder();
    decoder.push(b(' GET / HTTP/1.1\r\n'));
    expect(rec.events).toEqual(['error']);
  });
});

describe('response framing', () => {
  it('reads a Content-Length body', () => {
    const { decoder, rec } = responseDecoder();
    pushBytewise(decoder, 'HTTP/1.1 201 Created\r\nContent-Length: 4\r\nX-Up: 1\r\n\r\nbody');
    expect(rec.heads[0]!.status).toBe(201);
    expect(rec.heads[0]!.reason).toBe('Created');
    expect(rec.body()).toBe('body');
    expect(rec.events.at(-1)).toBe('complete');
  });

  it('reads no body for a HEAD response, though Content-Length is set', () => {
    const { decoder, rec } = responseDecoder();
    decoder.expectBodylessResponse = true;
    decoder.push(b('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n'));
    expect(rec.events).toEqual(['head', 'complete']);
    expect(decoder.takeHeld()).toBeNull();
  });

  it.each([204, 304])('reads no body for a %i response', (status) => {
    const { decoder, rec } = responseDecoder();
    decoder.push(b(`HTTP/1.1 ${status} X\r\nContent-Length: 10\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok`));
    expect(rec.events).toEqual(['head', 'complete']);
    decoder.resume();
    expect(rec.heads.map((h) => h.status)).toEqual([status, 200]);
    expect(rec.body()).toBe('ok');
  });

  it('reads 1xx responses as bodiless messages before the final one', () => {
    const { decoder, rec } = responseDecoder();
    decoder.push(b('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n'));
    decoder.resume();
    decoder.resume();
    expect(rec.heads.map((h) => h.status)).toEqual([100, 103, 200]);
    expect(rec.body()).toBe('hi');
    expect(rec.events.filter((e) => e === 'complete')).toHaveLength(3);
  });

  it('reads a body without framing until the connection closes', () => {
    const { decoder, rec } = responseDecoder();
    decoder.push(b('HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nsome'));
    expect(decoder.readingUntilClose).toBe(true);
    decoder.push(b(' more'));
    expect(rec.events).toEqual(['head', 'body', 'body']);
    decoder.end();
    expect(rec.events.at(-1)).toBe('complete');
    expect(rec.body()).toBe('some more');
    expect(rec.heads[0]!.keepAlive).toBe(false);
  });

  it('reads a chunked response with trailers', () => {
    const { decoder, rec } = responseDecoder();
    pushBytewise(decoder, 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nGrpc-Status: 0\r\n\r\n');
    expect(rec.body()).toBe('abc');
    expect(rec.trailers[0]?.get('grpc-status')).toBe('0');
  });

  it('accepts a status line without a reason phrase', () => {
    const { decoder, rec } = responseDecoder();
    decoder.push(b('HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n'));
    expect(rec.heads[0]!.status).toBe(404);
    expect(rec.heads[0]!.reason).toBe('');
  });

  it.each([
    ['both framings', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n'],
    ['an unknown transfer coding', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n'],
    ['a two-digit status', 'HTTP/1.1 20 OK\r\n\r\n'],
    ['status 600', 'HTTP/1.1 600 Odd\r\n\r\n'],
    ['HTTP/2 in the status line', 'HTTP/2.0 200 OK\r\n\r\n'],
    ['a control character in the reason', 'HTTP/1.1 200 O\x01K\r\n\r\n'],
    ['duplicate Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n'],
  ])('rejects a response with %s', (_name, text) => {
    const { decoder, rec } = responseDecoder();
    decoder.push(b(text));
    expect(rec.events).toEqual(['error']);
    expect(rec.errors[0]!.status).toBe(400);
  });
});

describe('limits', () => {
  /** A request head of exactly `size` bytes, padded with one header. */
  function headOfSize(size: number): string {
    const start = 'GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ';
    const end = '\r\n\r\n';
    return start + 'p'.repeat(size - start.length - end.length) + end;
  }

  it('accepts a header section of exactly 60 KiB', () => {
    const { decoder, rec } = requestDecoder();
    decoder.push(b(headOfSize(MAX_HEADER_BYTES)));
    expect(rec.events).toEqual(['head', 'complete']);
  });

  it('rejects a header section over 60 KiB with 431', () => {
    const { decoder, rec } = requestDecoder();
    decoder.push(b(headOfSize(MAX_HEADER_BYTES + 1)));
    expect(rec.events).toEqual(['error']);
    expect(rec.errors[0]).toMatchObject({ status: 431, details: 'http1.headers_too_large' });
  });

  it('rejects an unfinished header section once it passes 60 KiB, across pushes', () => {
    const { decoder, rec } = requestDecoder();
    decoder.push(b('GET / HTTP/1.1\r\nHost: a\r\nX-Pad: '));
    const chunk = b('q'.repeat(8 * 1024));
    for (let i = 0; i < 7; i++) decoder.push(chunk);
    expect(rec.events).toEqual([]);
    decoder.push(chunk);
    expect(rec.errors.map((e) => e.status)).toEqual([431]);
  });

  function headWithFields(count: number): string {
    let s = 'GET / HTTP/1.1\r\nHost: a\r\n';
    for (let i = 1; i < count; i++) s += `X-H${i}: ${i}\r\n`;
    return s + '\r\n';
  }

  it(`accepts ${MAX_HEADERS_COUNT} header fields and rejects one more with 431`, () => {
    const ok = requestDecoder();
    ok.decoder.push(b(headWithFields(MAX_HEADERS_COUNT)));
    expect(ok.rec.events).toEqual(['head', 'complete']);
    expect(ok.rec.heads[0]!.headers.size).toBe(MAX_HEADERS_COUNT);

    const tooMany = requestDecoder();
    tooMany.decoder.push(b(headWithFields(MAX_HEADERS_COUNT + 1)));
    expect(tooMany.rec.events).toEqual(['error']);
    expect(tooMany.rec.errors[0]).toMatchObject({ status: 431, details: 'http1.too_many_headers' });
  });

  it('rejects more than the field limit in trailers with 431', () => {
    const { decoder, rec } = requestDecoder();
    let trailers = '';
    for (let i = 0; i <= MAX_HEADERS_COUNT; i++) trailers += `T${i}: v\r\n`;
    decoder.push(b(`POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n${trailers}\r\n`));
    expect(rec.events).toEqual(['head', 'error']);
    expect(rec.errors[0]!.status).toBe(431);
  });

  it('rejects unfinished trailers over 60 KiB with 431', () => {
    const { decoder, rec } = requestDecoder();
    decoder.push(b('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Big: '));
    decoder.push(b('t'.repeat(MAX_HEADER_BYTES + 1)));
    expect(rec.events).toEqual(['head', 'error']);
    expect(rec.errors[0]!.status).toBe(431);
  });
});
