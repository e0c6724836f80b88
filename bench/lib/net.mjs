/** Small network helpers for the harness: free ports, waiting for listeners, one-off GETs. */
import { request } from 'node:http';
import { connect, createServer } from 'node:net';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export function canConnect(port) {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function waitForPort(port, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await canConnect(port)) return;
    await sleep(20);
  }
  throw new Error(`nothing listening on 127.0.0.1:${port}`);
}

/** GET http://127.0.0.1:port/path with a Host header; resolves the status (0 on a network error). */
export function getStatus(port, path = '/', host = 'hello') {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.setTimeout(2000, () => req.destroy());
    req.end();
  });
}

/** Polls until GET returns 200; resolves the milliseconds since `since` (performance.now()). */
export async function until200(port, path, host, since, timeoutMs = 10_000) {
  const deadline = since + timeoutMs;
  while (performance.now() < deadline) {
    if ((await getStatus(port, path, host)) === 200) return performance.now() - since;
    await sleep(2);
  }
  throw new Error(`no 200 from 127.0.0.1:${port}${path} within ${timeoutMs} ms`);
}
