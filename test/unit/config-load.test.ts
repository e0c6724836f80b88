/**
 * Loading config end to end from real files: what is read, and exactly what each problem is
 * reported as (`file:line:col: Kind/name: field.path: message`).
 */
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatDiagnostic, type Diagnostic } from '../../src/config/diagnostics.js';
import { loadConfig, loadFromSources, type LoadResult } from '../../src/config/load.js';
import { SkiffError } from '../../src/core/errors.js';

const dirs: string[] = [];

afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

/** Writes `files` (relative path → text) into a fresh temp dir and returns the dir. */
async function folder(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-config-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), text);
  }
  return dir;
}

async function load(files: Record<string, string>): Promise<{ dir: string; result: LoadResult; lines: string[] }> {
  const dir = await folder(files);
  const result = await loadConfig(dir);
  return { dir, result, lines: result.diagnostics.map((d) => formatDiagnostic(d).replace(`${dir}/`, '')) };
}

const errors = (r: LoadResult): Diagnostic[] => r.diagnostics.filter((d) => d.severity === 'error');

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
  - {address: 10.0.0.2, labels: {version: v2}}
`;

function vs(http: string, name = 'reviews', apiVersion = 'networking.istio.io/v1'): string {
  return `apiVersion: ${apiVersion}
kind: VirtualService
metadata:
  name: ${name}
spec:
  hosts: [reviews]
  http:
${http}`;
}

describe('valid config', () => {
  it('loads a folder into a model, with no diagnostics', async () => {
    const { result, dir } = await load({
      'se.yaml': SERVICE,
      'vs.yaml': vs(`  - route:
    - destination: {host: reviews}
`),
    });
    expect(result.diagnostics).toEqual([]);
    expect(result.model).toBeDefined();
    expect(result.files).toEqual([join(dir, 'se.yaml'), join(dir, 'vs.yaml')]);
    expect(result.model!.clusters.map((c) => c.name)).toContain('outbound|9080||reviews.default.svc.cluster.local');
  });

  it('loads a single file', async () => {
    const dir = await folder({ 'only.yaml': SERVICE });
    const result = await loadConfig(join(dir, 'only.yaml'));
    expect(result.diagnostics).toEqual([]);
    expect(result.files).toEqual([join(dir, 'only.yaml')]);
  });

  it('an empty folder is a valid, empty config', async () => {
    const dir = await folder({});
    const result = await loadConfig(dir);
    expect(result.files).toEqual([]);
    expect(result.model?.routeConfigs).toEqual([]);
  });

  it('a path that does not exist is a CONFIG_READ error', async () => {
    const dir = await folder({});
    const missing = join(dir, 'nope');
    await expect(loadConfig(missing)).rejects.toThrow(SkiffError);
    await expect(loadConfig(missing)).rejects.toMatchObject({ code: 'CONFIG_READ', message: expect.stringContaining(`cannot read config ${missing}`) });
  });
});

describe('diagnostics: file, line, column, resource, field path, message', () => {
  it('unknown fields point at the key and suggest the closest known name', async () => {
    const { lines, result, dir } = await load({
      'se.yaml': SERVICE,
      'vs.yaml': vs(`  - match:
    - uri: {prefix: /old}
    redirect:
      uri: /new
      redirect_code: 302
  - route:
    - destnation: {host: reviews}
`),
    });
    expect(lines).toEqual([
      'vs.yaml:12:7: VirtualService/reviews: spec.http[0].redirect.redirect_code: unknown field "redirect_code" (did you mean "redirectCode"?)',
      'vs.yaml:14:7: VirtualService/reviews: spec.http[1].route[0].destnation: unknown field "destnation" (did you mean "destination"?)',
      'vs.yaml:14:7: VirtualService/reviews: spec.http[1].route[0].destination: required field is missing',
    ]);
    expect(result.model).toBeUndefined();
    const d = result.diagnostics[0]!;
    expect(d).toEqual({
      file: join(dir, 'vs.yaml'),
      line: 12,
      col: 7,
      resource: 'VirtualService/reviews',
      field: 'spec.http[0].redirect.redirect_code',
      message: 'unknown field "redirect_code" (did you mean "redirectCode"?)',
      severity: 'error',
    });
  });

  it('an unknown field with nothing close gets no suggestion', async () => {
    const { lines } = await load({ 'vs.yaml': vs(`  - route: [{destination: {host: reviews}}]\n    zzz: 1\n`) });
    expect(lines).toContain('vs.yaml:9:5: VirtualService/reviews: spec.http[0].zzz: unknown field "zzz"');
  });

  it('unknown top-level fields are suggested from the envelope', async () => {
    const { lines } = await load({
      'x.yaml': `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: x}
