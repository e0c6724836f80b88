/**
 * HTTP/1.1 head parsing and serialisation, the full request/response decoder push, and the
 * router's header preparation (hop-by-hop removal, forwarding headers) — all without sockets.
 */
import { randomUUID } from 'node:crypto';
import { RequestDecoder, ResponseDecoder } from '../../dist/http/codec/h1/decoder.js';
import { requestHead, responseHead } from '../../dist/http/codec/h1/encoder.js';
import { H1Error, parseRequestHead, parseResponseHead } from '../../dist/http/codec/h1/head.js';
import { HeaderMap } from '../../dist/http/headers.js';
import { prepareRequestHeaders, prepareResponseHeaders } from '../../dist/http/router/headers.js';
import { check, suite } from './harness.mjs';

const crlf = (lines) => Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1');

/** curl/wrk-like: 6 headers. */
export const CURL_REQUEST = crlf([
  'GET /api/v1/items/42?page=2 HTTP/1.1',
  'Host: reviews.default.svc.cluster.local:9080',
  'User-Agent: curl/8.5.0',
  'Accept: */*',
  'Accept-Encoding: gzip',
  'X-Request-Id: 9f2c3a56-1b7e-4c1d-8a0e-5b2f7d9c4e11',
  'Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.ZRrHA1JJJW8opsbCGfG_HACGpVUMN_a9IV7pAx_Zmeo',
]);

/** A Chrome navigation: 15 headers, some not in the interned-name table. */
export const BROWSER_REQUEST = crlf([
  'GET /productpage?u=normal HTTP/1.1',
  'Host: productpage.default.svc.cluster.local:9080',
  'Connection: keep-alive',
  'sec-ch-ua: "Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"',
  'sec-ch-ua-mobile: ?0',
  'sec-ch-ua-platform: "Linux"',
  'Upgrade-Insecure-Requests: 1',
  'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
  'Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7',
  'Sec-Fetch-Site: none',
  'Sec-Fetch-Mode: navigate',
  'Sec-Fetch-User: ?1',
  'Sec-Fetch-Dest: document',
  'Accept-Encoding: gzip, deflate, br, zstd',
  'Accept-Language: en-US,en;q=0.9,de;q=0.8',
  'Cookie: session=6f1e0a4c2b9d8e7f; theme=dark; _ga=GA1.1.1234567890.1700000000',
]);

/** A typical upstream response head: 6 headers. */
export const RESPONSE = crlf([
  'HTTP/1.1 200 OK',
  'Content-Type: application/json',
  'Content-Length: 1024',
  'Date: Mon, 06 May 2024 10:00:00 GMT',
  'Server: nginx/1.22.1',
  'Cache-Control: no-cache',
  'Connection: keep-alive',
]);

const headEnd = (buf) => buf.indexOf('\r\n\r\n');

function parseOk(parse, buf, what) {
  const head = parse(buf, 0, headEnd(buf));
  check(!(head instanceof H1Error), `${what}: ${head.message}`);
  return head;
}

