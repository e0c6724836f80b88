/**
 * Large configs load in a worker thread (src/config/isolated-load.ts). The worker entry exists
 * only as built JavaScript, so this test uses the built package (npm test builds first).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

interface Built {
  loadConfigIsolated: (path: string) => Promise<{ model: any; diagnostics: any[]; files: string[] }>; // eslint-disable-line @typescript-eslint/no-explicit-any
  loadInWorker: (sources: unknown[]) => Promise<{ model: any; diagnostics: any[] }>; // eslint-disable-line @typescript-eslint/no-explicit-any
  WORKER_THRESHOLD_BYTES: number;
}
interface BuiltLoad {
  loadConfig: (path: string) => Promise<{ model: any; diagnostics: any[] }>; // eslint-disable-line @typescript-eslint/no-explicit-any
}

function service(i: number): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc${i}}
spec:
  hosts: [svc${i}]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.${i >> 8}.${i & 255}, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc${i}}
spec:
  hosts: [svc${i}]
  http:
  - name: hello
    match: [{uri: {exact: /hello}}]
    directResponse: {status: 200, body: {string: "hello from svc${i}"}}
  - route: [{destination: {host: svc${i}}}]
`;
}

describe('loading a large config in a worker thread', () => {
  let dir: string;
  let built: Built;
  let inProcess: BuiltLoad;

  beforeAll(async () => {
    built = (await import('../../dist/config/isolated-load.js' as string)) as Built;
    inProcess = (await import('../../dist/config/load.js' as string)) as BuiltLoad;
    dir = await mkdtemp(join(tmpdir(), 'skiff-big-'));
    const docs = Array.from({ length: 700 }, (_, i) => service(i)).join('---\n');
    expect(docs.length).toBeGreaterThan(built.WORKER_THRESHOLD_BYTES);
    await writeFile(join(dir, 'mesh.yaml'), docs);
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('gives the same model as loading in-process, direct-response bodies as Buffers', async () => {
    const isolated = await built.loadConfigIsolated(dir);
    const direct = await inProcess.loadConfig(dir);
    expect(isolated.diagnostics).toEqual([]);
    expect(isolated.model).toEqual(direct.model);
    const rc = isolated.model.routeConfigs.find((r: { name: string }) => r.name === '80');
    const body = rc.virtualHosts[0].routes[0].action.body;
    expect(Buffer.isBuffer(body)).toBe(true);
    expect(body.toString()).toMatch(/^hello from svc\d+$/);
  });

  it('reports problems with their positions from the worker', async () => {
    const bad = join(dir, 'zz-bad.yaml');
    await writeFile(bad, service(9999).replace('resolution: STATIC', 'resolution: STATIK'));
    try {
      const result = await built.loadConfigIsolated(dir);
      expect(result.model).toBeUndefined();
      const errors = result.diagnostics.filter((d) => d.severity === 'error');
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ line: 7, col: 15, resource: 'ServiceEntry/svc9999', field: 'spec.resolution' });
      expect(errors[0].message).toContain('did you mean "STATIC"');
    } finally {
      await rm(bad);
    }
  });
});
