/**
 * `skiff inject` run as a process (dist/cli/inject.js; main.js dispatch aside): files and stdin
 * in, stdout or `-o` out, errors as `skiff: file:line:col: ...` with exit 1. What injection does
 * to a manifest is in test/unit/inject.test.ts. `npm test` builds first; run `npm run build`
 * before running this file alone.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSkiff } from '../helpers/command.js';

const DEPLOYMENT = `# the app
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  selector:
    matchLabels: {app: app}
  template:
    metadata:
      labels: {app: app}
    spec:
      containers:
      - name: app
        image: example/app:1
---
apiVersion: v1
kind: Service
metadata: {name: app}
spec:
  ports: [{port: 80}]
`;

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'skiff-inject-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const inject = (args: readonly string[], stdin?: string) => runSkiff(['inject', ...args], { cwd: dir, ...(stdin !== undefined && { stdin }) });

function containers(text: string): string[] {
  const [deployment] = parseAllDocuments(text).map((d) => d.toJS() as { spec: { template: { spec: { containers: { name: string; image: string }[] } } } });
  return deployment!.spec.template.spec.containers.map((c) => `${c.name}=${c.image}`);
}

describe('skiff inject', () => {
  it('reads -f FILE and writes the injected manifests to stdout', async () => {
    await writeFile(join(dir, 'app.yaml'), DEPLOYMENT);
    const run = await inject(['-f', 'app.yaml']);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout.startsWith('# the app\n')).toBe(true);
    expect(run.stdout.endsWith('---\napiVersion: v1\nkind: Service\nmetadata: {name: app}\nspec:\n  ports: [{port: 80}]\n')).toBe(true);
    expect(containers(run.stdout)).toEqual(['app=example/app:1', 'istio-proxy=localhost/skiff:latest']);
  });

  it('-f - reads stdin; --image and --config-map are used; the output injects to itself', async () => {
    const run = await inject(['-f', '-', '--image', 'registry.example/skiff:0.1.0', '--config-map', 'mesh-a'], DEPLOYMENT);
    expect(run.code).toBe(0);
    expect(containers(run.stdout)).toEqual(['app=example/app:1', 'istio-proxy=registry.example/skiff:0.1.0']);
    expect(run.stdout).toContain('configMap:\n          name: mesh-a\n');
    const again = await inject(['--filename', '-'], run.stdout);
    expect(again).toMatchObject({ code: 0, stdout: run.stdout, stderr: '' });
  });

  it('-o OUT writes the file and prints nothing', async () => {
    await writeFile(join(dir, 'in.yaml'), DEPLOYMENT);
    const run = await inject(['-f', 'in.yaml', '-o', 'out.yaml']);
    expect(run).toMatchObject({ code: 0, stdout: '', stderr: '' });
    const written = await readFile(join(dir, 'out.yaml'), 'utf8');
    expect(containers(written)).toEqual(['app=example/app:1', 'istio-proxy=localhost/skiff:latest']);
    const toStdout = await inject(['-f', 'in.yaml']);
    expect(toStdout.stdout).toBe(written);
  });

  it('invalid YAML exits 1 with file:line:col on stderr and nothing on stdout', async () => {
    await writeFile(join(dir, 'broken.yaml'), 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  name: b\n');
    const run = await inject(['-f', 'broken.yaml']);
    expect(run).toMatchObject({ code: 1, stdout: '', stderr: 'skiff: broken.yaml:5:3: document 1: (yaml): Map keys must be unique\n' });
    const fromStdin = await inject(['-f', '-'], 'a: [1, 2\n');
    expect(fromStdin.code).toBe(1);
    expect(fromStdin.stderr).toMatch(/^skiff: <stdin>:\d+:\d+: document 1: \(yaml\): \S.*\n$/);
  });

  it('a missing file and missing or bad flags exit 1 with the reason', async () => {
    const missing = await inject(['-f', 'nope.yaml']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^skiff: cannot read nope\.yaml: ENOENT/);
    expect(await inject([])).toMatchObject({ code: 1, stderr: 'skiff: inject needs --filename <file> (-f - reads stdin)\nrun "skiff --help" for usage\n' });
    expect(await inject(['-f', 'in.yaml', '--config-map', 'Mesh_A'])).toMatchObject({
      code: 1,
      stderr: 'skiff: --config-map must be a ConfigMap name (lowercase letters, digits, "-" and "."), got "Mesh_A"\nrun "skiff --help" for usage\n',
    });
    const unwritable = await inject(['-f', 'in.yaml', '-o', join(dir, 'no-such-dir', 'out.yaml')]);
    expect(unwritable.code).toBe(1);
    expect(unwritable.stderr).toMatch(/^skiff: cannot write --output .*no-such-dir\/out\.yaml: ENOENT/);
  });
});
