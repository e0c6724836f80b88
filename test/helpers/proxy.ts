/** Starting a real skiff proxy in-process for a test, with config written to a temp folder. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, type Logger } from '../../src/core/logger.js';
import { StreamInfo } from '../../src/http/stream.js';
import { Proxy } from '../../src/lifecycle/proxy.js';
import type { WorkloadMetadata } from '../../src/model/index.js';

export const EMPTY_METADATA: WorkloadMetadata = { name: '', namespace: 'default', workloadName: '', labels: {}, clusterId: '', meshId: '', serviceAccount: '', instanceIps: [] };

export interface TestProxy {
  readonly proxy: Proxy;
  readonly port: number;
  readonly dir: string;
  /** Log lines the proxy wrote. */
  readonly logs: string[];
  /** The record of every finished request, oldest first. */
  readonly records: StreamInfo[];
  /** Replaces the config files and reloads explicitly (the watcher is off unless asked for). */
  write(files: Record<string, string>): Promise<void>;
  close(): Promise<void>;
}

export async function startProxy(
  files: Record<string, string>,
  options: { watch?: boolean; metadata?: WorkloadMetadata; stats?: boolean } = {},
): Promise<TestProxy> {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-test-'));
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  const logs: string[] = [];
  const records: StreamInfo[] = [];
  const logger: Logger = createLogger({ level: 'debug', sink: (l) => logs.push(l) });
  const proxy = await Proxy.start({
    configPath: dir,
    logger,
    watch: options.watch ?? false,
    ports: { outbound: 0, admin: 0, readiness: 0, ...(options.stats === true ? { stats: 0 } : {}) },
    // A copy: telemetry lets go of the record's request and response once it has read them.
    onRequestDone: (info) => records.push(Object.assign(Object.create(StreamInfo.prototype) as StreamInfo, info)),
    // Tests never read the metadata of the machine's environment.
    metadata: options.metadata ?? EMPTY_METADATA,
  });
  return {
    proxy,
    port: proxy.ports.outbound,
    dir,
    logs,
    records,
    async write(next) {
      for (const [name, text] of Object.entries(next)) await writeFile(join(dir, name), text);
    },
    async close() {
      await proxy.close(true);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A ServiceEntry for `host` with STATIC endpoints on 127.0.0.1 ports (labels per endpoint). */
export function serviceEntry(
  host: string,
  port: number,
  endpoints: Array<{ port: number; labels?: Record<string, string>; weight?: number }>,
  name = host.replace(/[^a-z0-9-]/g, '-'),
): string {
  const eps = endpoints
    .map(
      (e) =>
        `  - address: 127.0.0.1\n    ports: {http: ${e.port}}\n` +
        (e.labels ? `    labels: ${JSON.stringify(e.labels)}\n` : '') +
        (e.weight !== undefined ? `    weight: ${e.weight}\n` : ''),
    )
    .join('');
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ${name}
spec:
  hosts: [${host}]
  ports:
  - {number: ${port}, name: http, protocol: HTTP}
  resolution: STATIC
  endpoints:
${eps}`;
}

/**
 * A service on 127.0.0.1:`endpointPort` whose VirtualService routes only paths under `prefix`:
 * any other path has no route (404 NR).
 */
export function prefixOnlyService(host: string, port: number, endpointPort: number, prefix: string): string {
  return `${serviceEntry(host, port, [{ port: endpointPort }])}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${host.replace(/[^a-z0-9-]/g, '-')}}
spec:
  hosts: [${host}]
  http: [{match: [{uri: {prefix: ${prefix}}}], route: [{destination: {host: ${host}}}]}]
`;
}