specs: {}
spec: {hosts: [x.example.com]}
`,
    });
    expect(lines).toEqual(['x.yaml:4:1: ServiceEntry/x: specs: unknown field "specs" (did you mean "spec"?)']);
  });

  it('wrong types', async () => {
    const { lines } = await load({
      'vs.yaml': `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: types}
spec:
  hosts: reviews
  http:
  - match: {uri: {prefix: /}}
    timeout: 5
    route:
    - destination: {host: reviews}
      weight: "ten"
    - destination: {host: [reviews]}
      weight: 1.5
`,
    });
    expect(lines).toEqual([
      'vs.yaml:5:10: VirtualService/types: spec.hosts: expected a list of strings, got the string "reviews"',
      'vs.yaml:7:12: VirtualService/types: spec.http[0].match: expected a list of objects, got an object',
      'vs.yaml:8:14: VirtualService/types: spec.http[0].timeout: expected a duration such as "5s" or "100ms", got number 5',
      'vs.yaml:11:15: VirtualService/types: spec.http[0].route[0].weight: expected an integer, got the string "ten"',
      'vs.yaml:12:27: VirtualService/types: spec.http[0].route[1].destination.host: expected a string, got a list',
      'vs.yaml:13:15: VirtualService/types: spec.http[0].route[1].weight: expected an integer, got number 1.5',
    ]);
  });

  it('enum values are checked, with a suggestion', async () => {
    const { lines } = await load({
      'dr.yaml': `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: lb}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBBIN}
`,
    });
    expect(lines).toEqual([
      'dr.yaml:7:28: DestinationRule/lb: spec.trafficPolicy.loadBalancer.simple: invalid value "ROUND_ROBBIN": expected one of UNSPECIFIED, LEAST_CONN, RANDOM, PASSTHROUGH, ROUND_ROBIN, LEAST_REQUEST (did you mean "ROUND_ROBIN"?)',
    ]);
  });

  it('out-of-range values: negative weight, percentage over 100, status 99, ports 0 and 70000', async () => {
    const { lines } = await load({
      'vs.yaml': `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ranges}
spec:
  hosts: [reviews]
  http:
  - match: [{port: 70000}]
    fault:
      abort:
        httpStatus: 99
        percentage: {value: 101}
    route:
    - destination: {host: reviews, port: {number: 0}}
      weight: -1
    - destination: {host: reviews}
      weight: 1
  - directResponse: {status: 99}
`,
      'se.yaml': `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ports}
spec:
  hosts: [ports.example.com]
  ports:
  - {number: 70000, name: http}
`,
    });
    expect(lines).toEqual([
      'se.yaml:7:14: ServiceEntry/ports: spec.ports[0].number: 70000 is out of range: must be between 1 and 65535',
      'vs.yaml:7:20: VirtualService/ranges: spec.http[0].match[0].port: 70000 is out of range: must be between 1 and 65535',
      'vs.yaml:10:21: VirtualService/ranges: spec.http[0].fault.abort.httpStatus: 99 is out of range: must be between 200 and 599',
      'vs.yaml:11:29: VirtualService/ranges: spec.http[0].fault.abort.percentage.value: 101 is out of range: must be between 0 and 100',
      'vs.yaml:13:51: VirtualService/ranges: spec.http[0].route[0].destination.port.number: 0 is out of range: must be between 1 and 65535',
      'vs.yaml:14:15: VirtualService/ranges: spec.http[0].route[0].weight: -1 is out of range: must be between 0 and 2147483647',
      'vs.yaml:17:30: VirtualService/ranges: spec.http[1].directResponse.status: 99 is out of range: must be between 200 and 599',
    ]);
  });

  it('bad durations', async () => {
    const { lines } = await load({
      'vs.yaml': vs(`  - timeout: 5x
    route: [{destination: {host: reviews}}]
  - timeout: 0.5ms
    route: [{destination: {host: reviews}}]
