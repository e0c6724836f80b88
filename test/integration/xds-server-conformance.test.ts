/**
 * The test ADS server (test/support/ads-server.ts) speaks real xDS: two xDS clients not written
 * by us, @grpc/grpc-js-xds and gRPC C-core (Debian's python3-grpcio), resolve `xds:///echo`
 * through it (LDS → RDS → CDS → EDS) and reach a real grpc-js backend; every response they get
 * is ACKed with its version and nonce; a resource they reject is NACKed with the previous
 * version, the new nonce and an error_detail. Also: both Istio config dumps encode and are
 * served to a raw ADS stream (over a unix socket) with SotW filtering.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as grpcXds from '@grpc/grpc-js-xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage, TypeUrl, type Json } from '../../src/config/xds/proto.js';
import { createRootCa, issueWorkloadCert } from '../../src/security/ca.js';
import { AdsServer, type RecordedRequest } from '../support/ads-server.js';

const ECHO = '/test.Echo/Echo';
const identity = (b: Buffer): Buffer => b;
const PYTHON = '/usr/bin/python3'; // Debian's: python3-grpcio installs there, not into a pyenv
const PYTHON_CLIENT = fileURLToPath(new URL('../support/xds-python-client.py', import.meta.url));
const DATA = '/work/shared/xds-data';
const ROUTER = { name: 'router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } };
const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

/** A grpc-js server on 127.0.0.1:0 answering `echo:<request>` on /test.Echo/Echo. */
async function startBackend(): Promise<{ server: grpc.Server; port: number; calls: string[] }> {
  const calls: string[] = [];
  const server = new grpc.Server();
  server.addService(
    { Echo: { path: ECHO, requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity } },
    {
      Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        calls.push(call.request.toString());
        cb(null, Buffer.from(`echo:${call.request.toString()}`));
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { server, port, calls };
}

/**
 * The gRPC-xDS resources for `xds:///echo`: Listener `echo` (api_listener, RDS over ADS) →
 * RouteConfiguration `echo-route` → Cluster `echo-cluster` (EDS over ADS) → the backend.
 */
function serveEcho(ads: AdsServer, backendPort: number): void {
  ads.setResources(TypeUrl.listener, [goodListener()]);
  ads.setResources(TypeUrl.routes, [
    { name: 'echo-route', virtual_hosts: [{ name: 'echo', domains: ['*'], routes: [{ match: { prefix: '' }, route: { cluster: 'echo-cluster' } }] }] },
  ]);
  ads.setResources(TypeUrl.cluster, [{ name: 'echo-cluster', type: 'EDS', eds_cluster_config: { eds_config: { ads: {} } }, lb_policy: 'ROUND_ROBIN' }]);
  ads.setResources(TypeUrl.endpoints, [
    {
      cluster_name: 'echo-cluster',
      endpoints: [{ locality: { region: 'test' }, load_balancing_weight: 1, lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: backendPort } } } }] }],
    },
  ]);
}

function goodListener(): object {
  return { name: 'echo', api_listener: { api_listener: { '@type': HCM, rds: { config_source: { ads: {} }, route_config_name: 'echo-route' }, http_filters: [ROUTER] } } };
}

const short = (typeUrl: string): string => typeUrl.slice(typeUrl.lastIndexOf('.') + 1);

/**
 * Every response the server sent on `stream` for each of `types` was ACKed: a request with
 * its nonce, its version and no error_detail.
 */
