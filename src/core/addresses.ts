/** Socket address text as Envoy reports it. */

/** An IPv4 peer of a dual-stack socket appears as `::ffff:a.b.c.d`; this returns `a.b.c.d`. */
export function unmappedAddress(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