`),
    });
    expect(lines).toEqual([
      'vs.yaml:8:14: VirtualService/reviews: spec.http[0].timeout: invalid duration "5x": expected a number and a unit (ms, s, m, h), e.g. "5s" or "100ms"',
      'vs.yaml:10:14: VirtualService/reviews: spec.http[1].timeout: duration 0.5ms is too short: must be at least 1ms',
    ]);
  });

  it('regexes that are not RE2, wherever a regex is taken', async () => {
    const { lines } = await load({
      'vs.yaml': vs(`  - match:
    - uri: {regex: "/api(?=/v1)"}
      headers:
        x-id: {regex: "(a)\\\\1"}
      queryParams:
        q: {regex: "(?<=x)y"}
    rewrite:
      uriRegexRewrite: {match: "(?P<v>a)(?P=v)", rewrite: /}
    route: [{destination: {host: reviews}}]
  - match:
    - uri: {regex: ""}
      withoutHeaders:
        x-big: {regex: "a++"}
    route: [{destination: {host: reviews}}]
`),
    });
    expect(lines).toEqual([
      'vs.yaml:9:20: VirtualService/reviews: spec.http[0].match[0].uri.regex: invalid RE2 regex "/api(?=/v1)": lookahead and lookbehind assertions are not supported by RE2',
      'vs.yaml:11:23: VirtualService/reviews: spec.http[0].match[0].headers["x-id"].regex: invalid RE2 regex "(a)\\\\1": backreferences are not supported by RE2: \\1',
      'vs.yaml:13:20: VirtualService/reviews: spec.http[0].match[0].queryParams.q.regex: invalid RE2 regex "(?<=x)y": lookahead and lookbehind assertions are not supported by RE2',
      'vs.yaml:15:32: VirtualService/reviews: spec.http[0].rewrite.uriRegexRewrite.match: invalid RE2 regex "(?P<v>a)(?P=v)": backreferences are not supported by RE2',
      'vs.yaml:18:20: VirtualService/reviews: spec.http[1].match[0].uri.regex: regex string match must not be empty',
      'vs.yaml:20:24: VirtualService/reviews: spec.http[1].match[0].withoutHeaders["x-big"].regex: invalid RE2 regex "a++": bad repetition operator: ++ (possessive and repeated quantifiers are not RE2)',
    ]);
  });

  it('regexes longer than 1024 characters are refused, as Istio does', async () => {
    const long = 'a'.repeat(1025);
    const { lines } = await load({ 'vs.yaml': vs(`  - match: [{uri: {regex: "${long}"}}]\n    route: [{destination: {host: reviews}}]\n`) });
    expect(lines).toEqual(['vs.yaml:8:27: VirtualService/reviews: spec.http[0].match[0].uri.regex: regex is too large: 1025 characters, at most 1024 allowed']);
  });

  it('header match names must be lowercase', async () => {
    const { lines } = await load({ 'vs.yaml': vs(`  - match: [{headers: {X-User: {exact: a}}}]\n    route: [{destination: {host: reviews}}]\n`) });
    expect(lines).toEqual(['vs.yaml:8:24: VirtualService/reviews: spec.http[0].match[0].headers["X-User"]: invalid key "X-User": header names must be lowercase']);
  });

  it('oneof fields: only one may be set, one must be set', async () => {
    const { lines } = await load({
      'vs.yaml': vs(`  - match: [{uri: {exact: /a, prefix: /a}}]
    route: [{destination: {host: reviews}}]
    redirect: {uri: /b}
  - name: nothing
`),
    });
    expect(lines).toEqual([
      'vs.yaml:8:31: VirtualService/reviews: spec.http[0].match[0].uri.prefix: only one of exact, prefix, regex may be set',
      'vs.yaml:10:5: VirtualService/reviews: spec.http[0].redirect: only one of route, redirect, directResponse, delegate may be set',
      'vs.yaml:11:5: VirtualService/reviews: spec.http[1]: one of route, redirect, directResponse, delegate must be set',
    ]);
  });
});

describe('resource recognition', () => {
  it('an unknown kind, with a suggestion', async () => {
    const { lines, result } = await load({
      'a.yaml': `apiVersion: networking.istio.io/v1