async function expectAllAcked(ads: AdsServer, stream: number, types: readonly string[]): Promise<void> {
  for (const typeUrl of types) {
    const sent = ads.responses.filter((r) => r.stream === stream && r.typeUrl === typeUrl);
    expect(sent.length, `${short(typeUrl)}: no response sent on stream ${stream}\n${ads.describe()}`).toBeGreaterThan(0);
    expect(sent.at(-1)!.names.length, `${short(typeUrl)}: the last response held no resource\n${ads.describe()}`).toBeGreaterThan(0);
    for (const response of sent) {
      const ack = await ads.waitFor((r) => r.stream === stream && r.typeUrl === typeUrl && r.nonce === response.nonce, 5000);
      expect(ack.errorDetail, `${short(typeUrl)} nonce ${response.nonce} was NACKed\n${ads.describe()}`).toBeUndefined();
      expect(ack.versionInfo, `${short(typeUrl)} ACK of nonce ${response.nonce} carries the wrong version`).toBe(response.version);
    }
  }
}

/**
 * Pushes a Listener `echo` without api_listener (both clients reject it for a client channel)
 * and expects a NACK of exactly that response: previous version, new nonce, error_detail.
 */
async function expectNackOfBadListener(ads: AdsServer, stream: number): Promise<RecordedRequest> {
  const accepted = ads.version(TypeUrl.listener);
  ads.setResources(TypeUrl.listener, [{ name: 'echo' }]);
  const pushed = ads.responses.filter((r) => r.stream === stream && r.typeUrl === TypeUrl.listener).at(-1)!;
  expect(pushed.version, 'the bad Listener was not pushed to the client').toBe(ads.version(TypeUrl.listener));
  const nack = await ads.waitFor((r) => r.stream === stream && r.typeUrl === TypeUrl.listener && r.nonce === pushed.nonce, 5000);
  expect(nack.errorDetail, `Listener without api_listener was ACKed, not NACKed\n${ads.describe()}`).toBeDefined();
  expect(nack.errorDetail!.message, 'NACK without an error message').not.toBe('');
  expect(nack.versionInfo, 'a NACK carries the previously accepted version').toBe(accepted);
  return nack;
}

/** The stream a client with node id `nodeId` opened (from its first request's node). */
async function streamOf(ads: AdsServer, nodeId: string): Promise<number> {
  const first = await ads.waitFor((r) => (r.node as { id?: string } | undefined)?.id === nodeId, 10_000);
  return first.stream;
}

/**
 * A raw SotW ADS stream (grpc-js generic client, proto.ts codecs): `request` sends a
 * DiscoveryRequest, `next` resolves with the next DiscoveryResponse in JSON form, `status`
 * with the stream's final status.
 */
function rawStream(target: string, credentials = grpc.credentials.createInsecure(), options: grpc.ChannelOptions = {}) {
  const client = new grpc.Client(target, credentials, options);
  const call = client.makeBidiStreamRequest(
    '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
    (json: object) => Buffer.from(encodeMessage('envoy.service.discovery.v3.DiscoveryRequest', json)),
    (bytes: Buffer) => decodeMessage('envoy.service.discovery.v3.DiscoveryResponse', bytes),
  );
  const queue: { [key: string]: Json }[] = [];
  const waiting: ((r: { [key: string]: Json }) => void)[] = [];
  call.on('data', (r: { [key: string]: Json }) => (waiting.length > 0 ? waiting.shift()!(r) : queue.push(r)));
  call.on('error', () => undefined); // the status promise reports it
  const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  return {
    status,
    request: (json: object): void => void call.write(json),
    next: (): Promise<{ [key: string]: Json }> =>
      queue.length > 0
        ? Promise.resolve(queue.shift()!)
        : new Promise((resolve, reject) => {
            const waiter = (r: { [key: string]: Json }): void => {
              clearTimeout(timer);
              resolve(r);
            };
            const timer = setTimeout(() => {
              waiting.splice(waiting.indexOf(waiter), 1);
              reject(new Error('no DiscoveryResponse within 5 s'));
            }, 5000);
            waiting.push(waiter);
          }),
    close: (): void => {
      call.cancel();
      client.close();
    },
  };
}

