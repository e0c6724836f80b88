/**
 * Binding a net.Server, reporting the bound port (port 0 picks a free one). `::` means every
 * address of both families; where IPv6 is unavailable it falls back to every IPv4 address.
 */
import type { Server } from 'node:net';

export async function listenOn(server: Server, host: string, port: number): Promise<number> {
  try {
    return await bind(server, host, port);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (host !== '::' || (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL')) throw err;
    return bind(server, '0.0.0.0', port);
  }
}

function bind(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, backlog: 4096 }, () => {
      server.removeListener('error', reject);
      const addr = server.address();
      resolve(typeof addr === 'object' && addr !== null ? addr.port : port);
    });
  });
}
