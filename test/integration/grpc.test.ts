/**
 * gRPC through skiff with @grpc/grpc-js as the real client and server: the client speaks h2c
 * to skiff, which routes by :authority and reaches the server over HTTP/2 (the service port is
 * declared GRPC). Unary, server-, client- and bidi-streaming calls, metadata and status
 * trailers, trailers-only errors, deadlines, a fault abort with grpcStatus, retries on
 * UNAVAILABLE, and PERMISSION_DENIED-style local replies.
 */
import { once } from 'node:events';
import { connect as h2connect } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProxy, type TestProxy } from '../helpers/proxy.js';

const identity = { serialize: (b: Buffer): Buffer => b, deserialize: (b: Buffer): Buffer => b };

const SERVICE: grpc.ServiceDefinition = {
  Echo: { path: '/test.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: identity.serialize, requestDeserialize: identity.deserialize, responseSerialize: identity.serialize, responseDeserialize: identity.deserialize },
  Count: { path: '/test.Echo/Count', requestStream: false, responseStream: true, requestSerialize: identity.serialize, requestDeserialize: identity.deserialize, responseSerialize: identity.serialize, responseDeserialize: identity.deserialize },
  Sum: { path: '/test.Echo/Sum', requestStream: true, responseStream: false, requestSerialize: identity.serialize, requestDeserialize: identity.deserialize, responseSerialize: identity.serialize, responseDeserialize: identity.deserialize },
  Chat: { path: '/test.Echo/Chat', requestStream: true, responseStream: true, requestSerialize: identity.serialize, requestDeserialize: identity.deserialize, responseSerialize: identity.serialize, responseDeserialize: identity.deserialize },
};

type Client = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

describe('gRPC through skiff', () => {
  let server: grpc.Server;
  let serverPort = 0;
  let shadow: grpc.Server;
  /** :authority of each call the shadow server received. */
  const shadowCalls: string[] = [];
  let p: TestProxy;
  let client: Client;
  /** Calls to /test.Echo/Echo with metadata `fail-first: n` fail with UNAVAILABLE n times. */
  const failures = new Map<string, number>();

  beforeAll(async () => {
    server = new grpc.Server();
    server.addService(SERVICE, {
      Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        const text = call.request.toString();
        const key = call.metadata.get('call-id')[0]?.toString();
        const failFirst = Number(call.metadata.get('fail-first')[0] ?? 0);
        if (key !== undefined && failFirst > 0) {
          const seen = failures.get(key) ?? 0;
          failures.set(key, seen + 1);
          if (seen < failFirst) return cb({ code: grpc.status.UNAVAILABLE, details: 'try again' });
        }
        if (text === 'not-found') return cb({ code: grpc.status.NOT_FOUND, details: 'no such thing' });
        if (text.startsWith('sleep:')) {
          setTimeout(() => cb(null, Buffer.from('late')), Number(text.slice(6)));
          return;
        }
        const trailer = new grpc.Metadata();
        trailer.set('x-trailer', 'kept');
        cb(null, Buffer.from(`echo:${text}:${call.metadata.get('x-client')[0] ?? ''}`), trailer);
      },
      Count: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
        const n = Number(call.request.toString());
        for (let i = 0; i < n; i++) call.write(Buffer.from(String(i)));
        call.end();
      },
      Sum: (call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        let sum = 0;
        call.on('data', (b: Buffer) => (sum += Number(b.toString())));
        call.on('end', () => cb(null, Buffer.from(String(sum))));
      },
      Chat: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        call.on('data', (b: Buffer) => call.write(Buffer.from(`re:${b.toString()}`)));
        call.on('end', () => call.end());
      },
    });
    serverPort = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
    );
    shadow = new grpc.Server();
    shadow.addService(SERVICE, {
      Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        shadowCalls.push(`${call.getPath()} ${call.getHost()}`);
        cb(null, Buffer.from('shadow'));
      },
      Count: () => undefined,
      Sum: () => undefined,
      Chat: () => undefined,
    });
    const shadowPort = await new Promise<number>((resolve, reject) =>
      shadow.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
    );
    p = await startProxy({
      'grpc.yaml': `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo}
spec:
  hosts: [echo.example.com]
  ports: [{number: 50051, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {grpc: ${serverPort}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shadow}
spec:
  hosts: [shadow.example.com]
  ports: [{number: 50051, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {grpc: ${shadowPort}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo.example.com]
  http:
  - match: [{headers: {x-fault: {exact: abort}}}]
    fault: {abort: {grpcStatus: RESOURCE_EXHAUSTED, percentage: {value: 100}}}
    route: [{destination: {host: echo.example.com}}]
  - match: [{headers: {x-mirror: {exact: yes}}}]
    route: [{destination: {host: echo.example.com}}]
    mirror: {host: shadow.example.com}
  - match: [{uri: {prefix: /test.Echo/}}]
    route: [{destination: {host: echo.example.com}}]
    retries: {attempts: 3, retryOn: unavailable, perTryTimeout: 2s}
`,
    });
    const Ctor = grpc.makeGenericClientConstructor(SERVICE, 'Echo');
    client = new Ctor(`127.0.0.1:${p.port}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'echo.example.com:50051' }) as unknown as Client;
  });

  afterAll(async () => {
    client?.close();
    await p?.close();
    server?.forceShutdown();
    shadow?.forceShutdown();
  });

  const unary = (text: string, metadata = new grpc.Metadata(), deadlineMs?: number): Promise<{ err: grpc.ServiceError | null; value?: Buffer; trailers?: grpc.Metadata }> =>
    new Promise((resolve) => {
      const options = deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs };
      let result: { err: grpc.ServiceError | null; value?: Buffer } | undefined;
      let trailers: grpc.Metadata | undefined;
      // The callback and the status (with the trailers) may come in either order.
      const settle = (): void => {
        if (result !== undefined && trailers !== undefined) resolve({ ...result, trailers });
      };
      const call = client['Echo']!(Buffer.from(text), metadata, options, (err: grpc.ServiceError | null, value?: Buffer) => {
        result = { err, ...(value !== undefined ? { value } : {}) };
        settle();
      }) as grpc.ClientUnaryCall;
      call.on('status', (s: grpc.StatusObject) => {
        trailers = s.metadata;
        settle();
      });
    });

  it('unary: the reply, request metadata and response trailers pass through', async () => {
    const md = new grpc.Metadata();
    md.set('x-client', 'abc');
    const r = await unary('hi', md);
    expect(r.err).toBeNull();
    expect(r.value!.toString()).toBe('echo:hi:abc');
    expect(r.trailers?.get('x-trailer')).toEqual(['kept']);
    const record = p.records[p.records.length - 1]!;
    expect(record.upstreamCluster).toBe('outbound|50051||echo.example.com');
  });

  it('an error status from the server (trailers-only) reaches the client with its message', async () => {
    const r = await unary('not-found');
    expect(r.err?.code).toBe(grpc.status.NOT_FOUND);
    expect(r.err?.details).toBe('no such thing');
  });

  it('server streaming: 1000 messages in order', async () => {
    const call = client['Count']!(Buffer.from('1000')) as grpc.ClientReadableStream<Buffer>;
    const got: string[] = [];
    call.on('data', (b: Buffer) => got.push(b.toString()));
    await new Promise((resolve, reject) => {
      call.on('end', resolve);
      call.on('error', reject);
    });
    expect(got).toHaveLength(1000);
    expect(got.every((v, i) => v === String(i))).toBe(true);
  });

  it('client streaming and bidi streaming', async () => {
    const sum = await new Promise<string>((resolve, reject) => {
      const call = client['Sum']!((err: grpc.ServiceError | null, v?: Buffer) => (err ? reject(err) : resolve(v!.toString()))) as grpc.ClientWritableStream<Buffer>;
      for (let i = 1; i <= 100; i++) call.write(Buffer.from(String(i)));
      call.end();
    });
    expect(sum).toBe('5050');
    const chat = client['Chat']!() as grpc.ClientDuplexStream<Buffer, Buffer>;
    const replies: string[] = [];
    chat.on('data', (b: Buffer) => replies.push(b.toString()));
    const ended = new Promise((resolve) => chat.on('end', resolve));
    for (const m of ['a', 'b', 'c']) chat.write(Buffer.from(m));
    chat.end();
    await ended;
    expect(replies).toEqual(['re:a', 're:b', 're:c']);
  });

  it('a deadline shorter than the server takes ends the call with DEADLINE_EXCEEDED', async () => {
    const r = await unary('sleep:1000', new grpc.Metadata(), 200);
    expect(r.err?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
  });

  it('grpc-timeout bounds the call at the proxy: past the deadline the upstream is cancelled (504 UT, UNAVAILABLE)', async () => {
    // A raw HTTP/2 client that sends grpc-timeout but does not enforce it itself.
    const session = h2connect(`http://127.0.0.1:${p.port}`);
    const call = async (deadline: string, text: string): Promise<Record<string, unknown>> => {
      const payload = Buffer.from(text);
      const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, payload.length]), payload]);
      const req = session.request({ ':method': 'POST', ':path': '/test.Echo/Echo', ':authority': 'echo.example.com:50051', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': deadline });
      req.end(frame);
      const result: Record<string, unknown> = {};
      req.on('response', (h: Record<string, unknown>) => Object.assign(result, h));
      req.on('trailers', (t: Record<string, unknown>) => Object.assign(result, t));
      req.resume();
      await once(req, 'close');
      return result;
    };
    const late = await call('200m', 'sleep:1500');
    expect(late).toMatchObject({ ':status': 200, 'grpc-status': '14', 'grpc-message': 'upstream request timeout' });
    expect(p.records[p.records.length - 1]!.responseFlags).toContain('UT');
    const inTime = await call('5S', 'sleep:50');
    expect(inTime['grpc-status']).toBe('0');
    session.close();
  });

  it('a fault abort with grpcStatus answers with that status', async () => {
    const md = new grpc.Metadata();
    md.set('x-fault', 'abort');
    const r = await unary('x', md);
    expect(r.err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(r.err?.details).toBe('fault filter abort');
  });

  it('retryOn unavailable retries a call the server answered UNAVAILABLE, until it succeeds', async () => {
    const md = new grpc.Metadata();
    md.set('call-id', 'retry-1');
    md.set('fail-first', '2');
    const r = await unary('again', md);
    expect(r.err).toBeNull();
    expect(failures.get('retry-1')).toBe(3);
  });

  it('a mirrored call reaches the shadow cluster over HTTP/2 too, and only the primary answers', async () => {
    const md = new grpc.Metadata();
    md.set('x-mirror', 'yes');
    const r = await unary('mirrored', md);
    expect(r.value!.toString()).toBe('echo:mirrored:');
    await expect.poll(() => shadowCalls.length).toBe(1);
    // Envoy's shadow authority: the host name with -shadow appended.
    expect(shadowCalls[0]).toBe('/test.Echo/Echo echo.example.com-shadow:50051');
  });

  it('a host skiff does not know gets UNAVAILABLE as a local reply (503 mapped)', async () => {
    const Ctor = grpc.makeGenericClientConstructor(SERVICE, 'Echo');
    const other = new Ctor(`127.0.0.1:${p.port}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': '127.0.0.1:1' }) as unknown as Client;
    const err = await new Promise<grpc.ServiceError | null>((resolve) => other['Echo']!(Buffer.from('x'), (e: grpc.ServiceError | null) => resolve(e)));
    expect(err?.code).toBe(grpc.status.UNAVAILABLE);
    expect(err?.details).toMatch(/^upstream connect error or disconnect\/reset before headers/);
    other.close();
  });
});
