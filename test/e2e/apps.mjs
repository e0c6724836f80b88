// Small programs that play the applications of the sidecar end-to-end test, run inside the
// test's network namespaces:
//   http NAME PORT           answers every request with {"name", "peer"} (peer: the client address)
//   echo NAME PORT           TCP: answers each chunk with "NAME:<chunk>"; ends its side after the client's
//   banner PORT              TCP, server-first: greets with "HELLO <port>\n", then echoes
//   tcp-client HOST PORT MSG N  N times in a row: connects, sends MSG, half-closes, prints all it
//                            reads until the server ends, one line per connection
//   tcp-greeted HOST PORT    connects, prints the first line the server sends, then closes
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer } from 'node:net';

const [mode, ...args] = process.argv.slice(2);
const ready = (port) => console.log(`listening ${port}`);

switch (mode) {
  case 'http': {
    const [name, port] = args;
    createHttpServer((req, res) => {
      req.resume();
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ name, peer: req.socket.remoteAddress, host: req.headers.host }));
    }).listen(Number(port), '0.0.0.0', () => ready(port));
    break;
  }
  case 'echo': {
    const [name, port] = args;
    createServer({ allowHalfOpen: true }, (s) => {
      s.on('data', (d) => s.write(`${name}:${d}`));
      s.on('end', () => s.end());
      s.on('error', () => s.destroy());
    }).listen(Number(port), '0.0.0.0', () => ready(port));
    break;
  }
  case 'banner': {
    const [port] = args;
    createServer({ allowHalfOpen: true }, (s) => {
      s.write(`HELLO ${port}\n`);
      s.pipe(s);
      s.on('error', () => s.destroy());
    }).listen(Number(port), '0.0.0.0', () => ready(port));
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
  default:
    console.error(`unknown mode ${mode}`);
    process.exitCode = 1;
}
