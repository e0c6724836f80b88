/**
 * `skiff demo`: starts Bookinfo-like sample services on 127.0.0.1 and the proxy with the example
 * mesh in config/demo/, then prints curl commands that show the routing. Ctrl-C stops all.
 */
import { createServer, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { SkiffError } from '../core/errors.js';
import { createLogger } from '../core/logger.js';
import { Proxy } from '../lifecycle/proxy.js';
import { parse, portFlag } from './args.js';
import { DEFAULT_DRAIN_SECONDS, untilSignal } from './run.js';

/** Must agree with the endpoints in config/demo/services.yaml. */
export const DEMO_SERVICES: ReadonlyArray<{ name: string; version: string; port: number }> = [
  { name: 'productpage', version: 'v1', port: 19080 },
  { name: 'details', version: 'v1', port: 19081 },
  { name: 'reviews', version: 'v1', port: 19082 },
  { name: 'reviews', version: 'v2', port: 19083 },
  { name: 'reviews', version: 'v3', port: 19084 },
  { name: 'ratings', version: 'v1', port: 19085 },
];

export const DEMO_CONFIG_DIR = fileURLToPath(new URL('../../config/demo/', import.meta.url));

/** A sample service: answers every request with its name, version and what it received. */
export function startSampleService(name: string, version: string, port: number, host = '127.0.0.1'): Promise<Server> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = `${name} ${version}: ${req.method} ${req.url}${chunks.length > 0 ? ` (${Buffer.concat(chunks).length} body bytes)` : ''}\n`;
      res.writeHead(200, { 'content-type': 'text/plain', 'x-service': name, 'x-version': version });
      res.end(body);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new SkiffError('LISTEN_FAILED', `demo service ${name} ${version} cannot listen on ${host}:${port}: ${err.message}`)),
    );
    server.listen(port, host, () => resolve(server));
  });
}

export async function demoCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    'outbound-port': { type: 'string' },
    'admin-port': { type: 'string' },
    'readiness-port': { type: 'string' },
  });
  const ports = {
    outbound: portFlag(values['outbound-port'], 'outbound-port'),
    admin: portFlag(values['admin-port'], 'admin-port'),
    readiness: portFlag(values['readiness-port'], 'readiness-port'),
  };
  const log = createLogger();
  const stopped = untilSignal();
  const servers: Server[] = [];
  const closeServers = (): Promise<unknown> => Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  let proxy: Proxy;
  try {
    for (const s of DEMO_SERVICES) servers.push(await startSampleService(s.name, s.version, s.port));
    proxy = await Proxy.start({ configPath: DEMO_CONFIG_DIR, logger: log, ports });
  } catch (err) {
    // The sample services would keep the process alive.
    await closeServers();
    throw err;
  }
  const p = proxy.ports.outbound;
  process.stdout.write(`
skiff demo is running. The mesh config is in ${DEMO_CONFIG_DIR}

  # reviews: 80% v1, 20% v3 (run it a few times)
  curl -s -H 'Host: reviews:9080' http://127.0.0.1:${p}/reviews/1

  # the user "jason" always gets reviews v2
  curl -s -H 'Host: reviews:9080' -H 'end-user: jason' http://127.0.0.1:${p}/reviews/1

  # fault injection: jason gets an injected 500 from ratings
  curl -si -H 'Host: ratings:9080' -H 'end-user: jason' http://127.0.0.1:${p}/ratings/1

  # skiff as an HTTP forward proxy
  http_proxy=http://127.0.0.1:${p} curl -s http://reviews:9080/reviews/1

  # a rewrite (/v1/details/ -> /details/) and a redirect
  curl -s -H 'Host: details:9080' http://127.0.0.1:${p}/v1/details/7
  curl -si -H 'Host: details:9080' http://127.0.0.1:${p}/old

  # a CONNECT tunnel to a service
  curl -s -p -x http://127.0.0.1:${p} http://productpage:9080/

  # config and readiness
  curl -s http://127.0.0.1:${proxy.ports.admin}/config_status
  curl -si http://127.0.0.1:${proxy.ports.readiness}/healthz/ready

Edit a file in ${DEMO_CONFIG_DIR} and skiff reloads it. Press Ctrl-C to stop.
`);
  await stopped;
  log.info('shutting down');
  await proxy.shutdown({ terminationDrainMs: DEFAULT_DRAIN_SECONDS * 1000, drainMs: proxy.snapshot.mesh.drainDurationMs });
  await closeServers();
  return 0;
}