describe('@grpc/grpc-js-xds against the test ADS server', () => {
  let ads: AdsServer;
  let backend: Awaited<ReturnType<typeof startBackend>>;
  let client: grpc.Client;

  beforeAll(async () => {
    ads = await AdsServer.start();
    backend = await startBackend();
    serveEcho(ads, backend.port);
    // grpc-js-xds reads (and caches) its bootstrap when the first xds: channel is created.
    process.env['GRPC_XDS_BOOTSTRAP_CONFIG'] = JSON.stringify({
      xds_servers: [{ server_uri: ads.target, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
      // grpc-js-xds 1.14 refuses a node without `locality` (bootstrap validation).
      node: { id: 'grpc-js-xds-client', locality: {} },
    });
    grpcXds.register();
    client = new grpc.Client('xds:///echo', grpc.credentials.createInsecure());
  });

  afterAll(async () => {
    client?.close();
    delete process.env['GRPC_XDS_BOOTSTRAP_CONFIG'];
    backend?.server.forceShutdown();
    await ads?.close();
  });

  const call = (text: string): Promise<string> =>
    new Promise((resolve, reject) =>
      client.makeUnaryRequest(ECHO, (b: Buffer) => b, identity, Buffer.from(text), { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(err) : resolve(res!.toString()))),
    );

  it('resolves xds:///echo through LDS, RDS, CDS and EDS and ACKs every response', async () => {
    expect(await call('hello')).toBe('echo:hello');
    expect(backend.calls).toContain('hello');
    const stream = await streamOf(ads, 'grpc-js-xds-client');
    await expectAllAcked(ads, stream, [TypeUrl.listener, TypeUrl.routes, TypeUrl.cluster, TypeUrl.endpoints]);
    expect(ads.nacks(TypeUrl.listener), 'no NACK so far').toEqual([]);
  });

  it('NACKs a Listener without api_listener and keeps serving with the accepted one', async () => {
    const stream = await streamOf(ads, 'grpc-js-xds-client');
    const nack = await expectNackOfBadListener(ads, stream);
    expect(nack.errorDetail!.message).toMatch(/api_listener/);
    expect(await call('after-nack')).toBe('echo:after-nack');
    // Repair: the good Listener is ACKed with its new version.
    ads.setResources(TypeUrl.listener, [goodListener()]);
    const fixed = ads.responses.filter((r) => r.stream === stream && r.typeUrl === TypeUrl.listener).at(-1)!;
    const ack = await ads.waitFor((r) => r.stream === stream && r.typeUrl === TypeUrl.listener && r.nonce === fixed.nonce);
    expect(ack.errorDetail).toBeUndefined();
    expect(ack.versionInfo).toBe(fixed.version);
  });
});

describe('gRPC C-core (Debian python3-grpcio) against the test ADS server', () => {
  let ads: AdsServer;
  let backend: Awaited<ReturnType<typeof startBackend>>;
  let dir: string;
  let python: ChildProcessWithoutNullStreams | undefined;

  beforeAll(async () => {
    const probe = spawnSync(PYTHON, ['-c', 'import grpc; print(grpc.__version__)'], { encoding: 'utf8', timeout: 10_000 });
    if (probe.status !== 0) {
      throw new Error(`python3-grpcio is not installed (${PYTHON} -c "import grpc" failed: ${(probe.stderr || String(probe.error)).trim()}); install it with apt-get install python3-grpcio (.ci/run does)`);
    }
    ads = await AdsServer.start();
    backend = await startBackend();
    serveEcho(ads, backend.port);
    dir = await mkdtemp(join(tmpdir(), 'skiff-xds-python-'));
  });

  afterAll(async () => {
    python?.kill('SIGKILL');
    backend?.server.forceShutdown();
    await ads?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  /** Starts the python client and resolves with its one-line JSON result. */
  async function runPython(nodeId: string): Promise<{ ok: boolean; response?: string; code?: string; details?: string }> {
    const bootstrap = join(dir, `${nodeId}.json`);
    await writeFile(bootstrap, JSON.stringify({ xds_servers: [{ server_uri: ads.target, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }], node: { id: nodeId } }));
    // An idle python channel is polled only by C-core's backup poller (every 5 s by default), so
    // pushes to an idle client would wait for it.
    const env: NodeJS.ProcessEnv = { ...process.env, GRPC_XDS_BOOTSTRAP: bootstrap, GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS: '50' };
    delete env['GRPC_XDS_BOOTSTRAP_CONFIG'];
    const child = spawn(PYTHON, [PYTHON_CLIENT, 'xds:///echo', ECHO, 'from-python'], { env });
    python = child;
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`python client gave no result within 15 s; stderr:\n${stderr}\n${ads.describe()}`)), 15_000);
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        const nl = stdout.indexOf('\n');
        if (nl < 0) return;
        clearTimeout(timer);
        resolve(JSON.parse(stdout.slice(0, nl)) as { ok: boolean });
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`python client exited (${code}) before a result; stderr:\n${stderr}`));
      });
    });
  }

  it('resolves xds:///echo, ACKs every response, and NACKs a Listener without api_listener', async () => {
    const result = await runPython('python-grpc-client');
    expect(result, 'the python client call failed').toEqual({ ok: true, response: 'echo:from-python' });
    expect(backend.calls).toContain('from-python');
    const stream = await streamOf(ads, 'python-grpc-client');
    await expectAllAcked(ads, stream, [TypeUrl.listener, TypeUrl.routes, TypeUrl.cluster, TypeUrl.endpoints]);

    const nack = await expectNackOfBadListener(ads, stream);
    expect(nack.errorDetail!.message).toMatch(/ApiListener|api_listener/i);

    // Close stdin: the client closes its channel and exits 0.
    const exited = new Promise<number | null>((resolve) => python!.on('exit', resolve));
    python!.stdin.end();
    expect(await exited).toBe(0);
    python = undefined;
  });
});

