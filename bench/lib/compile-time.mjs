#!/usr/bin/env node
/**
 * Times config load (read + parse + validate + translate) and compile for a config folder,
 * in-process, and the route match for one host in the compiled snapshot. Prints JSON:
 * { services, loadMs, compileMs, heapDeltaMb, matchNs }.
 *
 *   node compile-time.mjs <config dir> <host to match>
 */
import { loadConfig } from '../../dist/config/load.js';
import { compileSnapshot } from '../../dist/compile/snapshot.js';
import { enableLinearRegexFallback } from '../../dist/core/re2.js';
import { HeaderMap } from '../../dist/http/headers.js';

const [dir, host] = process.argv.slice(2);
enableLinearRegexFallback();
globalThis.gc?.();
const heap0 = process.memoryUsage().heapUsed;
const t0 = performance.now();
const loaded = await loadConfig(dir);
const t1 = performance.now();
if (loaded.model === undefined) {
  process.stderr.write(loaded.diagnostics.map((d) => `${d.file}:${d.line}:${d.col}: ${d.message}`).join('\n') + '\n');
  process.exit(1);
}
const snapshot = compileSnapshot(loaded.model, 1);
const t2 = performance.now();
globalThis.gc?.();
const heapDelta = (process.memoryUsage().heapUsed - heap0) / 2 ** 20;

const req = { method: 'GET', authority: host, scheme: 'http', headers: new HeaderMap(['user-agent'], ['bench']), path: '/', pathOnly: '/', query: '' };
let hits = 0;
const N = 200_000;
for (let i = 0; i < 20_000; i++) if (snapshot.routes.resolve(host, 80).vhost?.select(req)) hits++;
const m0 = process.hrtime.bigint();
for (let i = 0; i < N; i++) if (snapshot.routes.resolve(host, 80).vhost?.select(req)) hits++;
const matchNs = Number(process.hrtime.bigint() - m0) / N;
if (hits === 0) throw new Error(`no route matched ${host}`);

process.stdout.write(
  JSON.stringify({ services: loaded.model.routeConfigs.reduce((n, rc) => n + rc.virtualHosts.length, 0), loadMs: t1 - t0, compileMs: t2 - t1, heapDeltaMb: heapDelta, matchNs }) + '\n',
);
