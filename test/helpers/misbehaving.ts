/**
 * An upstream that misbehaves on command, for resilience tests. Each request takes the next
 * action from a script (then the default action): answer a status (with headers), answer after
 * a delay, reset the connection before or after the response head, stall halfway through a
 * body, or never answer. Every request is recorded as by startUpstream.
 */
import type { Socket } from 'node:net';
import { startUpstream, type Upstream } from './upstream.js';

export type Action =
  | 'ok'
  | 'reset'
  | 'reset-after-head'
  | 'stall'
  | 'hang'
  | number
  | { readonly status: number; readonly headers?: Record<string, string>; readonly delayMs?: number; readonly body?: string };

export interface ScriptedUpstream extends Upstream {
  /** Actions for the next requests, in order; afterwards `fallback` applies. */
  script(actions: readonly Action[]): void;
  fallback: Action;
  /** Requests being served right now (the most seen at once is in `peakConcurrency`). */
  readonly concurrency: number;
  readonly peakConcurrency: number;
  /** Remote ports of the connections requests came in on (one per upstream connection). */
  readonly connectionPorts: Set<number>;
}

export async function startScriptedUpstream(name: string, fallback: Action = 'ok'): Promise<ScriptedUpstream> {
  let queue: Action[] = [];
  let concurrency = 0;
  let peak = 0;
  const ports = new Set<number>();
  const sockets = new Set<Socket>();
  const up = await startUpstream(name, (req, res, body) => {
    const socket = req.socket;
    ports.add(socket.remotePort ?? 0);
    sockets.add(socket);
    const action = queue.length > 0 ? queue.shift()! : scripted.fallback;
    concurrency++;
    peak = Math.max(peak, concurrency);
    const done = (): void => void concurrency--;
    res.on('close', done);
    if (action === 'ok') {
      res.writeHead(200, { 'content-type': 'text/plain', 'x-server': name });
      res.end(body.length > 0 ? body : `ok from ${name}`);
    } else if (action === 'reset') {
      socket.destroy();
    } else if (action === 'reset-after-head') {
      res.writeHead(200, { 'content-length': '100', 'x-server': name });
      res.write('0123456789');
      setTimeout(() => socket.destroy(), 20);
    } else if (action === 'stall') {
      res.writeHead(200, { 'content-length': '100', 'x-server': name });
      res.write('0123456789');
    } else if (action === 'hang') {
      // Never answers; the connection closes when the test closes the server.
    } else {
      const a = typeof action === 'number' ? { status: action } : action;
      const respond = (): void => {
        res.writeHead(a.status, { 'content-type': 'text/plain', 'x-server': name, ...a.headers });
        res.end(a.body ?? `${a.status} from ${name}`);
      };
      if (a.delayMs === undefined) respond();
      else setTimeout(respond, a.delayMs);
    }
    return true;
  });
  const scripted: ScriptedUpstream = {
    ...up,
    fallback,
    script(actions) {
      queue = [...actions];
    },
    get concurrency() {
      return concurrency;
    },
    get peakConcurrency() {
      return peak;
    },
    connectionPorts: ports,
    close: async () => {
      for (const s of sockets) s.destroy();
      await up.close();
    },
  };
  return scripted;
}