describe('Istio config dumps served over a unix socket', () => {
  let ads: AdsServer;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'skiff-ads-'));
    ads = await AdsServer.start({ socketPath: join(dir, 'ads.sock') });
  });

  afterAll(async () => {
    await ads?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  const names = (response: { [key: string]: Json }): string[] =>
    ((response['resources'] as { [key: string]: Json }[] | undefined) ?? []).map((r) => String(r['name'] ?? r['cluster_name']));

  // Counts per SOURCES.md: dynamic active clusters, active listeners (DeathStarBench has 143
  // dynamic ones, 3 without an active state), dynamic routes, EDS, active secrets.
  it.each([
    ['DeathStarBench__config_dump.json', { clusters: 138, listeners: 140, routes: 90, endpoints: 138, secrets: 2 }],
    ['istio__configdump.json', { clusters: 23, listeners: 16, routes: 6, endpoints: 0, secrets: 2 }],
  ])('%s: every resource encodes and is served by SotW rules', async (file, counts) => {
    const dump = await AdsServer.loadConfigDump(join(DATA, file));
    expect(Object.fromEntries(Object.entries(dump).map(([k, v]) => [k, v.length])), 'resources read from the dump').toEqual(counts);
    ads.setResources(TypeUrl.cluster, dump.clusters);
    ads.setResources(TypeUrl.listener, dump.listeners);
    ads.setResources(TypeUrl.routes, dump.routes);
    ads.setResources(TypeUrl.endpoints, dump.endpoints);
    ads.setResources(TypeUrl.secret, dump.secrets);

    const s = rawStream(ads.target);
    try {
      // Wildcard CDS: every cluster, in the dump's order.
      s.request({ node: { id: 'raw' }, type_url: TypeUrl.cluster });
      const cds = await s.next();
      expect(cds['version_info']).toBe(ads.version(TypeUrl.cluster));
      expect(names(cds)).toEqual(dump.clusters.map((c) => (c as { name: string }).name));
      // Named RDS: only the requested names that exist.
      const route = (dump.routes[0] as { name: string }).name;
      s.request({ type_url: TypeUrl.routes, resource_names: [route, 'no-such-route'] });
      const rds = await s.next();
      expect(names(rds)).toEqual([route]);
      // ACK with unchanged names: no response; a changed name set: a response.
      s.request({ type_url: TypeUrl.routes, resource_names: [route, 'no-such-route'], version_info: rds['version_info'] as string, response_nonce: rds['nonce'] as string });
      s.request({ type_url: TypeUrl.routes, resource_names: [], version_info: rds['version_info'] as string, response_nonce: 'stale' });
      const second = (dump.routes.at(-1) as { name: string }).name;
      s.request({ type_url: TypeUrl.routes, resource_names: [second], version_info: rds['version_info'] as string, response_nonce: rds['nonce'] as string });
      const rds2 = await s.next();
      expect(names(rds2), 'the ACK and the stale request were answered').toEqual([second]);
      expect(rds2['nonce']).not.toBe(rds['nonce']);
      // A push goes to the subscribed stream.
      ads.setResources(TypeUrl.cluster, dump.clusters.slice(0, 1), 'v-one');
      const pushed = await s.next();
      expect(pushed['type_url']).toBe(TypeUrl.cluster);
      expect(pushed['version_info']).toBe('v-one');
      expect(names(pushed)).toEqual([(dump.clusters[0] as { name: string }).name]);
      expect(ads.streams).toBe(1);
    } finally {
      s.close();
    }
  });

  it('answers DeltaAggregatedResources with UNIMPLEMENTED', async () => {
    const client = new grpc.Client(ads.target, grpc.credentials.createInsecure());
    const call = client.makeBidiStreamRequest('/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources', identity, identity);
    call.on('error', () => undefined);
    const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.write(Buffer.alloc(0));
    expect((await status).code).toBe(grpc.status.UNIMPLEMENTED);
    client.close();
  });

  it('disconnectAll ends open streams with UNAVAILABLE', async () => {
    const s = rawStream(ads.target);
    s.request({ node: { id: 'raw-disconnect' }, type_url: TypeUrl.listener });
    await s.next();
    expect(ads.streams).toBe(1);
    ads.disconnectAll();
    expect((await s.status).code).toBe(grpc.status.UNAVAILABLE);
    expect(ads.streams).toBe(0);
    s.close();
  });
});

