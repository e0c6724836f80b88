/**
 * The TCP proxy over real sockets on 127.0.0.1: bytes both ways with exact counts, half-closes
 * passed on in each direction, the idle timeout, connect failures and missing clusters in
 * Envoy's response flags, backpressure with slow readers, and ORIGINAL_DST passthrough.
 */
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileSnapshot, type Snapshot } from '../../src/compile/snapshot.js';
import { formatDiagnostic } from '../../src/config/diagnostics.js';
import { loadFromSources } from '../../src/config/load.js';
import type { Model } from '../../src/model/index.js';
import { TcpProxy, type TcpSessionInfo } from '../../src/tcp/tcp-proxy.js';
import type { Destination } from '../../src/upstream/cluster.js';
import { ClusterManager } from '../../src/upstream/cluster-manager.js';
import { closedPort } from '../helpers/ports.js';

const ECHO = 'outbound|9000||echo.example.com';
const REFUSED = 'outbound|9001||refused.example.com';
const LIMITED = 'outbound|9002||limited.example.com';
const IDLE_MS = 200;

// === helpers ===

function model(text: string): Model {
  const r = loadFromSources([{ name: 'mesh.yaml', absolutePath: '/config/mesh.yaml', text }]);
  if (r.model === undefined) throw new Error(`config is invalid:\n${r.diagnostics.map((d) => formatDiagnostic(d)).join('\n')}`);
  return r.model;
}

function services(upstreamPort: number, refusedPort: number): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo}
spec:
  hosts: [echo.example.com]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: ${upstreamPort}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: refused}