kind: VirtualServce
metadata: {name: typo}
spec: {}
`,
    });
    expect(lines).toEqual(['a.yaml:2:7: VirtualServce/typo: kind: unknown kind "VirtualServce" (did you mean "VirtualService"?)']);
    expect(result.model).toBeUndefined();
  });

  it('a misspelt kind skiff knows but does not support is suggested too', async () => {
    const { lines } = await load({ 'a.yaml': 'apiVersion: networking.istio.io/v1\nkind: Gatway\nmetadata: {name: gw}\n' });
    expect(lines).toEqual(['a.yaml:2:7: Gatway/gw: kind: unknown kind "Gatway" (did you mean "Gateway"?)']);
  });

  it('unimplemented kinds are errors, never ignored (PeerAuthentication, AuthorizationPolicy and RequestAuthentication are enforced)', async () => {
    const { lines, result } = await load({
      'se.yaml': SERVICE,
      'security.yaml': `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: default}
spec: {}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt}
spec: {}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: gw}
spec: {}
`,
    });
    expect(lines).toEqual(['security.yaml:17:7: Sidecar/gw: kind: Sidecar is not supported yet']);
    expect(result.model).toBeUndefined();
  });

  it('a wrong or missing apiVersion', async () => {
    const { lines } = await load({
      'a.yaml': `apiVersion: networking.istio.io/v2
kind: DestinationRule
metadata: {name: v2}
spec: {host: reviews}
---
kind: ServiceEntry
metadata: {name: noversion}
spec: {hosts: [a.example.com]}
---
apiVersion: networking.istio.io/v1
kind: MeshConfig
metadata: {name: mesh}
`,
    });
    expect(lines).toEqual([
      'a.yaml:1:13: DestinationRule/v2: apiVersion: unsupported apiVersion "networking.istio.io/v2" for DestinationRule: expected networking.istio.io/v1alpha3 or networking.istio.io/v1beta1 or networking.istio.io/v1',
      'a.yaml:6:1: ServiceEntry/noversion: apiVersion: required field is missing (expected networking.istio.io/v1alpha3 or networking.istio.io/v1beta1 or networking.istio.io/v1)',
      'a.yaml:10:13: MeshConfig/mesh: apiVersion: unsupported apiVersion "networking.istio.io/v1" for MeshConfig: expected skiff.dev/v1alpha1',
    ]);
  });

  it('missing metadata, metadata.name or kind', async () => {
    const { lines } = await load({
      'a.yaml': `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  namespace: default
spec: {hosts: [a.example.com]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
spec: {hosts: [b.example.com]}
---
apiVersion: networking.istio.io/v1
metadata: {name: kindless}
---
- just
- a list
`,
    });
    expect(lines).toEqual([
      'a.yaml:4:3: document 1: metadata.name: required field is missing',
      'a.yaml:7:1: document 2: metadata: required field is missing',
      'a.yaml:11:1: document 3: kind: required field is missing',
      'a.yaml:14:1: document 4: (document): expected a Kubernetes-style resource (a map with apiVersion, kind, metadata and spec)',
    ]);
  });

  it('invalid names', async () => {
    const { lines } = await load({ 'a.yaml': 'apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: Bad_Name}\nspec: {hosts: [a.example.com]}\n' });
    expect(lines).toEqual(['a.yaml:3:18: ServiceEntry/Bad_Name: metadata.name: invalid value "Bad_Name": must be a lowercase DNS-1123 name']);
  });

  it('a missing spec is an empty one, so its required fields are reported (no crash)', async () => {
    const { lines } = await load({
      'a.yaml': `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: nospec}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: nohosts}
spec:
  http: [{route: [{destination: {host: reviews}}]}]
