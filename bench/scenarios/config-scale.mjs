/**
 * P6: config scale. A mesh of N services (each a ServiceEntry, a VirtualService with a few
 * routes and a DestinationRule with two subsets) is loaded and compiled in-process (timed), the
 * route match at N hosts is timed, and skiff is started with it: start-to-ready and the resident
 * memory it costs over a one-service mesh. HAProxy with N host-routed backends is the peer.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { has, ROOT, writeMesh } from '../lib/peers.mjs';
import { childPids, rssMb } from '../lib/proc.mjs';
import { median } from '../lib/stats.mjs';
import { timeHaproxyStart, timeSkiffStart } from './startup.mjs';

export function scaleMesh(n, upstreamPort) {
  const files = {};
  const perFile = 100;
  for (let f = 0; f * perFile < n; f++) {
    const docs = [];
    for (let i = f * perFile; i < Math.min(n, (f + 1) * perFile); i++) {
      docs.push(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc${i}}
spec:
  hosts: [svc${i}]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: ${upstreamPort}}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {http: ${upstreamPort}}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc${i}}
spec:
  host: svc${i}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc${i}}
spec:
  hosts: [svc${i}]
  http:
  - name: canary
    match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: svc${i}, subset: v2}}]
  - name: api
    match: [{uri: {regex: "/api/v[0-9]+/.*"}}]
    route: [{destination: {host: svc${i}, subset: v2}}]
  - name: default
    route:
    - {destination: {host: svc${i}, subset: v1}, weight: 90}
    - {destination: {host: svc${i}, subset: v2}, weight: 10}`);
    }
    files[`services-${String(f).padStart(3, '0')}.yaml`] = docs.join('\n---\n') + '\n';
  }
  return files;
}

function compileTime(dir, host) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--expose-gc', join(ROOT, 'bench/lib/compile-time.mjs'), dir, host], { encoding: 'utf8', timeout: 120_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(JSON.parse(stdout)),
    );
  });
}

/** Resident memory of a started process after its first request has been served. */
async function settledRss(pid) {
  await new Promise((r) => setTimeout(r, 300));
  return rssMb(pid);
}

export async function configScale(ctx) {
  const { work, upstream, settings, step, meshDir } = ctx;
  const n = settings.services;
  const dir = writeMesh(join(work, `mesh-${n}`), scaleMesh(n, upstream.port));
  const last = `svc${n - 1}`;

  step(`P6 load+compile ${n} services`);
  const compile = [];
  for (let i = 0; i < settings.startRuns; i++) compile.push(await compileTime(dir, last));

  step(`P6 start skiff with ${n} services`);
  const starts = [];
  let bigRss = NaN;
  let smallRss = NaN;
  for (let i = 0; i < settings.startRuns; i++) {
    const s = await timeSkiffStart(dir, last);
    if (i === 0) bigRss = await settledRss(s.pid);
    s.stop();
    starts.push(s);
  }
  const small = await timeSkiffStart(meshDir);
  smallRss = await settledRss(small.pid);
  small.stop();

  let haproxy;
  if (has('haproxy')) {
    step(`P6 start HAProxy with ${n} backends`);
    const runs = [];
    let rss = NaN;
    for (let i = 0; i < settings.startRuns; i++) {
      const h = await timeHaproxyStart(work, upstream.port, n, last);
      // Master-worker mode: the worker (a child) serves; count both.
      if (i === 0) rss = (await settledRss(h.pid)) + childPids(h.pid).reduce((sum, p) => sum + rssMb(p), 0);
      h.stop();
      runs.push(h.firstMs);
    }
    haproxy = { startMs: median(runs), rssMb: rss };
  }
  return {
    services: n,
    loadMs: median(compile.map((c) => c.loadMs)),
    compileMs: median(compile.map((c) => c.compileMs)),
    heapDeltaMb: median(compile.map((c) => c.heapDeltaMb)),
    matchNs: median(compile.map((c) => c.matchNs)),
    skiff: { readyMs: median(starts.map((s) => s.readyMs)), firstMs: median(starts.map((s) => s.firstMs)), rssMb: bigRss, rssDeltaMb: bigRss - smallRss },
    haproxy,
  };
}
