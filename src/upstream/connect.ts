/** Opening upstream TCP connections with a connect timeout, reporting failures in Envoy's terms. */
import { connect, type Socket } from 'node:net';

/** Where to connect: an IP or name with a port, or a unix socket path. */
export interface ConnectTarget {
  readonly host: string;
  readonly port: number;
  readonly path?: string;
  /** Source address to bind before connecting. */
  readonly localAddress?: string;
}

/** Why a connection could not be established, in Envoy's terms. */
export interface ConnectFailure {
  /** `connection timeout` or `remote connection failure`. */
  readonly reason: string;
  /** Envoy's transport failure reason, e.g. `delayed connect error: 111`. */
  readonly transport: string;
}

/** Connects; exactly one callback, with the connected socket or the failure. */
export function connectUpstream(
  target: ConnectTarget,
  timeoutMs: number,
  cb: (err: ConnectFailure | null, socket: Socket | null) => void,
): void {
  const socket =
    target.path !== undefined
      ? connect({ path: target.path, allowHalfOpen: true })
      : connect({ host: target.host, port: target.port, allowHalfOpen: true, ...(target.localAddress !== undefined && { localAddress: target.localAddress }) });
  let settled = false;
  const timer = setTimeout(() => {
    if (settled) return;
    settled = true;
    socket.destroy();
    cb({ reason: 'connection timeout', transport: '' }, null);
  }, timeoutMs);
  const onError = (err: NodeJS.ErrnoException): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    cb({ reason: 'remote connection failure', transport: transportFailure(err) }, null);
  };
  socket.once('error', onError);
  socket.once('connect', () => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    socket.removeListener('error', onError);
    socket.setNoDelay(true);
    cb(null, socket);
  });
}

/** Envoy's transport failure text for a connect error: `delayed connect error: <errno>`. */
function transportFailure(err: NodeJS.ErrnoException): string {
  if (err.code === 'ENOTFOUND' || err.code?.startsWith('EAI_')) return 'dns resolution failure';
  if (typeof err.errno === 'number') return `delayed connect error: ${Math.abs(err.errno)}`;
  return err.code ?? err.message;
}