`,
    });
    expect(lines).toEqual([
      'a.yaml:1:1: DestinationRule/nospec: spec.host: required field is missing',
      'a.yaml:9:3: VirtualService/nohosts: spec.hosts: required field is missing',
    ]);
  });

  it('a VirtualService for sidecars cannot use the host "*"', async () => {
    const { lines } = await load({
      'a.yaml': `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: star}
spec:
  hosts: ["*"]
  http: [{route: [{destination: {host: reviews}}]}]
`,
    });
    expect(lines).toEqual(['a.yaml:5:11: VirtualService/star: spec.hosts[0]: wildcard host * is not allowed for virtual services bound to the mesh gateway']);
  });

  it('duplicate resources (same kind, namespace and name), in one file or across files', async () => {
    const { lines, result, dir } = await load({
      'a.yaml': SERVICE,
      'b.yaml': `${SERVICE}---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews, namespace: other}\nspec: {hosts: [reviews]}\n`,
      'c.yaml': SERVICE.replace('name: reviews', 'name: reviews\n  namespace: default'),
    });
    expect(lines).toEqual([
      `b.yaml:4:9: ServiceEntry/reviews: metadata.name: duplicate ServiceEntry "reviews" (first defined in ${join(dir, 'a.yaml')})`,
      `c.yaml:4:9: ServiceEntry/reviews: metadata.name: duplicate ServiceEntry "reviews" (first defined in ${join(dir, 'a.yaml')})`,
    ]);
    expect(result.model).toBeUndefined();
  });

  it('only one MeshConfig', async () => {
    const mesh = (name: string): string => `apiVersion: skiff.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: ${name}}\nspec: {}\n`;
    const { lines } = await load({ 'a.yaml': `${mesh('one')}---\n${mesh('two')}` });
    expect(lines).toEqual(['a.yaml:7:7: MeshConfig/two: kind: only one MeshConfig is allowed (MeshConfig/one is already loaded)']);
  });

  it('an invalid resource is dropped from the model, and what refers to it gets warnings', async () => {
    const { lines } = await load({
      'se.yaml': SERVICE.replace('protocol: HTTP', 'protocol: HTTPX'),
      'vs.yaml': vs('  - route: [{destination: {host: reviews}}]\n'),
    });
    expect(lines).toEqual([
      'se.yaml:8:42: ServiceEntry/reviews: spec.ports[0].protocol: invalid value "HTTPX": expected one of HTTP, HTTPS, GRPC, GRPC-WEB, HTTP2, MONGO, MYSQL, REDIS, TCP, TLS, UDP (did you mean "HTTP"?)',
      'vs.yaml:8:34: VirtualService/reviews: spec.http[0].route[0].destination.host: warning: host reviews.default.svc.cluster.local is not in the service registry (no ServiceEntry declares it): requests routed here get 503 NC',
    ]);
  });
});

describe('ServiceEntry validation (Istio ValidateServiceEntry)', () => {
  it('protocol names are case-insensitive, as Istio parses them', async () => {
    const { result } = await load({ 'se.yaml': SERVICE.replace('protocol: HTTP', 'protocol: http') });
    expect(result.diagnostics).toEqual([]);
    expect(result.model!.routeConfigs.map((r) => r.name)).toEqual(['9080']);
  });

  it('endpoints with resolution NONE, CIDRs with DNS, wildcard hosts without endpoints, undeclared endpoint ports', async () => {
    const { lines } = await load({
      'se.yaml': `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: none}
spec:
  hosts: [none.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dns}
spec:
  hosts: ["*.dns.example.com"]
  addresses: [10.1.0.0/16]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: static}
spec:
  hosts: [static.example.com, other.example.com]
  ports:
  - {number: 80, name: http, protocol: HTTP}
  - {number: 81, name: http}
  - {number: 9000, name: raw, protocol: TCP}
  resolution: STATIC
  endpoints:
  - address: 10.0.0.1
    ports: {htp: 8080}
  - address: backend.internal
