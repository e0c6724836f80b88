#!/usr/bin/env node
/**
 * An open-loop, constant-rate HTTP/1.1 load generator (no coordinated omission).
 *
 *   node rate-client.mjs --port P --host H --rate R --connections C --seconds S [--body N] [--path /x]
 *
 * Request i is due at t0 + i/R and goes to connection i mod C. If that connection is still busy
 * when the request is due, the request waits, and its latency is counted from the moment it was
 * due: a slow server cannot hide latency by slowing the client down. Latency is measured with
 * process.hrtime to the last byte of the response. Prints one JSON line:
 * { sent, completed, errors, durationS, latenciesUs: { p50, p90, p99, p999, max, mean } }.
 */
import { connect } from 'node:net';
import { ResponseDecoder } from '../../dist/http/codec/h1/decoder.js';

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? fallback : args[i + 1];
};
const PORT = Number(opt('port'));
const HOST = opt('host', 'hello');
const RATE = Number(opt('rate', 1000));
const CONNECTIONS = Number(opt('connections', 16));
const SECONDS = Number(opt('seconds', 5));
const BODY = Number(opt('body', 1024));
const PATH = opt('path', '/');

const body = Buffer.alloc(BODY, 0x78);
const request = Buffer.concat([
  Buffer.from(
    `${BODY > 0 ? 'POST' : 'GET'} ${PATH} HTTP/1.1\r\nHost: ${HOST}\r\nUser-Agent: skiff-bench\r\n` +
      (BODY > 0 ? `Content-Type: application/octet-stream\r\nContent-Length: ${BODY}\r\n` : '') +
      '\r\n',
    'latin1',
  ),
  body,
]);

const now = () => Number(process.hrtime.bigint()) / 1000; // µs
const latencies = [];
let sent = 0;
let completed = 0;
let errors = 0;

class Connection {
  constructor() {
    /** Due times (µs) of requests waiting to be written, oldest first. */
    this.queue = [];
    /** Time origin (µs) of the request on the wire, or null. */
    this.inFlight = null;
    this.status = 0;
    this.closed = false;
    this.socket = connect({ port: PORT, host: '127.0.0.1', noDelay: true });
    this.ready = new Promise((resolve, reject) => {
      this.socket.once('connect', resolve);
      this.socket.once('error', reject);
    });
    this.decoder = new ResponseDecoder({
      onHead: (head) => {
        this.status = head.status;
      },
      onBody: () => {},
      onComplete: () => {
        const origin = this.inFlight;
        this.inFlight = null;
        if (this.status >= 200 && this.status < 400) {
          completed++;
          latencies.push(now() - origin);
        } else {
          errors++;
        }
        this.decoder.resume();
        this.pump();
      },
      onError: () => {
        errors++;
        this.inFlight = null;
        this.socket.destroy();
      },
    });
    this.socket.on('data', (chunk) => this.decoder.push(chunk));
    this.socket.on('error', () => {});
    this.socket.on('close', () => {
      if (this.inFlight !== null) errors++;
      errors += this.queue.length;
      this.queue = [];
      this.inFlight = null;
      this.closed = true;
    });
  }

  /** Queues a request whose latency counts from `origin` (µs). */
  enqueue(origin) {
    if (this.closed) {
      errors++;
      return;
    }
    this.queue.push(origin);
    this.pump();
  }

  pump() {
    if (this.inFlight !== null || this.queue.length === 0 || this.closed) return;
    this.inFlight = this.queue.shift();
    sent++;
    this.socket.write(request);
  }
}

const conns = Array.from({ length: CONNECTIONS }, () => new Connection());
await Promise.all(conns.map((c) => c.ready));

const interval = 1e6 / RATE;
const total = Math.round(RATE * SECONDS);
const t0 = now() + 1000;
let next = 0;

await new Promise((resolve) => {
  const tick = () => {
    const t = now();
    while (next < total && t0 + next * interval <= t) {
      const conn = conns[next % CONNECTIONS];
      const due = t0 + next * interval;
      // On an idle connection the request leaves now: time it from now, so the client's own
      // timer lateness is not charged to the server. On a busy connection it must wait, and that
      // wait is the server's doing: time it from when it was due.
      const idle = conn.inFlight === null && conn.queue.length === 0;
      conn.enqueue(idle ? t : due);
      next++;
    }
    if (next >= total) {
      resolve();
      return;
    }
    setTimeout(tick, Math.max(0, (t0 + next * interval - now()) / 1000 - 0.2));
  };
  tick();
});

// Wait for the last responses (bounded).
const deadline = Date.now() + 5000;
while (completed + errors < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
errors += total - completed - errors;
for (const c of conns) c.socket.destroy();

latencies.sort((a, b) => a - b);
const pct = (p) => (latencies.length === 0 ? NaN : latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]);
const mean = latencies.reduce((s, x) => s + x, 0) / Math.max(1, latencies.length);
process.stdout.write(
  JSON.stringify({
    sent,
    completed,
    errors,
    durationS: SECONDS,
    latenciesUs: { p50: pct(50), p90: pct(90), p99: pct(99), p999: pct(99.9), max: latencies.at(-1) ?? NaN, mean },
  }) + '\n',
);
