// Small programs that play the applications of the sidecar end-to-end test, run inside the
// test's network namespaces:
//   http NAME PORT           answers every request with {name, peer, host, xfcc, authorization (present?)}
//   echo NAME PORT           TCP: answers each chunk with "NAME:<chunk>"; ends its side after the client's
//   banner PORT              TCP, server-first: greets with "HELLO <port>\n", then echoes
//   tcp-client HOST PORT MSG N  N times in a row: connects, sends MSG, half-closes, prints all it
//                            reads until the server ends, one line per connection
//   tcp-greeted HOST PORT    connects, prints the first line the server sends, then closes
//   tcp-idle HOST PORT       connects, sends a byte, reads the reply, then stays idle and prints
//                            how many ms after the reply the connection was closed on it
//   tls NAME PORT KEY CERT   TLS: greets each client with "NAME:<SNI it sent>\n" and closes
//   tls-client HOST PORT SNI prints the first line a TLS server sends (certificate not checked)
//   original-dst PORT        prints each accepted connection's original destination as JSON
//   h2-get URL               one HTTP/2 (h2c prior knowledge) GET; prints {status, goaway (received?)}
//   tcp-hold HOST PORT       connects, sends a byte, prints "replied" at the first reply, then stays
//                            idle and prints "closed at <Date.now()>" when the connection is closed on it
//   slow-http NAME PORT H2PORT MS  HTTP/1.1 on PORT, HTTP/2 (h2c) on H2PORT: GET /slow answers after
//                            MS ms (printing "slow" when each arrives), anything else at once, with
//                            {name, path}
//   http-load BASE N RUN_MS  N concurrent GET BASE/slow, each on its own connection, and for RUN_MS a
//                            loop of GET BASE/fast on one keep-alive connection; one JSON line per
//                            request {kind, start, end, status | error} (Date.now() times), then "done"
import { readFileSync } from 'node:fs';
import { Agent, createServer as createHttpServer, get } from 'node:http';
import { connect as h2Connect, createServer as createHttp2Server } from 'node:http2';
import { connect, createServer } from 'node:net';
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls';

const [mode, ...args] = process.argv.slice(2);
const ready = (port) => console.log(`listening ${port}`);