`,
    });
    expect(lines).toEqual([
      'se.yaml:7:14: ServiceEntry/none: spec.endpoints: no endpoints should be provided for resolution NONE (traffic goes to the original destination)',
      'se.yaml:13:11: ServiceEntry/dns: spec.hosts[0]: hosts must be FQDNs when resolution DNS has no endpoints: "*.dns.example.com" cannot be resolved',
      'se.yaml:14:15: ServiceEntry/dns: spec.addresses[0]: CIDR addresses are allowed only for resolution NONE or STATIC, not DNS',
      'se.yaml:22:10: ServiceEntry/static: spec.hosts: multiple hosts need HTTP or TLS ports (with a protocol set) unless resolution is NONE: plain TCP cannot tell the hosts apart',
      'se.yaml:25:24: ServiceEntry/static: spec.ports[1].name: duplicate port name "http"',
      'se.yaml:30:13: ServiceEntry/static: spec.endpoints[0].ports.htp: endpoint port "htp" is not defined by the service entry\'s ports (did you mean "http"?)',
      'se.yaml:31:14: ServiceEntry/static: spec.endpoints[1].address: "backend.internal" is not an IP address: resolution STATIC needs IP endpoints (use resolution DNS for names)',
    ]);
  });
});

describe('YAML and file handling', () => {
  it('a YAML syntax error is reported with its position; other documents still load', async () => {
    const { lines, result } = await load({
      'bad.yaml': `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: broken
  labels: {a: b
---
${SERVICE.replace('resolution: STATIC', 'resolution: STATIC\n  locaton: MESH_EXTERNAL')}`,
    });
    expect(result.model).toBeUndefined();
    expect(lines).toEqual([
      'bad.yaml:6:1: document 1: (yaml): Flow map in block collection must be sufficiently indented and end with a }',
      // The second document is still read and checked.
      'bad.yaml:16:3: ServiceEntry/reviews: spec.locaton: unknown field "locaton" (did you mean "location"?)',
    ]);
  });

  it('duplicate keys are a YAML error', async () => {
    const { lines } = await load({ 'dup.yaml': 'apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nkind: ServiceEntry\n' });
    expect(lines).toEqual(['dup.yaml:3:1: document 1: (yaml): Map keys must be unique']);
  });

  it('anchors and aliases are read (through the positioned parser), with the same values', async () => {
    const withAliases = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
spec:
  hosts: [reviews]
  ports:
  - &port {number: 9080, name: http, protocol: HTTP}
  resolution: STATIC
  endpoints:
  - &ep {address: 10.0.0.1, labels: {version: v1}}
  - {address: 10.0.0.2, labels: {version: v2}}
`;
    const plain = await load({ 'se.yaml': SERVICE });
    const aliased = await load({ 'se.yaml': withAliases });
    expect(aliased.result.diagnostics).toEqual([]);
    expect(aliased.result.model).toEqual(plain.result.model);
  });

  it('alias bombs (exponential expansion) are refused, not expanded', async () => {
    const levels = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 10; i++) levels.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10).fill(`*${String.fromCharCode(96 + i)}`).join(', ')}]`);
    const { result } = await load({ 'bomb.yaml': levels.join('\n') + '\n' });
    expect(result.model).toBeUndefined();
    expect(errors(result)[0]!.file.endsWith('bomb.yaml')).toBe(true);
    expect(errors(result)[0]!.field).toBe('(yaml)');
    expect(errors(result)[0]!.message).toMatch(/alias/i);
  });

  it('timestamps and YAML 1.1 booleans stay strings (YAML 1.2 core schema)', async () => {
    const { result } = await load({
      'se.yaml': SERVICE.replace('  name: reviews\n', '  name: reviews\n  creationTimestamp: 2024-05-01T10:00:00Z\n  labels: {enabled: yes}\n'),
    });
    expect(result.diagnostics).toEqual([]);
    expect(result.model).toBeDefined();
  });

  it('tabs for indentation are a YAML error with a position', async () => {
    const { result } = await load({ 'tab.yaml': 'apiVersion: v1\nkind: ServiceEntry\nmetadata:\n\tname: x\n' });
    expect(result.diagnostics[0]).toMatchObject({ line: 4, col: 1, field: '(yaml)', severity: 'error' });
  });

  it('multi-document files: each document is checked on its own; empty documents are skipped', async () => {
    const { lines, result } = await load({
      'all.yaml': `---
