/**
 * The SIGTERM drain of a sidecar, end to end (Istio's terminationDrainDuration and Envoy's
 * drainDuration): two pods (network namespaces) with `skiff iptables` and a plaintext sidecar
 * each. Pod b's sidecar runs with `--drain-time-s 2` and is started afresh, then sent SIGTERM, by
 * each test; pod b's application keeps running. On SIGTERM:
 * 1. the inbound listener stops accepting at once; its connections finish the request in flight
 *    and close (HTTP/1.1 `connection: close`, HTTP/2 GOAWAY);
 * 2. outbound keeps serving the application for terminationDrainDuration;
 * 3. then every listener stops accepting and busy connections finish;
 * 4. whatever is still open at drainDuration is closed, and the process exits 0.
 * Needs root, iproute2, iptables, curl and setpriv; elsewhere it is skipped with the reason.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, CLI } from '../helpers/cli.js';
import { netnsUnavailable, PodNetwork, type PodProcess } from '../helpers/netns.js';

const SKIP = netnsUnavailable(['iptables', 'curl', 'setpriv']);
const APPS = fileURLToPath(new URL('./apps.mjs', import.meta.url));
const NODE = process.execPath;
const PROXY_UID = 1337;
const INIT_ARGS = ['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-x', '', '-b', '*', '-d', '15020'];
const POD_A = '10.103.0.2';
const POD_B = '10.103.0.3';
const VIPS = { slow: '10.96.3.10', upstream: '10.96.3.20', echo: '10.96.3.30' };
/** Pod b's sidecar: `--drain-time-s`. */
const TERMINATION_DRAIN_MS = 2000;
/** drainDuration in the capped config (test 3); the others keep the 45s default. */
const DRAIN_CAP_MS = 3500;
/** How long pod b's application takes to answer GET /slow. */
const SLOW_MS = 1500;
/** Pod b's application serves HTTP/2 (h2c) here, reached directly (no service). */
const SLOW_H2_PORT = 9081;
/** Concurrent slow requests from pod a's application through both sidecars. */
const SLOW_REQUESTS = 20;
/** A request started this close to the signal races its delivery. */
const SIGNAL_RACE_MS = 3;
/** Time for a signal to be handled and a refused connection to be retried and answered. */
const SETTLE_MS = 250;
/** The most the process may outlive the drain it was given. */
const EXIT_MARGIN_MS = 3000;

// Pod a: the load client and `upstream` (the service pod b's application calls). Pod b: the slow
// HTTP service and a TCP echo.
const SERVICES = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: slow}
spec:
  hosts: [slow]
  addresses: [${VIPS.slow}]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  location: MESH_INTERNAL
  resolution: STATIC
  endpoints: [{address: ${POD_B}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: upstream}
spec:
  hosts: [upstream]
  addresses: [${VIPS.upstream}]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  location: MESH_INTERNAL
  resolution: STATIC
  endpoints: [{address: ${POD_A}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo}
spec:
  hosts: [echo]
  addresses: [${VIPS.echo}]
  ports: [{number: 7000, name: tcp, protocol: TCP}]
  location: MESH_INTERNAL
  resolution: STATIC
  endpoints: [{address: ${POD_B}}]
`;

const CAPPED_MESH = `apiVersion: skiff.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  defaultConfig: {drainDuration: ${DRAIN_CAP_MS}ms}
`;

interface LoadResult {
  readonly kind: 'slow' | 'fast';
  readonly start: number;
  readonly end: number;
  readonly status?: number;
  readonly error?: string;
}

interface Termination {
  /** Date.now() just before the signal was sent. */
  readonly at: number;
  /** Resolves with the exit code and when it came; rejects if the process outlives `deadlineMs`. */
  exited(deadlineMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; afterMs: number }>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

async function waitUntil(what: string, condition: () => boolean, details: () => string, deadlineMs = 5000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${details()}`);
    await sleep(20);
  }
}