switch (mode) {
  case 'http': {
    const [name, port] = args;
    createHttpServer((req, res) => {
      req.resume();
      res.setHeader('content-type', 'application/json');
      const peerMetadata = req.headers['x-envoy-peer-metadata'] !== undefined || req.headers['x-envoy-peer-metadata-id'] !== undefined;
      res.end(JSON.stringify({ name, peer: req.socket.remoteAddress?.replace(/^::ffff:(?=\d)/, ''), host: req.headers.host, xfcc: req.headers['x-forwarded-client-cert'], authorization: req.headers.authorization !== undefined, peerMetadata }));
    }).listen(Number(port), '::', () => ready(port));
    break;
  }
  case 'h2': {
    // An HTTP/2-only (h2c prior knowledge) server: answers with what it saw.
    const [name, port] = args;
    const server = createHttp2Server();
    server.on('stream', (stream, headers) => {
      stream.resume();
      stream.respond({ ':status': 200, 'content-type': 'application/json' });
      stream.end(JSON.stringify({ name, protocol: 'h2', path: headers[':path'], xfcc: headers['x-forwarded-client-cert'] }));
    });
    server.listen(Number(port), '::', () => ready(port));
    break;
  }
  case 'echo': {
    const [name, port] = args;
    createServer({ allowHalfOpen: true }, (s) => {
      s.on('data', (d) => s.write(`${name}:${d}`));
      s.on('end', () => s.end());
      s.on('error', () => s.destroy());
    }).listen(Number(port), '::', () => ready(port));
    break;
  }
  case 'banner': {
    const [port] = args;
    createServer({ allowHalfOpen: true }, (s) => {
      s.write(`HELLO ${port}\n`);
      s.pipe(s);
      s.on('error', () => s.destroy());
    }).listen(Number(port), '::', () => ready(port));
    break;
  }
  case 'tcp-client': {
    const [host, port, message, count] = args;
    const once = () =>
      new Promise((resolve) => {
        const s = connect({ host, port: Number(port), allowHalfOpen: true }, () => s.end(message));
        let got = '';
        s.setEncoding('utf8').on('data', (d) => (got += d));
        s.on('end', () => {
          s.destroy();
          resolve(got);
        });
        s.on('error', (e) => resolve(`error ${e.code ?? e.message}`));
      });
    for (let i = 0; i < Number(count ?? 1); i++) process.stdout.write(`${await once()}\n`);
    break;
  }
  case 'tcp-greeted': {
    const [host, port] = args;
    const s = connect({ host, port: Number(port) });
    let got = '';
    s.setEncoding('utf8').on('data', (d) => {
      got += d;
      if (got.includes('\n')) {
        process.stdout.write(got);
        s.destroy();
      }
    });
    s.on('error', (e) => {
      console.error(e.code ?? e.message);
      process.exitCode = 2;
    });
    s.setTimeout(5000, () => {
      console.error('no greeting');
      process.exitCode = 3;
      s.destroy();
    });
    break;
  }
  case 'tcp-idle': {
    const [host, port] = args;
    const s = connect({ host, port: Number(port) }, () => s.write('x'));
    let repliedAt = 0;
    s.on('data', () => (repliedAt ||= Date.now()));
    s.on('close', () => console.log(repliedAt === 0 ? 'closed before any reply' : `closed after ${Date.now() - repliedAt}`));
    s.on('error', () => undefined);
    break;
  }
  case 'tls': {
    const [name, port, key, cert] = args;
    createTlsServer({ key: readFileSync(key), cert: readFileSync(cert) }, (s) => {
      s.end(`${name}:${s.servername ?? ''}\n`);
      s.on('error', () => s.destroy());
    }).listen(Number(port), '::', () => ready(port));
    break;
  }
  case 'tls-client': {
    const [host, port, servername] = args;
    const s = tlsConnect({ host, port: Number(port), servername, rejectUnauthorized: false });
    let got = '';
    s.setEncoding('utf8').on('data', (d) => (got += d));
    s.on('end', () => process.stdout.write(got));
    s.on('error', (e) => {
      console.error(e.code ?? e.message);
      process.exitCode = 2;
    });
    break;
  }
  case 'original-dst': {
    const [port] = args;
    const { originalDestination } = await import(new URL('../../dist/listener/original-dst.js', import.meta.url).href);
    createServer((s) => {
      console.log(JSON.stringify(originalDestination(s)));
      s.destroy();
    }).listen(Number(port), '::', () => ready(port));
    break;
  }
  case 'tcp-hold': {
    const [host, port] = args;
    const s = connect({ host, port: Number(port) }, () => s.write('x'));
    s.once('data', () => console.log('replied'));
    s.on('close', () => console.log(`closed at ${Date.now()}`));
    s.on('error', () => undefined);
    break;
  }
  case 'slow-http': {
    const [name, port, h2Port, ms] = args;
    const later = (path, answer) => {
      if (path !== '/slow') return answer();
      console.log('slow');
      setTimeout(answer, Number(ms));
    };
    createHttpServer((req, res) => {
      req.resume();
      later(req.url, () => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ name, path: req.url }));
      });
    }).listen(Number(port), '::', () => ready(port));
    const h2 = createHttp2Server();
    h2.on('stream', (stream, headers) => {
      stream.resume();
      stream.on('error', () => undefined);
      later(headers[':path'], () => {
        if (stream.destroyed) return;
        stream.respond({ ':status': 200, 'content-type': 'application/json' });
        stream.end(JSON.stringify({ name, path: headers[':path'] }));
      });
    });
    h2.listen(Number(h2Port), '::', () => ready(h2Port));
    break;
  }
  case 'h2-get': {
    const [url] = args;
    const u = new URL(url);
    const session = h2Connect(u.origin);
    let goaway = false;
    let status = 0;
    session.on('goaway', () => (goaway = true));
    session.on('error', () => undefined);
    const req = session.request({ ':path': u.pathname + u.search });
    req.on('response', (h) => (status = h[':status']));
    req.resume();
    req.on('end', () => {
      console.log(JSON.stringify({ status, goaway }));
      session.close();
    });
    req.on('error', (e) => {
      console.log(JSON.stringify({ status, goaway, error: e.code ?? e.message }));
      session.destroy();
    });
    break;
  }
  case 'http-load': {
    const [base, n, runMs] = args;
    const request = (kind, agent) =>
      new Promise((resolve) => {
        const start = Date.now();
        const done = (result) => {
          console.log(JSON.stringify({ kind, start, end: Date.now(), ...result }));
          resolve();
        };
        get(`${base}/${kind}`, { agent }, (res) => {
          res.resume();
          res.on('end', () => done({ status: res.statusCode }));
          res.on('error', (e) => done({ error: e.code ?? e.message }));
        }).on('error', (e) => done({ error: e.code ?? e.message }));
      });
    const slow = Array.from({ length: Number(n) }, () => request('slow', false));
    const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
    const until = Date.now() + Number(runMs);
    const fast = (async () => {
      while (Date.now() < until) {
        await request('fast', keepAlive);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await Promise.all([...slow, fast]);
    keepAlive.destroy();
    console.log('done');
    break;
  }
  default:
    console.error(`unknown mode ${mode}`);
    process.exitCode = 1;
}
