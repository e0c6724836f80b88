/**
 * Hot reload: routing changes apply without failing a single request, invalid config keeps the
 * old snapshot serving, in-flight requests and idle keep-alive connections survive a swap, the
 * file watcher applies edits, and clusters whose config did not change keep their connections.
 */
import { Agent, request as httpRequest, type ServerResponse } from 'node:http';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/core/logger.js';
import { Proxy } from '../../src/lifecycle/proxy.js';
import { get, type Response } from '../helpers/client.js';
import { serviceEntry, startProxy, type TestProxy } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

// === config builders ===

function destinationRule(host: string, extra = ''): string {
  return `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: ${host}
spec:
  host: ${host}
${extra}  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
`;
}

/** A DestinationRule that only changes the cluster config (connect timeout). */
function timeoutRule(host: string, connectTimeout: string): string {
  return `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: ${host}
spec:
  host: ${host}
  trafficPolicy:
    connectionPool:
      tcp: {connectTimeout: ${connectTimeout}}
`;
}

/** A VirtualService for `svc` splitting between subsets v1 and v2 (a weight of 0 is left out). */
function splitVs(v1: number, v2: number): string {
  const dests = [
    ['v1', v1],
    ['v2', v2],
  ].filter(([, w]) => (w as number) > 0);
  const route = dests
    .map(([subset, w]) => `    - destination: {host: svc, subset: ${subset}}\n` + (dests.length > 1 ? `      weight: ${w}\n` : ''))
    .join('');
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: svc
spec:
  hosts: [svc]
  http:
  - route:
${route}`;
}

/** Broken YAML: an unclosed flow sequence. */
const BROKEN_YAML = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: svc
spec: [unclosed
  hosts: svc
`;

/** Valid YAML with a misspelt field on line 10, column 7. */
const MISSPELT_FIELD = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: svc
spec:
  hosts: [svc]
  http:
  - route:
    - destination: {host: svc, subset: v1}
      wieght: 100
`;

/**
 * `file:line:col: Kind/name: field.path: message` (a YAML syntax error names `document N`). The
 * file is shown as given (the temp folder is absolute, outside the working directory).
 */
const DIAGNOSTIC_LINE = /^[^:\s]+\.yaml:\d+:\d+: (?:[A-Z]\w+\/[\w.-]+|document \d+): [^:\s]+: .+$/;

// === small helpers ===

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function eventually<T>(what: string, probe: () => Promise<T | undefined>, deadlineMs = 10_000): Promise<T> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

interface Sent {
  readonly status: number;
  readonly server: string | undefined;
  readonly body: string;
  /** Whether the agent sent this request on a connection it had used before. */
  readonly reused: boolean;
  readonly localPort: number | undefined;
}

/** GET through the proxy on a given agent, reporting whether the connection was reused. */
function send(port: number, host: string, path: string, agent: Agent): Promise<Sent> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, headers: { host }, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          server: res.headers['x-server'] as string | undefined,
          body: Buffer.concat(chunks).toString(),
          reused: req.reusedSocket,
          localPort: req.socket?.localPort,
        }),
      );
    });
    // A hung request is a failure to report, not a reason to hang the test.
    req.setTimeout(5_000, () => req.destroy(new Error('no response within 5 s')));
    req.on('error', reject);
    req.end();
  });
}

async function adminJson(tp: TestProxy, path: string): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await get(tp.proxy.ports.admin, '127.0.0.1', path);
  expect(res.status).toBe(200);
  return res.json();
}

/** Which upstream answers `n` fresh requests for svc (a set of server names). */
async function servers(port: number, n: number): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const res: Response = await get(port, 'svc', '/probe');
    expect(res.status).toBe(200);
    seen.add(String(res.headers['x-server']));
  }
  return seen;
}

/** Counts TCP connections an upstream accepts. */
function countConnections(up: Upstream): { readonly count: number } {
  const counter = { count: 0 };
  up.server.on('connection', () => counter.count++);
  // The test controls when connections close; node's 5 s default must not interfere.
  up.server.keepAliveTimeout = 60_000;
  return counter;
}

// === tests ===

describe('hot reload', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function twoVersions(options: { watch?: boolean } = {}): Promise<{ a: Upstream; b: Upstream; tp: TestProxy }> {
    const a = await startUpstream('a');
    cleanups.push(() => a.close());
    const b = await startUpstream('b');
    cleanups.push(() => b.close());
    const tp = await startProxy(
      {
        'se.yaml': serviceEntry('svc', 80, [
          { port: a.port, labels: { version: 'v1' } },
          { port: b.port, labels: { version: 'v2' } },
        ]),
        'dr.yaml': destinationRule('svc'),
        'vs.yaml': splitVs(100, 0),
      },
      options,
    );
    cleanups.push(() => tp.close());
    return { a, b, tp };
  }

  it('applies a dozen routing changes and rejects invalid edits under load with zero failed requests', async () => {
    const { tp } = await twoVersions();
    const CLIENTS = 24;
    const MAX_PER_CLIENT = 3000;
    let stop = false;
    let completed = 0;
    const failures: string[] = [];
    const answeredBy = new Map<string, number>();

    const client = async (): Promise<void> => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        for (let i = 0; i < MAX_PER_CLIENT && !stop; i++) {
          try {
            const res = await send(tp.port, 'svc', `/load/${i}`, agent);
            if (res.status < 200 || res.status > 299) failures.push(`status ${res.status}: ${res.body}`);
            else if (res.server !== 'a' && res.server !== 'b') failures.push(`unexpected server ${res.server}`);
            else answeredBy.set(res.server, (answeredBy.get(res.server) ?? 0) + 1);
          } catch (err) {
            failures.push(`request error: ${(err as Error).message}`);
          }
          completed++;
        }
      } finally {
        agent.destroy();
      }
    };
    const clients = Array.from({ length: CLIENTS }, () => client());

    /** Lets the clients complete at least one more round of requests. */
    const letTrafficFlow = async (): Promise<void> => {
      const target = completed + CLIENTS;
      await eventually('client traffic', async () => (completed >= target || stop ? true : undefined));
    };

    try {
      // v2 → v1 → split, over and over; every other step also changes svc's connect timeout, so
      // its clusters are rebuilt and their pools retired while requests are in flight.
      const steps: Array<{ v1: number; v2: number; clusterChange: boolean }> = [];
      for (let i = 0; i < 12; i++) {
        const [v1, v2] = [[0, 100], [100, 0], [50, 50]][i % 3]!;
        steps.push({ v1: v1!, v2: v2!, clusterChange: i % 2 === 1 });
      }
      let version = tp.proxy.snapshot.version;
      let expected = new Set(['a']);
      for (const [i, step] of steps.entries()) {
        await letTrafficFlow();
        await tp.write({
          'vs.yaml': splitVs(step.v1, step.v2),
          'dr.yaml': destinationRule('svc', step.clusterChange ? `  trafficPolicy:\n    connectionPool:\n      tcp: {connectTimeout: ${i + 1}s}\n` : ''),
        });
        const outcome = await tp.proxy.reload();
        expect(outcome.ok, outcome.error).toBe(true);
        expect(outcome.version).toBe(version + 1);
        version = outcome.version;
        expected = new Set([...(step.v1 > 0 ? ['a'] : []), ...(step.v2 > 0 ? ['b'] : [])]);
        if (expected.size === 1) expect(await servers(tp.port, 4)).toEqual(expected);

        if (i === 6) {
          // Now serving v2 only. Two invalid edits in a row: the old routing keeps serving.
          for (const [text, pattern] of [
            [BROKEN_YAML, /\/vs\.yaml:5:\d+: document \d+: \(yaml\): /],
            [MISSPELT_FIELD, /\/vs\.yaml:10:7: VirtualService\/svc: spec\.http\[0\]\.route\[0\]\.wieght: unknown field "wieght"/],
          ] as const) {
            await letTrafficFlow();
            await tp.write({ 'vs.yaml': text });
            const rejected = await tp.proxy.reload();
            expect(rejected.ok).toBe(false);
            expect(rejected.version).toBe(version);
            expect(tp.proxy.snapshot.version).toBe(version);
            expect(await servers(tp.port, 4)).toEqual(expected);

            const status = await adminJson(tp, '/config_status');
            expect(status.version).toBe(version);
            expect(status.lastReload.ok).toBe(false);
            const problems: string[] = status.lastReload.problems;
            expect(problems.length).toBeGreaterThan(0);
            for (const line of problems) expect(line).toMatch(DIAGNOSTIC_LINE);
            expect(problems.some((l) => pattern.test(l)), problems.join('\n')).toBe(true);
            expect(tp.logs.some((l) => l.includes(`config reload rejected, still serving version ${version}`))).toBe(true);
          }
          // Fixing the file applies again.
          await tp.write({ 'vs.yaml': splitVs(100, 0) });
          const fixed = await tp.proxy.reload();
          expect(fixed.ok, fixed.error).toBe(true);
          expect(fixed.version).toBe(version + 1);
          version = fixed.version;
          const status = await adminJson(tp, '/config_status');
          expect(status.version).toBe(version);
          expect(status.lastReload.ok).toBe(true);
          expect(status.lastReload.problems).toEqual([]);
          expect(await servers(tp.port, 4)).toEqual(new Set(['a']));
        }
      }
      await letTrafficFlow();
    } finally {
      stop = true;
      await Promise.all(clients);
    }
    expect(failures).toEqual([]);
    // The load really overlapped the reloads, and reached both versions.
    expect(completed).toBeGreaterThan(CLIENTS * 14);
    expect(answeredBy.get('a') ?? 0).toBeGreaterThan(0);
    expect(answeredBy.get('b') ?? 0).toBeGreaterThan(0);
  });

  it('lets a request in flight to a slow upstream finish after a reload that rebuilds its cluster', async () => {
    const held: ServerResponse[] = [];
    const slow = await startUpstream('slow', (req, res) => {
      if (req.url !== '/slow') return false;
      held.push(res);
      return true;
    });
    cleanups.push(async () => {
      for (const res of held) if (!res.writableEnded) res.end();
      await slow.close();
    });
    const connections = countConnections(slow);
    const fast = await startUpstream('fast');
    cleanups.push(() => fast.close());
    const tp = await startProxy({ 'se.yaml': serviceEntry('slow', 80, [{ port: slow.port }]) });
    cleanups.push(() => tp.close());

    const inFlight = get(tp.port, 'slow', '/slow');
    await eventually('the upstream to receive the request', async () => (held.length === 1 ? true : undefined));

    // The reload sends `slow` elsewhere and changes the old cluster's config.
    await tp.write({
      'se.yaml': serviceEntry('slow', 80, [{ port: slow.port }]) + '---\n' + serviceEntry('other', 80, [{ port: fast.port }]),
      'dr.yaml': timeoutRule('slow', '3s'),
      'vs.yaml': `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: slow
spec:
  hosts: [slow]
  http:
  - route:
    - destination: {host: other}
`,
    });
    const outcome = await tp.proxy.reload();
    expect(outcome.ok, outcome.error).toBe(true);
    const moved = await get(tp.port, 'slow', '/after');
    expect(moved.status).toBe(200);
    expect(moved.headers['x-server']).toBe('fast');

    held[0]!.writeHead(200, { 'content-type': 'text/plain', 'x-server': 'slow' });
    held[0]!.end('finally');
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(res.headers['x-server']).toBe('slow');
    expect(res.text()).toBe('finally');
    expect(connections.count).toBe(1);
  });

  it('keeps idle keep-alive client connections opened before a reload working after it', async () => {
    const { tp } = await twoVersions();
    const agent = new Agent({ keepAlive: true, maxSockets: 4 });
    try {
      const before = await Promise.all(Array.from({ length: 4 }, (_, i) => send(tp.port, 'svc', `/before/${i}`, agent)));
      expect(before.map((r) => r.server)).toEqual(['a', 'a', 'a', 'a']);
      const ports = new Set(before.map((r) => r.localPort));
      expect(ports.size).toBe(4);

      await tp.write({ 'vs.yaml': splitVs(0, 100), 'dr.yaml': destinationRule('svc', '  trafficPolicy:\n    connectionPool:\n      tcp: {connectTimeout: 2s}\n') });
      const outcome = await tp.proxy.reload();
      expect(outcome.ok, outcome.error).toBe(true);
      await sleep(100); // a connection closed by the proxy would show up as a fresh socket below

      const after = await Promise.all(Array.from({ length: 4 }, (_, i) => send(tp.port, 'svc', `/after/${i}`, agent)));
      for (const r of after) {
        expect(r.status).toBe(200);
        expect(r.server).toBe('b');
        expect(r.reused).toBe(true);
      }
      expect(new Set(after.map((r) => r.localPort))).toEqual(ports);
      expect(tp.proxy.snapshot.version).toBe(2);
    } finally {
      agent.destroy();
    }
  });

  it('applies an edit on disk when the watcher is on', async () => {
    const { b, tp } = await twoVersions({ watch: true });
    expect(await servers(tp.port, 3)).toEqual(new Set(['a']));
    const startVersion = tp.proxy.snapshot.version;

    await tp.write({ 'vs.yaml': splitVs(0, 100) });
    await eventually('the edit to route to v2', async () => {
      const res = await get(tp.port, 'svc', '/watch');
      return res.headers['x-server'] === 'b' ? true : undefined;
    });
    const applied = await adminJson(tp, '/config_status');
    expect(applied.version).toBeGreaterThan(startVersion);
    expect(applied.lastReload.ok).toBe(true);

    // An invalid edit on disk is reported, and the last good config keeps serving.
    await tp.write({ 'vs.yaml': MISSPELT_FIELD });
    const rejected = await eventually('the invalid edit to be reported', async () => {
      const status = await adminJson(tp, '/config_status');
      return status.lastReload.ok === false ? status : undefined;
    });
    expect(rejected.lastReload.problems).toContain(
      `${join(tp.dir, 'vs.yaml')}:10:7: VirtualService/svc: spec.http[0].route[0].wieght: unknown field "wieght" (did you mean "weight"?)`,
    );
    expect(await servers(tp.port, 3)).toEqual(new Set(['b']));

    // Fixing the file applies again.
    await tp.write({ 'vs.yaml': splitVs(100, 0) });
    await eventually('the fix to apply', async () => {
      const status = await adminJson(tp, '/config_status');
      return status.lastReload.ok === true ? true : undefined;
    });
    expect(await servers(tp.port, 3)).toEqual(new Set(['a']));

    // A new file in the folder is picked up too.
    await tp.write({ 'extra.yaml': serviceEntry('extra', 80, [{ port: b.port }]) });
    await eventually('the new file to apply', async () => {
      const res = await get(tp.port, 'extra', '/new-file');
      return res.status === 200 && res.headers['x-server'] === 'b' ? true : undefined;
    });
  });

  it('watches a single config file, including a save by rename', async () => {
    const a = await startUpstream('a');
    cleanups.push(() => a.close());
    const b = await startUpstream('b');
    cleanups.push(() => b.close());
    const dir = await mkdtemp(join(tmpdir(), 'skiff-watch-file-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'mesh.yaml');
    const config = (v1: number, v2: number): string =>
      [
        serviceEntry('svc', 80, [
          { port: a.port, labels: { version: 'v1' } },
          { port: b.port, labels: { version: 'v2' } },
        ]),
        destinationRule('svc'),
        splitVs(v1, v2),
      ].join('---\n');
    await writeFile(file, config(100, 0));
    const proxy = await Proxy.start({ configPath: file, logger: silentLogger, ports: { outbound: 0, admin: 0, readiness: 0 } });
    cleanups.push(() => proxy.close(true));
    const port = proxy.ports.outbound;
    expect(await servers(port, 2)).toEqual(new Set(['a']));

    // An editor-style save: write a temporary file beside it, then rename it over the config.
    await writeFile(join(dir, '.mesh.yaml.swp'), config(0, 100));
    await rename(join(dir, '.mesh.yaml.swp'), file);
    await eventually('the renamed file to apply', async () => ((await get(port, 'svc', '/')).headers['x-server'] === 'b' ? true : undefined));

    // And a plain in-place write.
    await writeFile(file, config(100, 0));
    await eventually('the rewritten file to apply', async () => ((await get(port, 'svc', '/')).headers['x-server'] === 'a' ? true : undefined));
    expect(proxy.snapshot.version).toBeGreaterThanOrEqual(3);
  });

  it('reuses upstream connections of clusters whose config did not change', async () => {
    const stable = await startUpstream('stable');
    cleanups.push(() => stable.close());
    const changing = await startUpstream('changing');
    cleanups.push(() => changing.close());
    const stableConns = countConnections(stable);
    const changingConns = countConnections(changing);
    const services = serviceEntry('stable', 80, [{ port: stable.port }]) + '---\n' + serviceEntry('changing', 80, [{ port: changing.port }]);
    const tp = await startProxy({ 'se.yaml': services, 'dr.yaml': timeoutRule('changing', '1s') });
    cleanups.push(() => tp.close());

    const sequential = async (host: string, n: number): Promise<void> => {
      for (let i = 0; i < n; i++) {
        const res = await get(tp.port, host, `/seq/${i}`);
        expect(res.status).toBe(200);
        expect(res.headers['x-server']).toBe(host);
      }
    };
    await sequential('stable', 3);
    await sequential('changing', 3);
    expect(stableConns.count).toBe(1);
    expect(changingConns.count).toBe(1);

    for (let i = 2; i <= 4; i++) {
      await tp.write({ 'dr.yaml': timeoutRule('changing', `${i}s`) });
      const outcome = await tp.proxy.reload();
      expect(outcome.ok, outcome.error).toBe(true);
      await sequential('stable', 3);
      await sequential('changing', 3);
    }
    // The unchanged cluster kept its pool across three swaps; the changed one was rebuilt each time.
    expect(stableConns.count).toBe(1);
    expect(changingConns.count).toBe(4);
    expect(stable.requests).toHaveLength(12);
  });
});