describe.skipIf(SKIP !== undefined)(`a sidecar's SIGTERM drain${SKIP === undefined ? '' : ` (skipped: ${SKIP})`}`, () => {
  let net: PodNetwork;
  let dir: string;
  let slowApp: PodProcess;
  /** Pod b's sidecar of the current test. */
  let sidecarB: PodProcess | null = null;

  const config = (): string => join(dir, 'config');
  const cappedConfig = (): string => join(dir, 'config-capped');
  const slowArrivals = (): number => slowApp.output().split('\n').filter((l) => l === 'slow').length;

  const startSidecarB = async (configDir: string): Promise<PodProcess> => {
    const sidecar = net.start('b', NODE, [CLI, 'run', '--mode', 'sidecar', '-c', configDir, '--drain-time-s', String(TERMINATION_DRAIN_MS / 1000)], { uid: PROXY_UID });
    sidecarB = sidecar;
    await sidecar.waitFor(/ready: config version/);
    return sidecar;
  };

  /** SIGTERM to the sidecar's node process itself (`ip netns exec` and setpriv exec, not fork). */
  const terminate = (sidecar: PodProcess): Termination => {
    const pid = sidecar.child.pid!;
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    expect(cmdline.slice(0, 3), 'the signal must reach node, not a wrapper').toEqual([NODE, CLI, 'run']);
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
      sidecar.child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })),
    );
    const at = Date.now();
    sidecar.child.kill('SIGTERM');
    return {
      at,
      exited: async (deadlineMs) => {
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`the sidecar did not exit within ${deadlineMs} ms of SIGTERM:\n${sidecar.output()}`)), deadlineMs);
        });
        try {
          const e = await Promise.race([exit, late]);
          return { code: e.code, signal: e.signal, afterMs: e.at - at };
        } finally {
          clearTimeout(timer);
        }
      },
    };
  };

  /** Pod b's application calling `upstream` (in pod a): captured into b's outbound listener. */
  const callUpstreamFromB = () => net.exec('b', 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '2', 'http://upstream:8080/']);

  beforeAll(async () => {
    assertBuilt();
    dir = mkdtempSync(join(tmpdir(), 'skiff-drain-'));
    chmodSync(dir, 0o755);
    for (const d of [config(), cappedConfig()]) {
      mkdirSync(d);
      chmodSync(d, 0o755);
      writeFileSync(join(d, 'services.yaml'), SERVICES);
    }
    writeFileSync(join(cappedConfig(), 'mesh.yaml'), CAPPED_MESH);

    net = new PodNetwork('10.103.0', 'fd00:103::');
    const hosts = { slow: VIPS.slow, upstream: VIPS.upstream, echo: VIPS.echo };
    net.addPod('a', 2, hosts);
    net.addPod('b', 3, hosts);
    slowApp = net.start('b', NODE, [APPS, 'slow-http', 'slow', '9080', String(SLOW_H2_PORT), String(SLOW_MS)]);
    const apps = [slowApp, net.start('b', NODE, [APPS, 'echo', 'echo', '7000']), net.start('a', NODE, [APPS, 'http', 'upstream', '8080'])];
    await Promise.all([slowApp.waitFor(new RegExp(`listening ${SLOW_H2_PORT}`)), ...apps.map((a) => a.waitFor(/listening/))]);
    for (const pod of ['a', 'b']) {
      const init = await net.exec(pod, NODE, [CLI, 'iptables', ...INIT_ARGS]);
      expect(init.code, init.stderr).toBe(0);
    }
    // Pod a's sidecar lives through the whole file; pod b's is started by each test.
    await net.start('a', NODE, [CLI, 'run', '--mode', 'sidecar', '-c', config()], { uid: PROXY_UID }).waitFor(/ready: config version/);
  }, 30_000);

  // A failed test may leave its sidecar running, holding pod b's ports for the next one.
  afterEach(async () => {
    const c = sidecarB?.child;
    sidecarB = null;
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise((resolve) => c.once('exit', resolve));
    c.kill('SIGKILL');
    await gone;
  });

  afterAll(async () => {
    await net?.destroy();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('under load: every request in flight at SIGTERM completes with 200, no new inbound connection is accepted, and the sidecar exits 0 after the drain', async () => {
    const sidecar = await startSidecarB(config());
    const before = slowArrivals();
    // Through both sidecars: 20 slow requests on connections of their own, and a keep-alive loop
    // of fast ones that runs on past the SIGTERM.
    const load = net.start('a', NODE, [APPS, 'http-load', 'http://slow:9080', String(SLOW_REQUESTS), String(SLOW_MS + 1000)]);
    // Straight to pod b's inbound from pod a as uid 1337 (not captured by a): one HTTP/1.1 and
    // one HTTP/2 request, to see how their connections are closed.
    const directH1 = net.exec('a', 'curl', ['-sS', '-D', '-', '-o', '/dev/null', '--max-time', '10', `http://${POD_B}:9080/slow`], { uid: PROXY_UID });
    const directH2 = net.exec('a', NODE, [APPS, 'h2-get', `http://${POD_B}:${SLOW_H2_PORT}/slow`], { uid: PROXY_UID });
    const progress = (): string => `load client:\n${load.output()}\napplication:\n${slowApp.output()}\nsidecar:\n${sidecar.output()}`;
    await waitUntil('the slow requests to reach the application', () => slowArrivals() - before >= SLOW_REQUESTS + 2, progress);
    await waitUntil('a fast request to complete before SIGTERM', () => load.output().includes('"kind":"fast"'), progress);

    const term = terminate(sidecar);

    // A new connection to pod b's inbound is refused (curl: 7, could not connect)…
    await sleep(SETTLE_MS - (Date.now() - term.at));
    const refused = await net.exec('a', 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '3', `http://${POD_B}:9080/fast`], { uid: PROXY_UID });
    expect(refused.code, `${refused.stdout} ${refused.stderr}`).toBe(7);

    await load.waitFor(/^done$/m, SLOW_MS + 5000);
    const results = load
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as LoadResult);
    const slow = results.filter((r) => r.kind === 'slow');
    const fast = results.filter((r) => r.kind === 'fast');
    // Zero failed in-flight requests. The slow ones were all at the application at the signal.
    expect(slow).toHaveLength(SLOW_REQUESTS);
    for (const r of slow) {
      expect(r.start < term.at && r.end > term.at, JSON.stringify(r)).toBe(true);
      expect(r.status, JSON.stringify(r)).toBe(200);
    }
    // The keep-alive loop: every request before the signal and the one in flight at it, if any,
    // got 200. One started within SIGNAL_RACE_MS of the signal races its delivery (it may reach
    // pod b after the inbound listener closed): either answer will do, but not a hang.
    expect(fast.filter((r) => r.end < term.at).length).toBeGreaterThan(0);
    expect(fast.filter((r) => r.start < term.at - SIGNAL_RACE_MS && r.status !== 200)).toEqual([]);
    for (const r of fast.filter((r) => r.start >= term.at - SIGNAL_RACE_MS && r.start <= term.at + SETTLE_MS)) {
      expect([200, 503], JSON.stringify(r)).toContain(r.status);
      expect(r.end - r.start).toBeLessThan(1000);
    }
    // Every later one needs a new connection to pod b's inbound, refused like the one above: a's
    // sidecar answers 503 (connect failure) at once; none is served or left hanging.
    const late = fast.filter((r) => r.start > term.at + SETTLE_MS);
    expect(late.length).toBeGreaterThan(0);
    for (const r of late) {
      expect(r.status, JSON.stringify(r)).toBe(503);
      expect(r.end - r.start).toBeLessThan(1000);
    }

    // The direct connections finished their request, then were closed by the drain.
    const h1 = await directH1;
    expect(h1.code, h1.stderr).toBe(0);
    expect(h1.stdout).toMatch(/^HTTP\/1\.1 200/);
    expect(h1.stdout).toMatch(/^connection: close\r?$/im);
    const h2 = await directH2;
    expect(h2.code, h2.stderr).toBe(0);
    expect(JSON.parse(h2.stdout)).toEqual({ status: 200, goaway: true });

    const exit = await term.exited(TERMINATION_DRAIN_MS + EXIT_MARGIN_MS);
    expect(exit.code, sidecar.output()).toBe(0);
    expect(exit.afterMs).toBeGreaterThanOrEqual(TERMINATION_DRAIN_MS - 50);
    expect(sidecar.output()).toMatch(/shutting down \(serving outbound for 2s, closing by 45s\)/);
  });

  it('outbound keeps serving the application during terminationDrainDuration (readiness already failing), and stops with the process', async () => {
    const sidecar = await startSidecarB(config());
    const readiness = () => net.exec('b', 'curl', ['-s', '-w', ' %{http_code}', '--max-time', '2', 'http://127.0.0.1:15021/healthz/ready']);
    expect((await readiness()).stdout).toBe(' 200');
    expect((await callUpstreamFromB()).stdout).toBe('200');

    const term = terminate(sidecar);
    // The pod is taken out of its services' endpoints at once (Envoy's DRAINING)…
    await sleep(SETTLE_MS / 2 - (Date.now() - term.at));
    expect((await readiness()).stdout).toBe('the proxy is draining\n 503');
    // …while its application's own calls go on.
    // New outbound connections from the application, early and late in the 2s window.
    for (const atMs of [SETTLE_MS, TERMINATION_DRAIN_MS - 600]) {
      await sleep(term.at + atMs - Date.now());
      const r = await callUpstreamFromB();
      expect(r.stdout, `at ${atMs} ms: ${r.stderr}`).toBe('200');
      expect(Date.now() - term.at, 'the call must end inside the window').toBeLessThan(TERMINATION_DRAIN_MS);
    }

    const exit = await term.exited(TERMINATION_DRAIN_MS + EXIT_MARGIN_MS);
    expect(exit.code, sidecar.output()).toBe(0);
    expect(exit.afterMs).toBeGreaterThanOrEqual(TERMINATION_DRAIN_MS - 50);
    // Captured into a port nobody listens on any more: refused.
    const after = await callUpstreamFromB();
    expect(after.code).toBe(7);
    expect(after.stdout).toBe('000');
  });

  it('after the window every listener stops accepting; a connection still open at drainDuration is closed, then the process exits 0', async () => {
    const sidecar = await startSidecarB(cappedConfig());
    // An opaque TCP connection through b's inbound: it stays until its peer closes it, or the cap.
    const held = net.start('a', NODE, [APPS, 'tcp-hold', 'echo', '7000']);
    await held.waitFor(/^replied$/m, 5000);

    const term = terminate(sidecar);
    // Between terminationDrainDuration and drainDuration: still running (the connection is
    // open), but outbound no longer accepts.
    await sleep(term.at + TERMINATION_DRAIN_MS + 400 - Date.now());
    const outbound = await callUpstreamFromB();
    expect(outbound.code, outbound.stdout).toBe(7);
    expect(sidecar.child.exitCode, 'refused by a listener that stopped accepting, not by a process that is gone').toBeNull();
    expect(held.output()).not.toMatch(/closed at/);

    const exit = await term.exited(DRAIN_CAP_MS + EXIT_MARGIN_MS);
    expect(exit.code, sidecar.output()).toBe(0);
    expect(exit.afterMs).toBeGreaterThanOrEqual(DRAIN_CAP_MS - 50);
    await held.waitFor(/closed at \d+/, 1000);
    const closedAt = Number(/closed at (\d+)/.exec(held.output())![1]);
    expect(closedAt - term.at).toBeGreaterThanOrEqual(DRAIN_CAP_MS - 50);
    expect(closedAt - term.at).toBeLessThan(DRAIN_CAP_MS + 1000);
  });
});