describe('mTLS', () => {
  it('serves a client with a certificate from its CA and refuses one without', async () => {
    const ca = createRootCa();
    const server = issueWorkloadCert({ ca, namespace: 'istio-system', serviceAccount: 'istiod', dnsNames: ['localhost'] });
    const client = issueWorkloadCert({ ca, namespace: 'default', serviceAccount: 'skiff' });
    const ads = await AdsServer.start({ tls: { key: server.keyPem, cert: server.certChainPem, ca: ca.certPem } });
    const name = { 'grpc.ssl_target_name_override': 'localhost' };
    const root = Buffer.from(ca.certPem);
    const good = rawStream(ads.target, grpc.credentials.createSsl(root, Buffer.from(client.keyPem), Buffer.from(client.certChainPem)), name);
    const anonymous = rawStream(ads.target, grpc.credentials.createSsl(root), name);
    try {
      good.request({ node: { id: 'mtls' }, type_url: TypeUrl.cluster });
      expect((await good.next())['type_url']).toBe(TypeUrl.cluster);
      anonymous.request({ node: { id: 'anonymous' }, type_url: TypeUrl.cluster });
      expect((await anonymous.status).code, 'a client without a certificate got through').toBe(grpc.status.UNAVAILABLE);
      expect(ads.requests.map((r) => (r.node as { id?: string } | undefined)?.id)).toEqual(['mtls']);
    } finally {
      good.close();
      anonymous.close();
      await ads.close();
    }
  });
});