${SERVICE}---
# only a comment
---
${vs('  - route: [{destination: {host: reviews}}]\n')}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec: {host: reviews, subsets: [{name: v1, labels: {version: v1}}], bogus: 1}
`,
    });
    expect(lines).toEqual(['all.yaml:29:69: DestinationRule/reviews: spec.bogus: unknown field "bogus"']);
    expect(result.model).toBeUndefined();
  });

  it('JSON files', async () => {
    const json = JSON.stringify(
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'VirtualService',
        metadata: { name: 'json' },
        spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews' }, wieght: 1 }] }] },
      },
      null,
      2,
    );
    const { lines } = await load({ 'se.yaml': SERVICE, 'vs.json': json });
    expect(lines).toEqual(['vs.json:18:13: VirtualService/json: spec.http[0].route[0].wieght: unknown field "wieght" (did you mean "weight"?)']);
    const ok = await load({ 'se.json': JSON.stringify({ apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'j' }, spec: { hosts: ['j.example.com'] } }) });
    expect(ok.result.diagnostics).toEqual([]);
    expect(ok.result.model).toBeDefined();
  });

  it('folders are read recursively in a stable order; hidden files and folders and other extensions are skipped', async () => {
    const { result, dir } = await load({
      'b.yaml': SERVICE,
      'a/z.yml': vs('  - route: [{destination: {host: reviews}}]\n'),
      'a/deeper/c.JSON': JSON.stringify({ apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'c' }, spec: { hosts: ['c.example.com'] } }),
      '.hidden.yaml': 'not: [valid',
      '.git/config.yaml': 'not: [valid',
      'README.md': '# not config',
      'notes.txt': 'kind: AuthorizationPolicy',
    });
    expect(result.diagnostics).toEqual([]);
    expect(result.files).toEqual([join(dir, 'a/deeper/c.JSON'), join(dir, 'a/z.yml'), join(dir, 'b.yaml')]);
  });

  it('follows symbolic links, as in a Kubernetes ConfigMap volume, reading each real file once', async () => {
    const dir = await folder({ '..2024_01_01/mesh.yaml': SERVICE, 'other/vs.yaml': vs('  - route: [{destination: {host: reviews}}]\n') });
    await symlink('..2024_01_01', join(dir, '..data'));
    await symlink('..data/mesh.yaml', join(dir, 'mesh.yaml'));
    await symlink('other', join(dir, 'linked'));
    await symlink('.', join(dir, 'other', 'loop'));
    await symlink('missing.yaml', join(dir, 'dangling.yaml'));
    const result = await loadConfig(dir);
    // `other/vs.yaml` is the file already read as `linked/vs.yaml`: no duplicate VirtualService.
    expect(result.diagnostics).toEqual([]);
    expect(result.files).toEqual([join(dir, 'linked/vs.yaml'), join(dir, 'mesh.yaml')]);
    expect(result.model!.clusters.map((c) => c.name)).toContain('outbound|9080||reviews.default.svc.cluster.local');
  });

  it('loadFromSources takes the given names for diagnostics', () => {
    const result = loadFromSources([{ name: 'inline.yaml', absolutePath: '/nowhere/inline.yaml', text: 'apiVersion: x\nkind: Nope\nmetadata: {name: n}\n' }]);
    expect(result.diagnostics.map(formatDiagnostic)).toEqual(['inline.yaml:2:7: Nope/n: kind: unknown kind "Nope"']);
    expect(result.files).toEqual(['inline.yaml']);
  });
});

describe('apiVersions', () => {
  it('networking.istio.io v1alpha3, v1beta1 and v1 give the same model', async () => {
    const dr = (v: string): string => `apiVersion: networking.istio.io/${v}
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  subsets: [{name: v1, labels: {version: v1}}]
`;
    const models = [];
    for (const v of ['v1alpha3', 'v1beta1', 'v1']) {
      const se = SERVICE.replace('networking.istio.io/v1', `networking.istio.io/${v}`);
      const { result } = await load({
        'se.yaml': se,
        'dr.yaml': dr(v),
        'vs.yaml': vs('  - route: [{destination: {host: reviews, subset: v1}}]\n', 'reviews', `networking.istio.io/${v}`),
      });
      expect(result.diagnostics).toEqual([]);
      models.push(result.model);
    }
    expect(models[0]).toBeDefined();
    expect(models[1]).toEqual(models[0]);
    expect(models[2]).toEqual(models[0]);
  });
});

describe('warnings', () => {
  it('accepted-but-not-enforced fields are warnings: the config stays valid', async () => {
    const { lines, result } = await load({
      'se.yaml': SERVICE,
      'vs.yaml': vs(`  - retries: {attempts: 3, perTryTimeout: 2s, retryRemoteLocalities: true}
    fault:
      delay: {exponentialDelay: 1s, percentage: {value: 10}}
      abort: {http2Error: CANCEL, percentage: {value: 10}}
    route: [{destination: {host: reviews}}]
