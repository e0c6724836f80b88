/** Running wrk and reading its report. */
import { execFile } from 'node:child_process';

function toMs(value, unit) {
  const v = Number(value);
  return unit === 'us' ? v / 1000 : unit === 's' ? v * 1000 : v;
}

export function parseWrk(out) {
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN);
  const lat = (label) => {
    const m = new RegExp(`\\s${label}\\s+([\\d.]+)(us|ms|s)`).exec(out);
    return m ? toMs(m[1], m[2]) : NaN;
  };
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = errors ? errors.slice(1).reduce((s, x) => s + Number(x), 0) : 0;
  return { rps, requests, p50: lat('50%'), p90: lat('90%'), p99: lat('99%'), failures: non2xx + socketErrors };
}

/** Runs `wrk -t1 -cC -dS --latency` against 127.0.0.1:port with a Host header. */
export function runWrk(port, { seconds, connections = 32, host = 'hello', path = '/' }) {
  return new Promise((resolve, reject) => {
    execFile(
      'wrk',
      ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '-H', `Host: ${host}`, `http://127.0.0.1:${port}${path}`],
      { encoding: 'utf8', timeout: (seconds + 30) * 1000 },
      (err, stdout) => (err ? reject(err) : resolve(parseWrk(stdout))),
    );
  });
}