export async function runHeaderBenchmarks({ quick }) {
  const s = suite('h1', { quick });

  // --- parse --------------------------------------------------------------------------------
  const curl = parseOk(parseRequestHead, CURL_REQUEST, 'curl request');
  check(curl.headers.size === 6, 'curl request has 6 headers');
  const browser = parseOk(parseRequestHead, BROWSER_REQUEST, 'browser request');
  check(browser.headers.size === 15, 'browser request has 15 headers');
  const response = parseOk(parseResponseHead, RESPONSE, 'response');
  check(response.headers.size === 6 && response.contentLength === 1024, 'response has 6 headers');

  for (const [name, parse, buf] of [
    ['parseRequestHead curl-like (6 headers)', parseRequestHead, CURL_REQUEST],
    ['parseRequestHead browser-like (15 headers)', parseRequestHead, BROWSER_REQUEST],
    ['parseResponseHead typical (6 headers)', parseResponseHead, RESPONSE],
  ]) {
    const end = headEnd(buf);
    s.add(name, () => parse(buf, 0, end).headers.size);
  }

  // --- serialise ----------------------------------------------------------------------------
  // What the router sends upstream / downstream: the parsed headers after preparation.
  const upstreamHeaders = curl.headers.clone();
  prepareRequestHeaders(fakeStream(upstreamHeaders));
  const downstreamHeaders = response.headers.clone();
  prepareResponseHeaders(downstreamHeaders, 3);
  // V8 builds the head as a rope; socket.write(str, 'latin1') flattens and copies it. The
  // "+ latin1 bytes" rows include that copy (into a reused buffer), the others only the string.
  const scratch = Buffer.allocUnsafe(16 * 1024);
  s.add(`requestHead (${upstreamHeaders.size} headers), string`, () => requestHead('GET', curl.path, upstreamHeaders).length);
  s.add(`requestHead (${upstreamHeaders.size} headers) + latin1 bytes`, () => scratch.latin1Write(requestHead('GET', curl.path, upstreamHeaders), 0));
  s.add(`responseHead (${downstreamHeaders.size} headers), string`, () => responseHead(200, downstreamHeaders).length);
  s.add(`responseHead (${downstreamHeaders.size} headers) + latin1 bytes`, () => scratch.latin1Write(responseHead(200, downstreamHeaders), 0));

  // --- decoders -----------------------------------------------------------------------------
  {
    let heads = 0;
    let completes = 0;
    const dec = new RequestDecoder({
      onHead: () => void heads++,
      onBody: () => {},
      onComplete: () => void completes++,
      onError: (e) => {
        throw new Error(`request decoder: ${e.message}`);
      },
    });
    dec.push(CURL_REQUEST);
    dec.resume();
    check(heads === 1 && completes === 1 && dec.idle, 'request decoder completes a GET');
    s.add('RequestDecoder.push GET curl-like + resume', () => {
      dec.push(CURL_REQUEST);
      dec.resume();
      return completes;
    });
  }
  {
    const body = Buffer.alloc(1024, 'x');
    const message = Buffer.concat([RESPONSE, body]);
    let bytes = 0;
    let completes = 0;
    const dec = new ResponseDecoder({
      onHead: () => {},
      onBody: (chunk) => void (bytes += chunk.length),
      onComplete: () => void completes++,
      onError: (e) => {
        throw new Error(`response decoder: ${e.message}`);
      },
    });
    dec.push(message);
    dec.resume();
    check(bytes === 1024 && completes === 1 && dec.idle, 'response decoder completes a 1 kB response');
    s.add('ResponseDecoder.push 200 + 1 kB body + resume', () => {
      dec.push(message);
      dec.resume();
      return completes;
    });
  }

  // --- router header preparation (mutates the map, so each call gets a fresh copy) ------------
  {
    const { names, values } = curl.headers;
    s.add('HeaderMap copy (6 headers), baseline for the prepare* rows', () => new HeaderMap(names.slice(), values.slice()).size);
    s.add('prepareRequestHeaders curl-like, has x-request-id (incl. copy)', () => {
      const h = new HeaderMap(names.slice(), values.slice());
      prepareRequestHeaders(fakeStream(h, false));
      return h.size;
    });
    const withoutId = curl.headers.clone();
    withoutId.remove('x-request-id');
    check(withoutId.size === 5, 'x-request-id removed');
    s.add('prepareRequestHeaders, no x-request-id: randomUUID (incl. copy)', () => {
      const h = new HeaderMap(withoutId.names.slice(), withoutId.values.slice());
      prepareRequestHeaders(fakeStream(h, false));
      return h.size;
    });
    s.add('randomUUID (baseline)', () => randomUUID().length);
  }
  {
    const { names, values } = response.headers;
    s.add('prepareResponseHeaders typical (incl. copy)', () => {
      const h = new HeaderMap(names.slice(), values.slice());
      prepareResponseHeaders(h, 2.4);
      return h.size;
    });
  }

  return s.run();
}

/** What prepareRequestHeaders reads from a DownstreamStream. */
function fakeStream(headers, hasRequestBody = false) {
  return { headers, scheme: 'http', hasRequestBody, info: { downstreamRemoteAddress: '10.1.2.3' } };
}
