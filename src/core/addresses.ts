/** Socket address text as Envoy reports it. */

/** An IPv4 peer of a dual-stack socket appears as `::ffff:a.b.c.d`; this returns `a.b.c.d`. */
export function unmappedAddress(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** `host:port`, an IPv6 address bracketed (`[::1]:80`), as Envoy prints socket addresses. */
export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Istio's inbound passthrough source address: the sidecar's own connections to the application. */
export const INBOUND_SOURCE_IPV4 = '127.0.0.6';

/**
 * A caller on this host: loopback, but not 127.0.0.6, which is the inbound listener forwarding
 * someone else's connection.
 */
export function isLocalCaller(address: string): boolean {
  const a = unmappedAddress(address);
  return (a.startsWith('127.') && a !== INBOUND_SOURCE_IPV4) || a === '::1';
}
