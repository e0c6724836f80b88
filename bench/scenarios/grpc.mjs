/**
 * P9: gRPC unary calls under load. The upstream is a @grpc/grpc-js server with one method that
 * echoes its request's bytes (bench/lib/grpc-echo.mjs). h2load sends the calls as gRPC POSTs
 * (content-type application/grpc, te: trailers, a 5-byte gRPC frame header and a 128-byte
 * payload) over 4 h2c connections with 100 concurrent streams each; non-2xx responses and
 * failed streams count as failures. skiff routes by :authority and speaks HTTP/2 to the server
 * (ServiceEntry port protocol GRPC); HAProxy, when installed, is h2c on both sides.
 *
 * h2load cannot see grpc-status (an HTTP 200 with an error in the trailers counts as success),
 * so before the timed runs each target answers one call from the @grpc/grpc-js client and one
 * call with h2load's exact request; both must end with grpc-status 0 and the echoed payload.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ECHO_PATH, GRPC_HEADERS, grpcFrame, grpcJsCall, rawGrpcCall } from '../lib/grpc.mjs';
import { h2loadRounds } from '../lib/h2load.mjs';
import { has, helloMesh, startGrpcUpstream, startHaproxy, startSkiff, writeMesh } from '../lib/peers.mjs';

const HOST = 'grpc-echo';
export const PAYLOAD_BYTES = 128;

/**
 * One @grpc/grpc-js call and one call with h2load's exact request: 0 (grpc-status OK) when both
 * end with grpc-status 0 and the echoed payload, else a description of what went wrong.
 */
async function checkCalls(port, body) {
  const payload = body.subarray(5);
  const client = await grpcJsCall(port, HOST, payload);
  const raw = await rawGrpcCall(port, HOST, body);
  const problems = [];
  if (client.code !== 0 || !client.echoed) problems.push(`grpc-js: status ${client.code} ${client.details}${client.echoed ? '' : ', no echo'}`);
  if (raw.status !== 200 || raw.grpcStatus !== 0 || !raw.echoed) {
    problems.push(`h2load request: HTTP ${raw.status}, grpc-status ${raw.grpcStatus}${raw.echoed ? '' : ', no echo'}${raw.error ? `, ${raw.error}` : ''}`);
  }
  return problems.length === 0 ? 0 : problems.join('; ');
}

export async function grpcUnary(ctx) {
  const { work, step } = ctx;
  const upstream = await startGrpcUpstream();
  const targets = [{ key: 'direct', name: `direct to ${upstream.kind}`, port: upstream.port }];
  try {
    if (has('haproxy')) targets.push(await startHaproxy(work, upstream.port, { name: 'haproxy-grpc.cfg', h2: true }));
    const mesh = writeMesh(join(work, 'mesh-grpc'), { 'grpc.yaml': helloMesh(upstream.port, 0, { host: HOST, protocol: 'GRPC' }) });
    targets.push(await startSkiff(mesh));

    const body = grpcFrame(Buffer.alloc(PAYLOAD_BYTES, 0x78));
    const data = join(work, 'grpc-request.bin');
    writeFileSync(data, body);
    step('P9 grpc-status check, one call per target');
    const checks = {};
    for (const t of targets) checks[t.key] = await checkCalls(t.port, body);

    const out = await h2loadRounds(ctx, 'P9', targets, { authority: HOST, path: ECHO_PATH, data, headers: GRPC_HEADERS });
    for (const t of targets) out[t.key].grpcStatus = checks[t.key];
    return { upstream: upstream.kind, skiffUpstreamProtocol: 'GRPC', payloadBytes: PAYLOAD_BYTES, ...out };
  } finally {
    for (const p of [upstream, ...targets]) p.proc?.stop();
  }
}
