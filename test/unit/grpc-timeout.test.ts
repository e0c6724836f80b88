/** grpc-timeout parsing and the timeout a gRPC call gets under a route timeout. */
import { describe, expect, it } from 'vitest';
import { HeaderMap } from '../../src/http/headers.js';
import { parseGrpcTimeout, routeTimeoutFor } from '../../src/http/router/grpc-timeout.js';

const grpcCall = (timeout?: string, contentType = 'application/grpc'): { headers: HeaderMap } => {
  const headers = new HeaderMap(['content-type'], [contentType]);
  if (timeout !== undefined) headers.append('grpc-timeout', timeout);
  return { headers };
};

describe('grpc-timeout', () => {
  it('parses every unit, rounding up to whole milliseconds, and refuses what is not a timeout', () => {
    expect(parseGrpcTimeout('1H')).toBe(3_600_000);
    expect(parseGrpcTimeout('2M')).toBe(120_000);
    expect(parseGrpcTimeout('3S')).toBe(3000);
    expect(parseGrpcTimeout('250m')).toBe(250);
    expect(parseGrpcTimeout('1500u')).toBe(2);
    expect(parseGrpcTimeout('1n')).toBe(1);
    // Zero, and deadlines beyond what a timer holds, are no deadline (Envoy's infinity).
    expect(parseGrpcTimeout('0S')).toBe(0);
    expect(parseGrpcTimeout('99999999H')).toBe(0);
    for (const bad of ['', '5', 'm', '123456789S', '1.5S', '-1S', '10s ']) expect(parseGrpcTimeout(bad), bad).toBeUndefined();
  });

  it('is capped by the route timeout, uncapped when the route has none, and ignored for non-gRPC requests', () => {
    expect(routeTimeoutFor(grpcCall('250m'), 1000)).toBe(250);
    expect(routeTimeoutFor(grpcCall('5S'), 1000)).toBe(1000);
    expect(routeTimeoutFor(grpcCall('5S'), 0)).toBe(5000);
    expect(routeTimeoutFor(grpcCall(), 1000)).toBe(1000);
    expect(routeTimeoutFor(grpcCall('bogus'), 0)).toBe(0);
    expect(routeTimeoutFor(grpcCall('250m', 'application/json'), 1000)).toBe(1000);
    expect(routeTimeoutFor(grpcCall('250m', 'application/grpc+proto'), 0)).toBe(250);
    expect(routeTimeoutFor(grpcCall('250m', 'application/grpc-web'), 0)).toBe(0);
    expect(routeTimeoutFor(grpcCall('0S'), 1000)).toBe(1000);
    expect(routeTimeoutFor(grpcCall('600H'), 0)).toBe(0);
  });

  it('xDS readings (GrpcTimeoutPolicy): ignore, max_grpc_timeout, max_stream_duration', () => {
    const plain = (timeout?: string) => grpcCall(timeout, 'application/json');
    // Neither field set: the header is not read.
    expect(routeTimeoutFor(grpcCall('250m'), 1000, { kind: 'ignore' })).toBe(1000);
    // max_grpc_timeout "0s" (Istio): the deadline, uncapped; no header is no timeout; non-gRPC keeps the route's.
    const istio = { kind: 'grpc', maxMs: 0, offsetMs: 0 } as const;
    expect(routeTimeoutFor(grpcCall('5S'), 1000, istio)).toBe(5000);
    expect(routeTimeoutFor(grpcCall(), 1000, istio)).toBe(0);
    expect(routeTimeoutFor(plain('250m'), 1000, istio)).toBe(1000);
    // Capped, a missing header gets the cap; the offset only when it leaves a deadline.
    const capped = { kind: 'grpc', maxMs: 2000, offsetMs: 100 } as const;
    expect(routeTimeoutFor(grpcCall('5S'), 0, capped)).toBe(2000);
    expect(routeTimeoutFor(grpcCall(), 0, capped)).toBe(2000);
    expect(routeTimeoutFor(grpcCall('1S'), 0, capped)).toBe(900);
    expect(routeTimeoutFor(grpcCall('50m'), 0, capped)).toBe(50);
    // max_stream_duration: the route timeout never applies; the header is read on any request.
    const stream = { kind: 'stream', streamMs: 0, headerMaxMs: 0, offsetMs: 0 } as const;
    expect(routeTimeoutFor(grpcCall('5S'), 1000, stream)).toBe(5000);
    expect(routeTimeoutFor(plain('250m'), 1000, stream)).toBe(250);
    expect(routeTimeoutFor(grpcCall(), 1000, stream)).toBe(0);
    const limited = { kind: 'stream', streamMs: 30_000, headerMaxMs: 2000, offsetMs: 500 } as const;
    expect(routeTimeoutFor(grpcCall('5S'), 0, limited)).toBe(1500);
    expect(routeTimeoutFor(grpcCall('300m'), 0, limited)).toBe(1);
    expect(routeTimeoutFor(grpcCall(), 0, limited)).toBe(30_000);
    expect(routeTimeoutFor(grpcCall('5S'), 0, { kind: 'stream', streamMs: 30_000, offsetMs: 0 })).toBe(30_000);
  });
});
