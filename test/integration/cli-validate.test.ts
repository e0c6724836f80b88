/**
 * `skiff validate -c PATH`, run as users run it: the built CLI (dist/cli/main.js) in a child
 * process. `npm test` builds first; run `npm run build` before running this file alone (it builds
 * only when dist/ is missing, so as not to rewrite dist/ under other test files).
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(REPO, 'dist/cli/main.js');

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout split into lines, without the final empty one. */
  readonly lines: string[];
}

function skiff(args: readonly string[], cwd: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd, timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      resolve({ code, stdout, stderr, lines: stdout === '' ? [] : stdout.replace(/\n$/, '').split('\n') });
    });
  });
}

let root: string;

async function folder(name: string, files: Record<string, string>): Promise<string> {
  const dir = join(root, name);
  for (const [file, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, file)), { recursive: true });
    await writeFile(join(dir, file), text);
  }
  await mkdir(dir, { recursive: true });
  return dir;
}

const SERVICE = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
spec:
  hosts: [reviews]
  ports:
  - {number: 9080, name: http, protocol: HTTP}
  resolution: STATIC
  endpoints:
  - {address: 10.0.0.1, labels: {version: v1}}
`;

const SUBSETS = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  subsets:
  - name: v1
    labels: {version: v1}
`;

/** `file:line:col: Kind/name: field.path: message` */
const LINE = /^(?<file>[^:]+):(?<line>\d+):(?<col>\d+): (?<resource>[A-Za-z]+\/[a-z0-9.-]+|document \d+): (?<field>\S+): (?<message>.+)$/;

beforeAll(async () => {
  if (!existsSync(CLI)) execFileSync('npm', ['run', 'build'], { cwd: REPO, stdio: 'ignore' });
  root = await mkdtemp(join(tmpdir(), 'skiff-validate-'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('skiff validate', () => {
  it('exits 0 on a valid folder, printing nothing on stdout and a summary on stderr', async () => {
    const dir = await folder('valid', {
      'services/reviews.yaml': SERVICE,
      'rules/reviews-dr.yaml': SUBSETS,
      'rules/reviews-vs.yml': `apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
`,
      '.hidden/broken.yaml': 'this: [is not read',
    });
    const run = await skiff(['validate', '-c', dir], dir);
    expect(run).toMatchObject({ code: 0, stdout: '' });
    expect(run.stderr).toBe(`${dir}: valid (3 files)\n`);
  });

  it('accepts --config and a single file', async () => {
    const dir = await folder('single', { 'reviews.yaml': SERVICE });
    const run = await skiff(['validate', '--config', join(dir, 'reviews.yaml')], dir);
    expect(run).toMatchObject({ code: 0, stdout: '', stderr: `${join(dir, 'reviews.yaml')}: valid (1 file)\n` });
  });

  it('exits 1 on an invalid folder with one line per problem, each in the documented format', async () => {
    const dir = await folder('invalid', {
      'reviews.yaml': SERVICE,
      'vs.yaml': `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - match:
    - uri: {regex: "/api(?=/v2)"}
    redirect:
      uri: /v2
      redirect_code: 302
  - route:
    - destnation: {host: reviews}
      weight: -1
    timeout: 5x
`,
      'nested/sidecar.yaml': `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: gw
spec: {}
`,
      'nested/typo.json': JSON.stringify({ apiVersion: 'networking.istio.io/v1', kind: 'DestinationRul', metadata: { name: 'x' }, spec: {} }),
    });
    const run = await skiff(['validate', '-c', dir], dir);
    expect(run.code).toBe(1);
    expect(run.lines).toEqual([
      'nested/sidecar.yaml:2:7: Sidecar/gw: kind: Sidecar is not supported yet',
      'nested/typo.json:1:47: DestinationRul/x: kind: unknown kind "DestinationRul" (did you mean "DestinationRule"?)',
      'vs.yaml:9:20: VirtualService/reviews: spec.http[0].match[0].uri.regex: invalid RE2 regex "/api(?=/v2)": lookahead and lookbehind assertions are not supported by RE2',
      'vs.yaml:12:7: VirtualService/reviews: spec.http[0].redirect.redirect_code: unknown field "redirect_code" (did you mean "redirectCode"?)',
      'vs.yaml:14:7: VirtualService/reviews: spec.http[1].route[0].destnation: unknown field "destnation" (did you mean "destination"?)',
      'vs.yaml:14:7: VirtualService/reviews: spec.http[1].route[0].destination: required field is missing',
      'vs.yaml:15:15: VirtualService/reviews: spec.http[1].route[0].weight: -1 is out of range: must be between 0 and 2147483647',
      'vs.yaml:16:14: VirtualService/reviews: spec.http[1].timeout: invalid duration "5x": expected a number and a unit (ms, s, m, h), e.g. "5s" or "100ms"',
    ]);
    for (const l of run.lines) expect(l).toMatch(LINE);
    expect(run.stdout).toContain('(did you mean "redirectCode"?)');
    expect(run.stdout).toContain('(did you mean "destination"?)');
    expect(run.stderr).toBe('');
  });

  it('warnings alone keep exit 0 and are printed one per line, marked as warnings', async () => {
    const dir = await folder('warnings', {
      'reviews.yaml': SERVICE,
      'vs.yaml': `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - retries: {attempts: 3, retryRemoteLocalities: true}
    route:
    - destination: {host: reviews, subset: v2}
`,
    });
    const run = await skiff(['validate', '-c', dir], dir);
    expect(run.code).toBe(0);
    expect(run.lines).toEqual([
      'vs.yaml:8:51: VirtualService/reviews: spec.http[0].retries.retryRemoteLocalities: warning: retryRemoteLocalities is accepted but not enforced yet',
      'vs.yaml:10:44: VirtualService/reviews: spec.http[0].route[0].destination.subset: warning: subset "v2" is not defined by any DestinationRule for reviews.default.svc.cluster.local: requests routed here get 503 NC',
    ]);
    for (const l of run.lines) expect(l).toMatch(LINE);
    expect(run.stderr).toBe(`${dir}: valid (2 files)\n`);
  });

  it('errors come before warnings, and YAML syntax errors carry their position', async () => {
    const dir = await folder('mixed', {
      'a.yaml': `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a}
spec:
  hosts: [reviews]
  http:
  - retries: {attempts: 1, retryRemoteLocalities: true}
    route: [{destination: {host: reviews}}]
`,
      'b.yaml': 'apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: b\n',
      'reviews.yaml': SERVICE,
    });
    const run = await skiff(['validate', '-c', dir], dir);
    expect(run.code).toBe(1);
    const errorLines = run.lines.filter((l) => !l.includes(': warning: '));
    expect(errorLines.length).toBeGreaterThan(0);
    for (const l of errorLines) expect(l).toMatch(/^b\.yaml:\d+:\d+: document 1: \(yaml\): \S/);
    expect(run.lines.slice(errorLines.length)).toEqual(['a.yaml:7:51: VirtualService/a: spec.http[0].retries.retryRemoteLocalities: warning: retryRemoteLocalities is accepted but not enforced yet']);
  });

  it('a path that cannot be read exits 1 with the reason on stderr', async () => {
    const missing = join(root, 'does-not-exist');
    const run = await skiff(['validate', '-c', missing], root);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(new RegExp(`^skiff: cannot read config ${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ENOENT`));
  });

  it('without --config it is a usage error', async () => {
    const run = await skiff(['validate'], root);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe('skiff: validate needs --config <file|dir>\nrun "skiff --help" for usage\n');
  });
});