`),
      'dr.yaml': `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 10, maxConnectionDuration: 1h}}
    outlierDetection: {consecutive5xxErrors: 3, splitExternalLocalOriginErrors: true}
`,
    });
    expect(lines).toEqual([
      'dr.yaml:7:27: DestinationRule/reviews: spec.trafficPolicy.connectionPool.tcp: warning: TCP keepalive and connection duration is accepted but not enforced yet',
      'dr.yaml:8:23: DestinationRule/reviews: spec.trafficPolicy.outlierDetection: warning: splitting local-origin errors is accepted but not enforced yet',
      'vs.yaml:8:70: VirtualService/reviews: spec.http[0].retries.retryRemoteLocalities: warning: retryRemoteLocalities is accepted but not enforced yet',
      'vs.yaml:10:33: VirtualService/reviews: spec.http[0].fault.delay.exponentialDelay: warning: exponentialDelay is not supported by Istio: no delay is injected',
      'vs.yaml:11:27: VirtualService/reviews: spec.http[0].fault.abort.http2Error: warning: an HTTP/2 error abort is accepted but not enforced yet',
    ]);
    expect(result.diagnostics.every((d) => d.severity === 'warning')).toBe(true);
    expect(result.model).toBeDefined();
  });

  it('DestinationRule tunnel, proxyProtocol and retryBudget are warned about, not silently ignored', async () => {
    const { lines, result } = await load({
      'se.yaml': SERVICE,
      'dr.yaml': `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    tunnel: {protocol: CONNECT, targetHost: proxy.example.com, targetPort: 3128}
    proxyProtocol: {version: V2}
    retryBudget: {percent: 20}
`,
    });
    expect(lines).toEqual([
      'dr.yaml:7:13: DestinationRule/reviews: spec.trafficPolicy.tunnel: warning: tunneling is accepted but not enforced yet',
      'dr.yaml:8:20: DestinationRule/reviews: spec.trafficPolicy.proxyProtocol: warning: the PROXY protocol is accepted but not enforced yet',
      'dr.yaml:9:18: DestinationRule/reviews: spec.trafficPolicy.retryBudget: warning: retryBudget is accepted but not enforced yet',
    ]);
    expect(result.model).toBeDefined();
  });

  it('errors sort before warnings', async () => {
    const { result } = await load({
      'a.yaml': vs('  - retries: {attempts: 3, retryRemoteLocalities: true}\n    route: [{destination: {host: reviews}}]\n'),
      'b.yaml': 'apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: x}\n',
    });
    expect(result.diagnostics.map((d) => d.severity)).toEqual(['error', 'warning', 'warning']);
    expect(errors(result)[0]!.resource).toBe('Gateway/x');
  });

  it('routing on JWT claims is refused, under headers or withoutHeaders', async () => {
    const { lines } = await load({
      'se.yaml': SERVICE,
      'vs.yaml': vs(`  - match:
    - headers: {"@request.auth.claims.group": {exact: admin}}
    - withoutHeaders: {"@request.auth.claims.role": {exact: guest}}
    route: [{destination: {host: reviews}}]
`),
    });
    expect(lines).toEqual([
      'vs.yaml:9:47: VirtualService/reviews: spec.http[0].match[0].headers["@request.auth.claims.group"]: routing on JWT claims is not supported yet',
      'vs.yaml:10:53: VirtualService/reviews: spec.http[0].match[1].withoutHeaders["@request.auth.claims.role"]: routing on JWT claims is not supported yet',
    ]);
  });
});
