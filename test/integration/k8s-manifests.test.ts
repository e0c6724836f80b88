/**
 * The Kubernetes examples in config/k8s/ stay true: the ConfigMap's files are a config skiff
 * loads (checked with `skiff validate`), the names that tie the files together match,
 * bookinfo-injected.yaml is exactly what `skiff inject` makes of bookinfo.yaml today, and the
 * ingress gateway's config serves its own pod's port.
 * `npm test` builds first; run `npm run build` before running this file alone.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { injectManifests } from '../../src/cli/inject/manifests.js';
import { loadFromSources } from '../../src/config/load.js';
import { runSkiff, REPO } from '../helpers/command.js';

const K8S = join(REPO, 'config/k8s');
const CLI = join(REPO, 'dist/cli/main.js');

// Manifests are loosely typed data.
type Obj = Record<string, any>;

async function manifests(file: string): Promise<Obj[]> {
  const docs = parseAllDocuments(await readFile(join(K8S, file), 'utf8'));
  for (const d of docs) expect(d.errors).toEqual([]);
  return docs.map((d) => d.toJS() as Obj);
}

let tmp: string;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'skiff-k8s-'));
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('config/k8s', () => {
  it('the ConfigMap\'s data is a config `skiff validate` accepts without a problem', async () => {
    const [configMap] = await manifests('mesh-configmap.yaml');
    expect(configMap).toMatchObject({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'skiff-mesh', namespace: 'bookinfo' } });
    const data = configMap!['data'] as Record<string, string>;
    expect(Object.keys(data).sort()).toEqual(['mesh.yaml', 'ratings.yaml', 'reviews.yaml']);
    for (const [key, text] of Object.entries(data)) await writeFile(join(tmp, key), text);
    const run = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [CLI, 'validate', '-c', tmp], { timeout: 20_000 }, (err, stdout, stderr) => {
        resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr });
      });
    });
    // No errors and no warnings: stdout lists problems.
    expect(run).toEqual({ code: 0, stdout: '', stderr: `${tmp}: valid (3 files)\n` });
  });

  it('the namespace, the ConfigMap, the workloads and the ServiceEntry endpoints agree on names', async () => {
    const [namespace] = await manifests('namespace.yaml');
    expect(namespace).toEqual({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bookinfo', labels: { 'istio-injection': 'enabled' } } });
    const bookinfo = await manifests('bookinfo.yaml');
    for (const o of bookinfo) expect(o['metadata']['namespace']).toBe('bookinfo');
    const services = new Set(bookinfo.filter((o) => o['kind'] === 'Service').map((o) => `${o['metadata']['name']}.bookinfo.svc.cluster.local`));
    const [configMap] = await manifests('mesh-configmap.yaml');
    const endpoints = Object.values(configMap!['data'] as Record<string, string>)
      .flatMap((text) => parseAllDocuments(text).map((d) => d.toJS() as Obj))
      .filter((o) => o['kind'] === 'ServiceEntry')
      .flatMap((se) => (se['spec']['endpoints'] as Obj[]).map((e) => e['address'] as string));
    expect(endpoints.length).toBeGreaterThan(0);
    for (const address of endpoints) expect(services).toContain(address);
    const deployments = bookinfo.filter((o) => o['kind'] === 'Deployment').map((o) => o['metadata']['name']);
    expect(deployments).toEqual(['productpage-v1', 'details-v1', 'reviews-v1', 'reviews-v2', 'ratings-v1']);
  });

  it('bookinfo-injected.yaml is a fresh injection of bookinfo.yaml (rerun the command in its header)', async () => {
    const source = await readFile(join(K8S, 'bookinfo.yaml'), 'utf8');
    const injected = await readFile(join(K8S, 'bookinfo-injected.yaml'), 'utf8');
    expect(source).toContain('  skiff inject -f config/k8s/bookinfo.yaml -o config/k8s/bookinfo-injected.yaml\n');
    const fresh = injectManifests(source, 'config/k8s/bookinfo.yaml');
    expect(fresh.injected).toBe(5);
    expect(injected).toBe(fresh.output);
    // The command itself, as the header runs it, writes the same bytes.
    const run = await runSkiff(['inject', '-f', 'config/k8s/bookinfo.yaml', '-o', join(tmp, 'bookinfo-injected.yaml')]);
    expect(run).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(await readFile(join(tmp, 'bookinfo-injected.yaml'), 'utf8')).toBe(injected);
  });

  it('the ingress gateway: its config is valid, selects its pods, listens on the port its Service targets, and routes to productpage', async () => {
    const [configMap, serviceAccount, deployment, service] = await manifests('ingress-gateway.yaml');
    expect(configMap).toMatchObject({ kind: 'ConfigMap', metadata: { name: 'skiff-ingress', namespace: 'bookinfo' } });
    const data = configMap!['data'] as Record<string, string>;
    const dir = join(tmp, 'ingress');
    await mkdir(dir);
    for (const [key, text] of Object.entries(data)) await writeFile(join(dir, key), text);
    const run = await runSkiff(['validate', '-c', dir]);
    expect(run).toMatchObject({ code: 0, stdout: '', stderr: `${dir}: valid (2 files)\n` });

    const loaded = loadFromSources(Object.entries(data).map(([name, text]) => ({ name, absolutePath: `/etc/skiff/config/${name}`, text })));
    const [port] = loaded.model!.gateways;
    expect(port).toMatchObject({ port: 8080, kind: 'http' });
    const [vhost] = port!.servers[0]!.routes.kind === 'http' ? port!.servers[0]!.routes.config.virtualHosts : [];
    const action = vhost!.routes[0]!.action;
    expect(action.kind === 'forward' ? action.clusters.map((c) => c.cluster) : []).toEqual(['outbound|9080||productpage.bookinfo.svc.cluster.local']);

    const pod = deployment!['spec']['template'];
    expect(serviceAccount).toMatchObject({ kind: 'ServiceAccount', metadata: { name: pod['spec']['serviceAccountName'] } });
    expect(pod['metadata']['labels']).toEqual({ istio: 'ingressgateway' });
    const [proxy] = pod['spec']['containers'] as Obj[];
    expect(proxy!['args']).toEqual(['run', '--mode', 'gateway', '-c', '/etc/skiff/config']);
    expect((proxy!['ports'] as Obj[]).map((p) => p['containerPort'])).toEqual([8080, 15021]);
    expect(pod['spec']['volumes']).toContainEqual({ name: 'skiff-config', configMap: { name: 'skiff-ingress' } });
    expect(service).toMatchObject({ kind: 'Service', spec: { selector: { istio: 'ingressgateway' }, ports: [{ port: 80, targetPort: 8080 }] } });
  });

  it('every injected workload mounts the example ConfigMap, and reviews-v2 waits for its proxy', async () => {
    const injected = await manifests('bookinfo-injected.yaml');
    for (const o of injected.filter((x) => x['kind'] === 'Deployment')) {
      const pod = o['spec']['template'];
      expect(pod['spec']['volumes']).toContainEqual({ name: 'skiff-config', configMap: { name: 'skiff-mesh' } });
      const names = (pod['spec']['containers'] as Obj[]).map((c) => c['name']);
      expect(names).toEqual(o['metadata']['name'] === 'reviews-v2' ? ['istio-proxy', 'reviews'] : [names[0], 'istio-proxy']);
    }
  });
});
