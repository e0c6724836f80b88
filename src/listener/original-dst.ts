/**
 * The destination a connection had before iptables REDIRECT rewrote it (Envoy's original_dst
 * listener filter): `getsockopt(fd, SOL_IP, SO_ORIGINAL_DST)` for IPv4 and
 * `getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST)` for IPv6, read from the conntrack entry.
 *
 * Node has no binding for this option, so libc's getsockopt is called through koffi, a
 * prebuilt FFI (no compiler at install time). When the option is unavailable (no NAT on this
 * connection, or a platform without libc.so.6) the socket's own local address is the answer and
 * the connection counts as not redirected. (TPROXY interception, where the local address itself
 * is the original destination, is not served yet: it needs IP_TRANSPARENT listeners.)
 */
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { unmappedAddress } from '../core/addresses.js';

export interface SocketAddress {
  readonly address: string;
  readonly port: number;
}

const SOL_IP = 0;
const SOL_IPV6 = 41;
/** SO_ORIGINAL_DST and IP6T_SO_ORIGINAL_DST share the value 80. */
const SO_ORIGINAL_DST = 80;
const AF_INET = 2;
const AF_INET6 = 10;
/** sizeof(struct sockaddr_in6), the larger of the two answers. */
const SOCKADDR_BYTES = 28;

type GetSockOpt = (fd: number, level: number, name: number, value: Buffer, length: number[]) => number;

let getsockopt: GetSockOpt | null | undefined;

/** Binds libc's getsockopt once; null when this platform has no libc.so.6 or koffi fails. */
function libcGetsockopt(): GetSockOpt | null {
  if (getsockopt !== undefined) return getsockopt;
  try {
    const require = createRequire(import.meta.url);
    const koffi = require('koffi') as typeof import('koffi');
    const libc = koffi.load('libc.so.6');
    getsockopt = libc.func('int getsockopt(int fd, int level, int name, _Out_ uint8_t *value, _Inout_ uint32_t *length)') as GetSockOpt;
  } catch {
    getsockopt = null;
  }
  return getsockopt;
}

/** The file descriptor behind a connected net.Socket, or -1 (e.g. on Windows or once closed). */
function socketFd(socket: Socket): number {
  const handle = (socket as unknown as { _handle?: { fd?: number } })._handle;
  return typeof handle?.fd === 'number' ? handle.fd : -1;
}

/**
 * The address the client connected to before redirection, or undefined when the kernel holds no
 * NAT record for this connection (it was not redirected).
 */
export function redirectedDestination(socket: Socket): SocketAddress | undefined {
  const call = libcGetsockopt();
  const fd = socketFd(socket);
  if (call === null || fd < 0) return undefined;
  const local = socket.localAddress ?? '';
  const v6 = socket.localFamily === 'IPv6' && unmappedAddress(local) === local;
  const buf = Buffer.alloc(SOCKADDR_BYTES);
  const length = [SOCKADDR_BYTES];
  if (call(fd, v6 ? SOL_IPV6 : SOL_IP, SO_ORIGINAL_DST, buf, length) !== 0) return undefined;
  return decodeSockaddr(buf);
}

/** Parses a sockaddr_in or sockaddr_in6 (family in host order, port big-endian). */
export function decodeSockaddr(buf: Buffer): SocketAddress | undefined {
  const family = buf.readUInt16LE(0);
  const port = buf.readUInt16BE(2);
  if (family === AF_INET) return { address: `${buf[4]}.${buf[5]}.${buf[6]}.${buf[7]}`, port };
  if (family === AF_INET6) {
    const groups: string[] = [];
    for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(8 + i * 2).toString(16));
    return { address: compressIpv6(groups), port };
  }
  return undefined;
}

/** RFC 5952 text form: the longest run of two or more zero groups becomes `::`. */
function compressIpv6(groups: string[]): string {
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (bestStart < 0) return groups.join(':');
  return `${groups.slice(0, bestStart).join(':')}::${groups.slice(bestStart + bestLength).join(':')}`;
}

/**
 * The connection's original destination: the pre-REDIRECT address when there is one, else the
 * socket's local address (TPROXY, or a client that connected to the listener directly).
 * IPv4-mapped IPv6 addresses are reported in their IPv4 form. `redirected` tells whether the
 * destination differs from the listener's own address.
 */
export function originalDestination(socket: Socket): { destination: SocketAddress; redirected: boolean } {
  const local = { address: unmappedAddress(socket.localAddress ?? ''), port: socket.localPort ?? 0 };
  const before = redirectedDestination(socket);
  // Conntrack answers for unredirected connections too, with the address they already have.
  if (before === undefined || (before.address === local.address && before.port === local.port)) return { destination: local, redirected: false };
  return { destination: before, redirected: true };
}
