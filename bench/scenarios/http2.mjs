/**
 * P8: HTTP/2 throughput and latency under load. h2load opens 4 h2c connections (prior
 * knowledge) with 100 concurrent streams each and sends GETs for a tiny response; the direct
 * path is an h2c upstream (nginx, else node:http2). skiff takes h2c on its outbound listener,
 * routes by :authority and speaks HTTP/2 to the upstream (ServiceEntry port protocol HTTP2);
 * HAProxy, when installed, takes h2c and speaks h2c to the upstream (`proto h2`). Reported per
 * target: median req/s, p50/p99 time for request, proxy CPU per request, failed requests.
 */
import { join } from 'node:path';
import { h2loadRounds } from '../lib/h2load.mjs';
import { has, helloMesh, startH2Upstream, startHaproxy, startSkiff, writeMesh } from '../lib/peers.mjs';

const HOST = 'hello-h2';

export async function http2(ctx) {
  const { work } = ctx;
  const upstream = await startH2Upstream(work);
  const targets = [{ key: 'direct', name: `direct to ${upstream.kind}`, port: upstream.port }];
  try {
    if (has('haproxy')) targets.push(await startHaproxy(work, upstream.port, { name: 'haproxy-h2.cfg', h2: true }));
    const mesh = writeMesh(join(work, 'mesh-h2'), { 'hello.yaml': helloMesh(upstream.port, 0, { host: HOST, protocol: 'HTTP2' }) });
    targets.push(await startSkiff(mesh));
    const out = await h2loadRounds(ctx, 'P8', targets, { authority: HOST, path: '/' });
    return { upstream: upstream.kind, skiffUpstreamProtocol: 'HTTP2', ...out };
  } finally {
    for (const p of [upstream, ...targets]) p.proc?.stop();
  }
}
