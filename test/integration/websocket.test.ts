/**
 * WebSocket through skiff with `ws` as the real client and server: the upgrade request is routed
 * and forwarded like any request (headers added, 404 without a route, the upstream's refusal
 * relayed), a 101 turns it into a tunnel that carries messages both ways in order, close codes
 * pass through, and a reader that stops reading slows the writer on the other side instead of
 * filling the proxy's memory. Upgrades other than WebSocket are refused with 403.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { rawExchange, statusOf } from '../helpers/client.js';
import { prefixOnlyService, serviceEntry, startProxy, type TestProxy } from '../helpers/proxy.js';

interface Upstream {
  readonly port: number;
  readonly wss: WebSocketServer;
  /** Upgrade requests as the upstream received them. */
  readonly requests: IncomingMessage[];
  close(): Promise<void>;
}

/** A WebSocket server that echoes every message; `/close/<code>` closes with that code; `/refuse` answers 403. */
async function startWsUpstream(): Promise<Upstream> {
  const requests: IncomingMessage[] = [];
  const server: Server = createServer((_req, res) => res.writeHead(426).end('upgrade required'));
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    requests.push(req);
    if (req.url === '/refuse') {
      socket.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 7\r\nconnection: close\r\n\r\nrefused');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const close = /^\/close\/(\d+)$/.exec(req.url ?? '');
      if (close !== null) {
        ws.close(Number(close[1]), 'bye');
        return;
      }
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    wss,
    requests,
    async close() {
      for (const c of wss.clients) c.terminate();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

describe('WebSocket', () => {
  let up: Upstream;
  let p: TestProxy;

  beforeAll(async () => {
    up = await startWsUpstream();
    p = await startProxy({
      'se.yaml': serviceEntry('chat.example.com', 80, [{ port: up.port }]),
      // rooms.example.com serves /rooms only: anything else has no route.
      'rooms.yaml': prefixOnlyService('rooms.example.com', 80, up.port, '/rooms'),
    });
  });

  afterAll(async () => {
    await p?.close();
    await up?.close();
  });

  const open = (path = '/', host = 'chat.example.com'): WebSocket => new WebSocket(`ws://127.0.0.1:${p.port}${path}`, { headers: { host } });

  it('echoes 10k messages in order through the tunnel, with the upgrade request forwarded like any request', async () => {
    const ws = open('/echo');
    await once(ws, 'open');
    const got: string[] = [];
    const all = new Promise<void>((resolve) =>
      ws.on('message', (m) => {
        got.push(m.toString());
        if (got.length === 10_000) resolve();
      }),
    );
    for (let i = 0; i < 10_000; i++) ws.send(`message ${i}`);
    await all;
    expect(got[0]).toBe('message 0');
    expect(got.every((m, i) => m === `message ${i}`)).toBe(true);
    ws.close(1000, 'done');
    const [code] = (await once(ws, 'close')) as [number, Buffer];
    expect(code).toBe(1000);
    const req = up.requests[up.requests.length - 1]!;
    expect(req.headers['upgrade']).toBe('websocket');
    expect(req.headers['connection']).toMatch(/upgrade/i);
    expect(req.headers['x-forwarded-proto']).toBe('http');
    expect(req.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(req.headers['sec-websocket-key']).toBeDefined();
    // The request's record is complete once the tunnel closed: with every byte it carried.
    await expect.poll(() => p.records.find((r) => r.responseCode === 101)).toBeDefined();
    const record = p.records.find((r) => r.responseCode === 101)!;
    expect(record.upstreamCluster).toBe('outbound|80||chat.example.com');
    // 10k client frames (masked, 6-byte headers) up, 10k server frames (2-byte headers) down.
    expect(record.bytesReceived).toBeGreaterThan(10_000 * 'message 0'.length);
    expect(record.bytesSent).toBeGreaterThan(10_000 * 'message 0'.length);
    expect(record.endMs).toBeGreaterThan(record.startMs);
  });

  it('carries binary frames and the server close code and reason', async () => {
    const ws = open('/close/4001');
    const [code, reason] = (await once(ws, 'close')) as [number, Buffer];
    expect(code).toBe(4001);
    expect(reason.toString()).toBe('bye');
    const bin = open('/bin');
    await once(bin, 'open');
    const payload = Buffer.from([0, 1, 2, 255, 254]);
    bin.send(payload);
    const [data, isBinary] = (await once(bin, 'message')) as [Buffer, boolean];
    expect(isBinary).toBe(true);
    expect(Buffer.compare(data, payload)).toBe(0);
    bin.close();
  });

  it('a route not found is 404, and the upstream refusing the upgrade is relayed', async () => {
    const missing = open('/lobby', 'rooms.example.com');
    missing.on('error', () => undefined); // terminate() below reports the aborted handshake
    const [, res404] = (await once(missing, 'unexpected-response')) as [unknown, IncomingMessage];
    expect(res404.statusCode).toBe(404);
    missing.terminate();
    const refused = open('/refuse');
    refused.on('error', () => undefined);
    const [, res403] = (await once(refused, 'unexpected-response')) as [unknown, IncomingMessage];
    expect(res403.statusCode).toBe(403);
    refused.terminate();
  });

  it('a client that stops reading slows the server instead of filling the proxy', async () => {
    const ws = open('/pressure');
    await once(ws, 'open');
    const serverSide = [...up.wss.clients].at(-1)!;
    ws.pause();
    const chunk = Buffer.alloc(1024 * 1024, 7);
    for (let i = 0; i < 64; i++) serverSide.send(chunk);
    // With the client paused, most of the 64 MiB stays with the server: the proxy relays only
    // as fast as the client reads (socket buffers on the way hold a few MiB at most).
    await new Promise((r) => setTimeout(r, 500));
    expect(serverSide.bufferedAmount).toBeGreaterThan(32 * 1024 * 1024);
    let received = 0;
    const all = new Promise<void>((resolve) =>
      ws.on('message', (m: Buffer) => {
        received += m.length;
        if (received === 64 * chunk.length) resolve();
      }),
    );
    ws.resume();
    await all;
    expect(received).toBe(64 * 1024 * 1024);
    ws.close();
  });

  it('refuses upgrades to other protocols with 403', async () => {
    const { text } = await rawExchange(p.port, 'GET / HTTP/1.1\r\nHost: chat.example.com\r\nConnection: upgrade\r\nUpgrade: foo\r\n\r\n');
    expect(statusOf(text)).toBe(403);
  });
});
