/**
 * P7: reloads under load. While wrk runs against a proxy, its configuration is reloaded 20
 * times at even intervals; wrk's failed requests (non-2xx and socket errors) are counted. skiff
 * reloads from its watched folder (each edit changes a response header, so every reload is a
 * real change); HAProxy is reloaded with SIGUSR2 (master-worker), nginx with SIGHUP.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'node:http';
import { freePort, sleep, waitForPort } from '../lib/net.mjs';
import { helloMesh, launch, SKIFF_BIN, writeMesh } from '../lib/peers.mjs';
import { runWrk } from '../lib/wrk.mjs';

const RELOADS = 20;

function configVersion(adminPort) {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port: adminPort, path: '/config_status', agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(JSON.parse(body).version));
    });
    req.on('error', () => resolve(NaN));
    req.end();
  });
}

async function underReloads(port, seconds, reload) {
  const load = runWrk(port, { seconds });
  const interval = (seconds * 1000) / (RELOADS + 2);
  await sleep(interval);
  for (let i = 1; i <= RELOADS; i++) {
    reload(i);
    await sleep(interval);
  }
  return load;
}

export async function reloads(ctx) {
  const { work, upstream, settings, step, targets } = ctx;
  const out = {};

  step('P7 skiff: 20 reloads under load');
  const dir = writeMesh(join(work, 'mesh-reload'), { 'hello.yaml': helloMesh(upstream.port, 0) });
  const port = await freePort();
  const admin = await freePort();
  const proc = launch(process.execPath, [
    SKIFF_BIN, 'run', '-c', dir, '--outbound-port', String(port), '--admin-port', String(admin), '--readiness-port', '0', '--log-level', 'warn',
  ]);
  try {
    await waitForPort(port);
    const before = await configVersion(admin);
    const res = await underReloads(port, settings.reloadS, (i) => writeFileSync(join(dir, 'hello.yaml'), helloMesh(upstream.port, i)));
    await sleep(300);
    const after = await configVersion(admin);
    out.skiff = { failures: res.failures, requests: res.requests, reloadsApplied: after - before, rps: res.rps };
  } finally {
    proc.stop();
  }

  for (const t of targets) {
    if (t.reload === undefined) continue;
    step(`P7 ${t.key}: 20 reloads under load`);
    const res = await underReloads(t.port, settings.reloadS, () => t.reload());
    out[t.key] = { failures: res.failures, requests: res.requests, reloadsApplied: RELOADS, rps: res.rps };
    await sleep(500); // let the last reload settle before the next scenario
  }
  return out;
}