spec:
  hosts: [refused.example.com]
  ports: [{number: 9001, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: ${refusedPort}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: limited}
spec:
  hosts: [limited.example.com]
  ports: [{number: 9002, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: ${upstreamPort}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: limited}
spec:
  host: limited.example.com
  trafficPolicy: {connectionPool: {tcp: {maxConnections: 1}}}
`;
}

async function listen(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** A socket whose received bytes, end and close are recorded from the start. */
interface Peer {
  readonly socket: Socket;
  readonly received: () => Buffer;
  readonly ended: Promise<void>;
  readonly closed: Promise<void>;
  /**
   * The other side closed the connection: a FIN ('end'; the peers are half-open capable, so
   * their own side stays open) or a reset ('close').
   */
  readonly cut: Promise<void>;
  /** Resolves once at least `n` bytes have arrived. */
  readonly bytes: (n: number) => Promise<Buffer>;
}

function track(socket: Socket): Peer {
  const chunks: Buffer[] = [];
  let length = 0;
  const waiters: Array<{ n: number; resolve: (b: Buffer) => void }> = [];
  const received = (): Buffer => Buffer.concat(chunks);
  socket.on('data', (c: Buffer) => {
    chunks.push(c);
    length += c.length;
    for (const w of waiters.filter((x) => length >= x.n)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(received());
    }
  });
  socket.on('error', () => {});
  const ended = new Promise<void>((resolve) => socket.once('end', () => resolve()));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return {
    socket,
    received,
    ended,
    closed,
    cut: Promise.race([ended, closed]),
    bytes: (n) => (length >= n ? Promise.resolve(received()) : new Promise((resolve) => waiters.push({ n, resolve }))),
  };
}

/** Bytes 0..250 repeating: any reordering, loss or duplication of a chunk shows. */
function pattern(size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = i % 251;
  return b;
}

/** Reads everything from `socket`, pausing `delayMs` after every `every` bytes; resolves at 'end'. */
function slowRead(socket: Socket, every: number, delayMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let sinceBreak = 0;
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      sinceBreak += c.length;
      if (sinceBreak >= every) {
        sinceBreak = 0;
        socket.pause();
        setTimeout(() => socket.resume(), delayMs);
      }
    });
    socket.once('end', () => resolve(Buffer.concat(chunks)));
    socket.once('error', reject);
  });
}

// === fixture ===

let upstream: Server;
let upstreamPort: number;
/** Takes the next upstream connection (tests run one at a time). */
let onUpstream: ((socket: Socket) => void) | null = null;
let front: Server;
let frontPort: number;
let onAccept: ((socket: Socket) => void) | null = null;
let clusters: ClusterManager;
/** tcpIdleTimeout at Envoy's default (1h). */
let snapshot: Snapshot;
/** tcpIdleTimeout 200ms, from MeshConfig. */
let idleSnapshot: Snapshot;

beforeAll(async () => {
  upstream = createServer({ allowHalfOpen: true }, (s) => {
    const take = onUpstream;
    onUpstream = null;
    if (take === null) s.destroy();
    else take(s);
  });
  front = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => {
    const take = onAccept;
    onAccept = null;
    if (take === null) s.destroy();
    else take(s);
  });
  [upstreamPort, frontPort] = await Promise.all([listen(upstream), listen(front)]);
  const config = services(upstreamPort, await closedPort());
  snapshot = compileSnapshot(model(config), 1);
  idleSnapshot = compileSnapshot(
    model(`apiVersion: skiff.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  tcpIdleTimeout: ${IDLE_MS}ms
---
${config}`),
    2,
  );
  expect(idleSnapshot.mesh.tcpIdleTimeoutMs).toBe(IDLE_MS);
  clusters = new ClusterManager({});
  (await clusters.prepare(snapshot.clusters))();
  (await clusters.prepare(idleSnapshot.clusters))();
});

afterAll(() => {
  clusters.close();
  upstream.close();
  front.close();
});

/** The next upstream connection the proxy makes, tracked. */
function nextUpstream(): Promise<Peer> {
  return new Promise((resolve) => {
    onUpstream = (s) => resolve(track(s));
  });
}

interface OpenOptions {
  readonly snapshot?: Snapshot;
  readonly destination?: Destination;
  /** Written by the client right after connecting. */
  readonly firstWrite?: Buffer;
  /** The client half-closes right after `firstWrite`. */
  readonly thenEnd?: boolean;
  /** Reads what the listener would have sniffed; becomes `initial`. */
  readonly sniff?: (downstream: Socket) => Promise<Buffer>;
}

interface Session {
  readonly client: Peer;
  readonly info: Promise<TcpSessionInfo>;
}

/** Connects a client to the front server and hands the accepted socket to a TcpProxy. */
async function open(clusterName: string, o: OpenOptions = {}): Promise<Session> {
  let done!: (info: TcpSessionInfo) => void;
  const info = new Promise<TcpSessionInfo>((resolve) => (done = resolve));
  const accepted = new Promise<Socket>((resolve) => (onAccept = resolve));
  const socket = connect({ host: '127.0.0.1', port: frontPort, allowHalfOpen: true });
  const client = track(socket);
  await once(socket, 'connect');
  if (o.firstWrite !== undefined) socket.write(o.firstWrite);
  if (o.thenEnd === true) socket.end();
  const downstream = await accepted;
  const initial = o.sniff === undefined ? null : await o.sniff(downstream);
  new TcpProxy(clusters, { onDone: done }).start(downstream, initial, clusterName, o.destination ?? { host: '240.0.0.1', port: 9000 }, o.snapshot ?? snapshot, { direction: 'outbound' });
  return { client, info };
}

/** Reads until `n` bytes arrived, then pauses: what sniffing leaves behind. */
function sniffBytes(n: number): (s: Socket) => Promise<Buffer> {
  return (s) =>
    new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let length = 0;
      const onData = (c: Buffer): void => {
        chunks.push(c);
        length += c.length;
        if (length < n) return;
        s.removeListener('data', onData);
        s.pause();
        resolve(Buffer.concat(chunks));
      };
      s.on('data', onData);
      s.resume();
    });
}

// === tests ===

describe('TcpProxy', () => {
  it('moves bytes both ways and counts them exactly, sniffed initial bytes included', async () => {
    const up = nextUpstream();
    const { client, info } = await open(ECHO, { firstWrite: Buffer.from('hello '), sniff: sniffBytes(6) });
    const server = await up;
    expect((await server.bytes(6)).toString()).toBe('hello ');
    server.socket.write('ack');
    expect((await client.bytes(3)).toString()).toBe('ack');
    client.socket.end('world');
    await server.ended;
    expect(server.received().toString()).toBe('hello world');
    server.socket.end('bye');
    await client.ended;
    expect(client.received().toString()).toBe('ackbye');
    await client.closed;
    const i = await info;
    expect(i.bytesReceived).toBe(11);
    expect(i.bytesSent).toBe(6);
    expect(i.responseFlags).toBeNull();
    expect(i.details).toBe('closed');
    expect(i.upstreamCluster).toBe(ECHO);
    expect(i.upstreamHost).toBe(`127.0.0.1:${upstreamPort}`);
    expect([i.downstreamLocalAddress, i.downstreamLocalPort]).toEqual(['240.0.0.1', 9000]);
    expect(i.endMs).toBeGreaterThanOrEqual(i.startMs);
  });

  it('passes the client half-close upstream; upstream still replies and the client reads it', async () => {
    const up = nextUpstream();
    const { client, info } = await open(ECHO);
    const server = await up;
    client.socket.end('request');
    await server.ended;
    expect(server.received().toString()).toBe('request');
    // Upstream's write side is still open after the client's FIN.
    server.socket.end('reply after FIN');
    await client.ended;
    expect(client.received().toString()).toBe('reply after FIN');
    await Promise.all([client.closed, server.closed]);
    const i = await info;
    expect([i.bytesReceived, i.bytesSent, i.details]).toEqual([7, 15, 'closed']);
  });

  it('passes the upstream half-close to the client, which can still send', async () => {
    const up = nextUpstream();
    const { client, info } = await open(ECHO);
    const server = await up;
    // A server-first protocol: greet and finish sending.
    server.socket.end('greeting');
    await client.ended;
    expect(client.received().toString()).toBe('greeting');
    client.socket.end('late words');
    await server.ended;
    expect(server.received().toString()).toBe('late words');
    await Promise.all([client.closed, server.closed]);
    const i = await info;
    expect([i.bytesReceived, i.bytesSent, i.details]).toEqual([10, 8, 'closed']);
  });

  it('a connection whose client finished sending while it was sniffed still passes the FIN on', async () => {
    const up = nextUpstream();
    const { client, info } = await open(ECHO, {
      firstWrite: Buffer.from('all at once'),
      thenEnd: true,
      // The listener stops sniffing at the client's FIN and hands over what it read.
      sniff: (s) =>
        new Promise((resolve) => {
          const chunks: Buffer[] = [];
          s.on('data', (c: Buffer) => chunks.push(c));
          s.once('end', () => resolve(Buffer.concat(chunks)));
          s.resume();
        }),
    });
    const server = await up;
    await server.ended;
    expect(server.received().toString()).toBe('all at once');
    server.socket.end('ok');
    await client.ended;
    expect(client.received().toString()).toBe('ok');
    await client.closed;
    expect((await info).bytesReceived).toBe(11);
  });

  it('the client going away closes the upstream connection', async () => {
    const up = nextUpstream();
    const { client, info } = await open(ECHO);
    const server = await up;
    client.socket.write('x');
    await server.bytes(1);
    client.socket.destroy();
    await server.ended;
    server.socket.end();
    await server.closed;
    expect((await info).details).toBe('closed');
  });

  it(`closes both sides after ${IDLE_MS}ms without traffic, with details idle_timeout`, async () => {
    const up = nextUpstream();
    const { client, info } = await open(ECHO, { snapshot: idleSnapshot });
    const server = await up;
    client.socket.write('ping');
    await server.bytes(4);
    server.socket.write('pong');
    await client.bytes(4);
    await Promise.all([client.cut, server.cut]);
    const i = await info;
    expect(i.details).toBe('idle_timeout');
    expect([i.bytesReceived, i.bytesSent]).toEqual([4, 4]);
    expect(i.responseFlags).toBeNull();
  });

  it('traffic in the upstream → client direction alone keeps the connection from going idle', async () => {
    const up = nextUpstream();
    const { client, info } = await open(ECHO, { snapshot: idleSnapshot });
    const server = await up;
    let closedEarly = false;
    void client.cut.then(() => (closedEarly = true));
    // Six writes 50ms apart span 300ms, longer than the 200ms idle timeout.
    for (let n = 1; n <= 6; n++) {
      server.socket.write('.');
      await client.bytes(n);
      await new Promise((r) => setTimeout(r, IDLE_MS / 4));
    }
    expect(closedEarly).toBe(false);
    await Promise.all([client.cut, server.cut]);
    const i = await info;
    expect(i.details).toBe('idle_timeout');
    expect(i.bytesSent).toBe(6);
  });

  it('a refused upstream connect closes the client: UF, upstream_connect_failed', async () => {
    const { client, info } = await open(REFUSED, { firstWrite: Buffer.from('hi') });
    await client.cut;
    expect(client.received().length).toBe(0);
    const i = await info;
    expect(i.responseFlags).toEqual(['UF']);
    expect(i.details).toBe('upstream_connect_failed');
    expect(i.upstreamHost).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it('over the cluster\'s maxConnections the client is closed: UO, overflow; a slot frees when a connection ends', async () => {
    const upstreamSide = nextUpstream();
    const first = await open(LIMITED, { firstWrite: Buffer.from('one') });
    const held = await upstreamSide;
    await held.bytes(3);
    const second = await open(LIMITED, { firstWrite: Buffer.from('two') });
    await second.client.cut;
    const i = await second.info;
    expect(i.responseFlags).toEqual(['UO']);
    expect(i.details).toBe('overflow');
    first.client.socket.destroy();
    held.socket.destroy();
    await first.info;
    const again = nextUpstream();
    const third = await open(LIMITED, { firstWrite: Buffer.from('three') });
    const thirdUpstream = await again;
    expect((await thirdUpstream.bytes(5)).toString()).toBe('three');
    third.client.socket.destroy();
    thirdUpstream.socket.destroy();
    await third.info;
  });

  it('a cluster the snapshot lacks closes the client: NC, cluster_not_found', async () => {
    const { client, info } = await open('outbound|1|nope|missing.example.com');
    await client.cut;
    const i = await info;
    expect(i.responseFlags).toEqual(['NC']);
    expect(i.details).toBe('cluster_not_found');
    expect(i.upstreamCluster).toBe('outbound|1|nope|missing.example.com');
  });

  it('a cluster without endpoints closes the client: UH, no_healthy_upstream', async () => {
    expect(snapshot.clusters.get('BlackHoleCluster')?.endpoints).toEqual([]);
    const { client, info } = await open('BlackHoleCluster');
    await client.cut;
    const i = await info;
    expect(i.responseFlags).toEqual(['UH']);
    expect(i.details).toBe('no_healthy_upstream');
  });

  it('PassthroughCluster connects to the original destination', async () => {
    const up = nextUpstream();
    const { client, info } = await open('PassthroughCluster', { destination: { host: '127.0.0.1', port: upstreamPort } });
    const server = await up;
    client.socket.end('to wherever');
    await server.ended;
    server.socket.end('from there');
    await client.ended;
    expect([server.received().toString(), client.received().toString()]).toEqual(['to wherever', 'from there']);
    await client.closed;
    const i = await info;
    expect(i.upstreamHost).toBe(`127.0.0.1:${upstreamPort}`);
    expect(i.upstreamCluster).toBe('PassthroughCluster');
    expect([i.bytesReceived, i.bytesSent, i.details]).toEqual([11, 10, 'closed']);
  });

  const BIG = 8 * 1024 * 1024;

  it('8 MB client → upstream reach a slow reader whole and in order', async () => {
    const up = nextUpstream();
    const { client, info } = await open(ECHO);
    const server = await up;
    // slowRead takes over reading from the tracking listener.
    server.socket.removeAllListeners('data');
    const read = slowRead(server.socket, 1024 * 1024, 20);
    const data = pattern(BIG);
    client.socket.end(data);
    const got = await read;
    expect(got.length).toBe(BIG);
    expect(got.equals(data)).toBe(true);
    server.socket.end();
    await client.closed;
    expect((await info).bytesReceived).toBe(BIG);
  });

  it('8 MB upstream → client reach a slow reader whole and in order', async () => {
    const up = nextUpstream();
    const { client, info } = await open(ECHO);
    const server = await up;
    // slowRead takes over reading from the tracking listener.
    client.socket.removeAllListeners('data');
    const read = slowRead(client.socket, 1024 * 1024, 20);
    const data = pattern(BIG);
    server.socket.end(data);
    const got = await read;
    expect(got.length).toBe(BIG);
    expect(got.equals(data)).toBe(true);
    client.socket.end();
    await client.closed;
    expect((await info).bytesSent).toBe(BIG);
  });
});
