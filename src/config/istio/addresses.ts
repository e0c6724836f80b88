/**
 * IP addresses and CIDR ranges in Istio resources (ServiceEntry addresses, VirtualService
 * destinationSubnets): validated at load and kept in canonical text, so that the data path can
 * compare them with the addresses the kernel reports.
 */
import { isIP, SocketAddress } from 'node:net';

/** The canonical text of an IP address (`2001:DB8:0::1` → `2001:db8::1`), or undefined. */
export function canonicalIp(text: string): string | undefined {
  const family = isIP(text);
  if (family === 0) return undefined;
  return family === 4 ? text : new SocketAddress({ address: text, family: 'ipv6' }).address;
}

/** `address` or `address/bits` in canonical text, or undefined when either part is invalid. */
export function canonicalCidr(text: string): string | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return canonicalIp(text);
  const address = canonicalIp(text.slice(0, slash));
  const bits = text.slice(slash + 1);
  if (address === undefined || !/^\d{1,3}$/.test(bits)) return undefined;
  if (Number(bits) > (isIP(address) === 4 ? 32 : 128)) return undefined;
  return `${address}/${Number(bits)}`;
}
