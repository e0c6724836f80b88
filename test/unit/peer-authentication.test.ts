/**
 * PeerAuthentication → the mTLS mode this proxy's inbound side enforces, resolved as istiod does
 * (IST:pilot/pkg/security/authn/policy_applier.go ComposePeerAuthentication): workload policy
 * (selector matching this proxy's labels, proxy namespace) over namespace policy (no selector,
 * proxy namespace) over mesh policy (no selector, root namespace); the oldest policy of a scope
 * wins; UNSET inherits from the next scope; portLevelMtls only with a selector, an UNSET port
 * inheriting the workload mode; selector policies in the root namespace ignored.
 */
import { describe, expect, it } from 'vitest';
import { mtlsModeFor } from '../../src/compile/peer-authentication.js';
import { formatDiagnostic } from '../../src/config/diagnostics.js';
import { loadFromSources } from '../../src/config/load.js';
import type { Model, PeerAuthentication } from '../../src/model/index.js';

// === helpers ===

interface Loaded {
  readonly model: Model | undefined;
  readonly lines: string[];
}

function load(...docs: string[]): Loaded {
  const r = loadFromSources([{ name: 'mesh.yaml', absolutePath: '/config/mesh.yaml', text: docs.join('---\n') }]);
  return { model: r.model, lines: r.diagnostics.map((d) => formatDiagnostic(d)) };
}

/** The resolved policy of a valid config (throws with the diagnostics otherwise). */
function resolved(...docs: string[]): PeerAuthentication {
  const r = load(...docs);
  if (r.model === undefined) throw new Error(`config is invalid:\n${r.lines.join('\n')}`);
  return r.model.peerAuthentication;
}

/** The error lines of an invalid config. */
function errors(...docs: string[]): string[] {
  const r = load(...docs);
  expect(r.model).toBeUndefined();
  return r.lines.filter((l) => !l.includes(': warning: '));
}

interface PaOptions {
  /** metadata.namespace; omitted → MeshConfig defaultNamespace. */
  readonly ns?: string;
  /** spec.selector.matchLabels as flow YAML, e.g. `{app: reviews}`. */
  readonly selector?: string;
  /** spec.mtls.mode; omitted → no mtls block at all. */
  readonly mode?: string;
  /** spec.portLevelMtls as flow YAML, e.g. `{8080: {mode: DISABLE}}`. */
  readonly ports?: string;
  readonly created?: string;
  readonly apiVersion?: string;
}

function pa(name: string, o: PaOptions = {}): string {
  const meta = [`name: ${name}`];
  if (o.ns !== undefined) meta.push(`namespace: ${o.ns}`);
  if (o.created !== undefined) meta.push(`creationTimestamp: "${o.created}"`);
  const spec: string[] = [];
  if (o.selector !== undefined) spec.push(`  selector: {matchLabels: ${o.selector}}`);
  if (o.mode !== undefined) spec.push(`  mtls: {mode: ${o.mode}}`);
  if (o.ports !== undefined) spec.push(`  portLevelMtls: ${o.ports}`);
  return `apiVersion: ${o.apiVersion ?? 'security.istio.io/v1'}
kind: PeerAuthentication
metadata: {${meta.join(', ')}}
spec:${spec.length === 0 ? ' {}' : `\n${spec.join('\n')}`}
`;
}

/** The proxy runs in `bookinfo` as `app: reviews, version: v1` unless told otherwise. */
function meshConfig(o: { ns?: string; root?: string; labels?: string } = {}): string {
  return `apiVersion: skiff.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  defaultNamespace: ${o.ns ?? 'bookinfo'}
  workloadLabels: ${o.labels ?? '{app: reviews, version: v1}'}
${o.root !== undefined ? `  rootNamespace: ${o.root}\n` : ''}`;
}

const MESH = meshConfig();
const ROOT = 'istio-system';
const NS = 'bookinfo';
const WORKLOAD = '{app: reviews}';

const only = (mode: string): PeerAuthentication => ({ mode: mode as PeerAuthentication['mode'], portModes: {} });

// === scope precedence ===

describe('PeerAuthentication scope precedence', () => {
  it('no policy anywhere is PERMISSIVE with no port overrides', () => {
    expect(resolved(MESH)).toEqual(only('PERMISSIVE'));
    expect(resolved()).toEqual(only('PERMISSIVE'));
  });

  it('a mesh policy (root namespace, no selector) applies when nothing narrower exists', () => {
    expect(resolved(MESH, pa('default', { ns: ROOT, mode: 'STRICT' }))).toEqual(only('STRICT'));
    expect(resolved(MESH, pa('default', { ns: ROOT, mode: 'DISABLE' }))).toEqual(only('DISABLE'));
  });

  it('a namespace policy overrides the mesh policy', () => {
    expect(resolved(MESH, pa('mesh', { ns: ROOT, mode: 'STRICT' }), pa('ns', { ns: NS, mode: 'DISABLE' }))).toEqual(only('DISABLE'));
    expect(resolved(MESH, pa('mesh', { ns: ROOT, mode: 'DISABLE' }), pa('ns', { ns: NS, mode: 'STRICT' }))).toEqual(only('STRICT'));
  });

  it('a workload policy overrides namespace and mesh policies, whatever the file order', () => {
    const docs = [pa('wl', { ns: NS, selector: WORKLOAD, mode: 'PERMISSIVE' }), pa('ns', { ns: NS, mode: 'DISABLE' }), pa('mesh', { ns: ROOT, mode: 'STRICT' })];
    expect(resolved(MESH, ...docs)).toEqual(only('PERMISSIVE'));
    expect(resolved(MESH, ...docs.reverse())).toEqual(only('PERMISSIVE'));
  });

  it('a workload policy needs every selector label on this proxy (a subset of its labels is enough)', () => {
    const nsStrict = pa('ns', { ns: NS, mode: 'STRICT' });
    expect(resolved(MESH, nsStrict, pa('wl', { ns: NS, selector: '{app: reviews, version: v1}', mode: 'DISABLE' }))).toEqual(only('DISABLE'));
    expect(resolved(MESH, nsStrict, pa('wl', { ns: NS, selector: '{app: reviews, version: v2}', mode: 'DISABLE' }))).toEqual(only('STRICT'));
    expect(resolved(MESH, nsStrict, pa('wl', { ns: NS, selector: '{app: ratings}', mode: 'DISABLE' }))).toEqual(only('STRICT'));
    // Without workloadLabels the proxy matches no selector.
    expect(resolved(meshConfig({ labels: '{}' }), nsStrict, pa('wl', { ns: NS, selector: WORKLOAD, mode: 'DISABLE' }))).toEqual(only('STRICT'));
  });

  it('policies of other namespaces do not apply, with or without a selector', () => {
    expect(resolved(MESH, pa('ns', { ns: 'other', mode: 'STRICT' }))).toEqual(only('PERMISSIVE'));
    expect(resolved(MESH, pa('wl', { ns: 'other', selector: WORKLOAD, mode: 'STRICT' }))).toEqual(only('PERMISSIVE'));
    expect(resolved(MESH, pa('mesh', { ns: ROOT, mode: 'DISABLE' }), pa('ns', { ns: 'other', mode: 'STRICT' }))).toEqual(only('DISABLE'));
  });

  it('a policy without metadata.namespace belongs to the proxy namespace (MeshConfig defaultNamespace)', () => {
    expect(resolved(MESH, pa('mesh', { ns: ROOT, mode: 'STRICT' }), pa('ns', { mode: 'DISABLE' }))).toEqual(only('DISABLE'));
    expect(resolved(MESH, pa('ns', { mode: 'STRICT' }), pa('wl', { selector: WORKLOAD, mode: 'DISABLE' }))).toEqual(only('DISABLE'));
    // The default defaultNamespace is `default`.
    expect(resolved(pa('ns', { ns: 'default', mode: 'STRICT' }))).toEqual(only('STRICT'));
  });

  it('an empty selector is a namespace-wide policy', () => {
    expect(resolved(MESH, pa('ns', { ns: NS, selector: '{}', mode: 'STRICT' }))).toEqual(only('STRICT'));
    // …and so in the root namespace it is the mesh policy, not an ignored selector policy.
    const r = load(MESH, pa('mesh', { ns: ROOT, selector: '{}', mode: 'STRICT' }));
    expect(r.model?.peerAuthentication).toEqual(only('STRICT'));
    expect(r.lines).toEqual([]);
  });

  it('the root namespace follows MeshConfig rootNamespace', () => {
    const mesh = meshConfig({ root: 'mesh-root' });
    expect(resolved(mesh, pa('mesh', { ns: 'mesh-root', mode: 'STRICT' }))).toEqual(only('STRICT'));
    // istio-system is then an ordinary namespace: not the proxy's, so its policy does not apply.
    expect(resolved(mesh, pa('mesh', { ns: ROOT, mode: 'STRICT' }))).toEqual(only('PERMISSIVE'));
  });

  it('a proxy in the root namespace gets the mesh policy; selector policies there are still ignored', () => {
    const mesh = meshConfig({ ns: ROOT });
    const r = load(mesh, pa('mesh', { ns: ROOT, mode: 'STRICT' }), pa('wl', { ns: ROOT, selector: WORKLOAD, mode: 'DISABLE' }));
    expect(r.model?.peerAuthentication).toEqual(only('STRICT'));
    expect(r.lines.filter((l) => l.includes('PeerAuthentication/wl'))).toHaveLength(1);
  });

  it('both security.istio.io/v1 and v1beta1 are read', () => {
    expect(resolved(MESH, pa('ns', { ns: NS, mode: 'STRICT', apiVersion: 'security.istio.io/v1beta1' }))).toEqual(only('STRICT'));
  });
});

// === oldest wins ===

describe('PeerAuthentication: the oldest policy of a scope wins', () => {
  const OLD = '2024-01-01T00:00:00Z';
  const NEW = '2025-06-01T12:00:00Z';

  it('mesh scope: the older policy wins even when it comes later in the files', () => {
    expect(resolved(MESH, pa('b', { ns: ROOT, mode: 'STRICT', created: NEW }), pa('a', { ns: ROOT, mode: 'DISABLE', created: OLD }))).toEqual(only('DISABLE'));
    expect(resolved(MESH, pa('a', { ns: ROOT, mode: 'DISABLE', created: OLD }), pa('b', { ns: ROOT, mode: 'STRICT', created: NEW }))).toEqual(only('DISABLE'));
  });

  it('namespace scope', () => {
    expect(resolved(MESH, pa('b', { ns: NS, mode: 'STRICT', created: NEW }), pa('a', { ns: NS, mode: 'PERMISSIVE', created: OLD }))).toEqual(only('PERMISSIVE'));
  });

  it('workload scope, port overrides coming only from the winner', () => {
    const p = resolved(
      MESH,
      pa('newer', { ns: NS, selector: WORKLOAD, mode: 'DISABLE', ports: '{9090: {mode: DISABLE}}', created: NEW }),
      pa('older', { ns: NS, selector: '{version: v1}', mode: 'STRICT', ports: '{8080: {mode: PERMISSIVE}}', created: OLD }),
    );
    expect(p).toEqual({ mode: 'STRICT', portModes: { 8080: 'PERMISSIVE' } });
  });

  it('timestamps are compared as instants, not as strings', () => {
    // 10:00+02:00 is 08:00Z: older than 09:00Z although it sorts later as text.
    expect(
      resolved(MESH, pa('b', { ns: NS, mode: 'STRICT', created: '2024-01-01T09:00:00Z' }), pa('a', { ns: NS, mode: 'DISABLE', created: '2024-01-01T10:00:00+02:00' })),
    ).toEqual(only('DISABLE'));
  });

  it('without timestamps (or with equal ones) the first read wins', () => {
    expect(resolved(MESH, pa('b', { ns: NS, mode: 'STRICT' }), pa('a', { ns: NS, mode: 'DISABLE' }))).toEqual(only('STRICT'));
    expect(resolved(MESH, pa('b', { ns: NS, mode: 'DISABLE', created: OLD }), pa('a', { ns: NS, mode: 'STRICT', created: OLD }))).toEqual(only('DISABLE'));
  });

  it('the oldest of three wins wherever it sits', () => {
    const mid = '2024-06-01T00:00:00Z';
    const a = pa('a', { ns: NS, mode: 'STRICT', created: NEW });
    const b = pa('b', { ns: NS, mode: 'PERMISSIVE', created: mid });
    const c = pa('c', { ns: NS, mode: 'DISABLE', created: OLD });
    for (const order of [[a, b, c], [a, c, b], [b, a, c], [b, c, a], [c, a, b], [c, b, a]]) {
      expect(resolved(MESH, ...order)).toEqual(only('DISABLE'));
    }
  });

  // Istio reads a missing timestamp as the zero time, the oldest of all.
  it('a policy without a timestamp does not let a newer policy beat an older one', () => {
    const p = resolved(
      MESH,
      pa('new', { ns: NS, mode: 'STRICT', created: NEW }),
      pa('untimed', { ns: NS, mode: 'PERMISSIVE' }),
      pa('old', { ns: NS, mode: 'DISABLE', created: OLD }),
    );
    expect(p.mode).not.toBe('STRICT');
  });
});

// === UNSET inheritance ===

describe('PeerAuthentication: UNSET inherits from the next scope', () => {
  it('workload UNSET → namespace mode', () => {
    expect(resolved(MESH, pa('ns', { ns: NS, mode: 'STRICT' }), pa('wl', { ns: NS, selector: WORKLOAD, mode: 'UNSET' }))).toEqual(only('STRICT'));
  });

  it('namespace UNSET → mesh mode', () => {
    expect(resolved(MESH, pa('mesh', { ns: ROOT, mode: 'DISABLE' }), pa('ns', { ns: NS, mode: 'UNSET' }))).toEqual(only('DISABLE'));
  });

  it('workload and namespace UNSET → mesh mode; everything UNSET → PERMISSIVE', () => {
    const wl = pa('wl', { ns: NS, selector: WORKLOAD, mode: 'UNSET' });
    const ns = pa('ns', { ns: NS, mode: 'UNSET' });
    expect(resolved(MESH, wl, ns, pa('mesh', { ns: ROOT, mode: 'STRICT' }))).toEqual(only('STRICT'));
    expect(resolved(MESH, wl, ns, pa('mesh', { ns: ROOT, mode: 'UNSET' }))).toEqual(only('PERMISSIVE'));
  });

  it('a policy without an mtls block (or an empty one) is UNSET', () => {
    expect(resolved(MESH, pa('mesh', { ns: ROOT, mode: 'STRICT' }), pa('ns', { ns: NS }))).toEqual(only('STRICT'));
    expect(resolved(MESH, pa('ns', { ns: NS, mode: 'DISABLE' }), pa('wl', { ns: NS, selector: WORKLOAD }))).toEqual(only('DISABLE'));
    const emptyMtls = pa('ns', { ns: NS }).replace('spec: {}', 'spec:\n  mtls: {}');
    expect(resolved(MESH, pa('mesh', { ns: ROOT, mode: 'STRICT' }), emptyMtls)).toEqual(only('STRICT'));
  });

  it('the oldest UNSET policy of a scope shadows a newer set one: inheritance skips to the parent scope', () => {
    const p = resolved(
      MESH,
      pa('mesh', { ns: ROOT, mode: 'DISABLE' }),
      pa('newer', { ns: NS, mode: 'STRICT', created: '2025-01-01T00:00:00Z' }),
      pa('older', { ns: NS, mode: 'UNSET', created: '2024-01-01T00:00:00Z' }),
    );
    expect(p).toEqual(only('DISABLE'));
  });
});

// === portLevelMtls ===

describe('PeerAuthentication portLevelMtls', () => {
  it('overrides the workload mode per workload port; an UNSET port inherits the workload mode', () => {
    const p = resolved(MESH, pa('wl', { ns: NS, selector: WORKLOAD, mode: 'STRICT', ports: '{8080: {mode: DISABLE}, 9090: {mode: UNSET}, 9091: {mode: PERMISSIVE}}' }));
    expect(p).toEqual({ mode: 'STRICT', portModes: { 8080: 'DISABLE', 9090: 'STRICT', 9091: 'PERMISSIVE' } });
    expect(mtlsModeFor(p, 8080)).toBe('DISABLE');
    expect(mtlsModeFor(p, 9090)).toBe('STRICT');
    expect(mtlsModeFor(p, 9091)).toBe('PERMISSIVE');
    expect(mtlsModeFor(p, 80)).toBe('STRICT');
  });

  it('an UNSET port inherits the workload mode after the workload mode itself was inherited', () => {
    const p = resolved(
      MESH,
      pa('mesh', { ns: ROOT, mode: 'DISABLE' }),
      pa('ns', { ns: NS, mode: 'STRICT' }),
      pa('wl', { ns: NS, selector: WORKLOAD, ports: '{9090: {mode: UNSET}, 8080: {mode: PERMISSIVE}}' }),
    );
    expect(p).toEqual({ mode: 'STRICT', portModes: { 9090: 'STRICT', 8080: 'PERMISSIVE' } });
    expect(mtlsModeFor(p, 9090)).toBe('STRICT');
    expect(mtlsModeFor(p, 1234)).toBe('STRICT');
  });

  it('without any policy every port is PERMISSIVE', () => {
    const p = resolved(MESH);
    expect(mtlsModeFor(p, 8080)).toBe('PERMISSIVE');
  });

  it('is an error without a selector, in any namespace', () => {
    for (const ns of [NS, ROOT]) {
      const errs = errors(MESH, pa('ns', { ns, mode: 'STRICT', ports: '{8080: {mode: DISABLE}}' }));
      expect(errs).toHaveLength(1);
      expect(errs[0]).toContain('PeerAuthentication/ns: spec.portLevelMtls: portLevelMtls requires a workload selector');
    }
  });

  it('is an error with an empty selector (Istio treats that as no selector)', () => {
    const errs = errors(MESH, pa('ns', { ns: NS, selector: '{}', ports: '{8080: {mode: DISABLE}}' }));
    expect(errs.join('\n')).toContain('portLevelMtls requires a workload selector');
  });

  it('port keys must be port numbers 1-65535', () => {
    for (const port of ['0', '65536', 'http', '-1']) {
      const errs = errors(MESH, pa('wl', { ns: NS, selector: WORKLOAD, ports: `{"${port}": {mode: DISABLE}}` }));
      expect(errs, port).toHaveLength(1);
      expect(errs[0], port).toContain('spec.portLevelMtls');
    }
    expect(resolved(MESH, pa('wl', { ns: NS, selector: WORKLOAD, ports: '{65535: {mode: DISABLE}, 1: {mode: STRICT}}' })).portModes).toEqual({ 1: 'STRICT', 65535: 'DISABLE' });
  });

  it('only the workload policy carries port overrides into the model', () => {
    // A selector policy that does not select this proxy contributes nothing.
    expect(resolved(MESH, pa('wl', { ns: NS, selector: '{app: ratings}', mode: 'STRICT', ports: '{8080: {mode: DISABLE}}' }))).toEqual(only('PERMISSIVE'));
  });
});

// === root-namespace selector policies, errors ===

describe('PeerAuthentication validation', () => {
  it('a selector policy in the root namespace is ignored, with a warning', () => {
    const r = load(MESH, pa('ns', { ns: NS, mode: 'PERMISSIVE' }), pa('rootwl', { ns: ROOT, selector: WORKLOAD, mode: 'STRICT', ports: '{8080: {mode: DISABLE}}' }));
    expect(r.model?.peerAuthentication).toEqual(only('PERMISSIVE'));
    expect(r.lines).toEqual([
      expect.stringMatching(/^mesh\.yaml:\d+:\d+: PeerAuthentication\/rootwl: spec\.selector: warning: a PeerAuthentication with a selector in the root namespace is ignored/),
    ]);
  });

  it('a root-namespace selector policy does not take the mesh scope either', () => {
    const r = load(MESH, pa('rootwl', { ns: ROOT, selector: WORKLOAD, mode: 'STRICT', created: '2020-01-01T00:00:00Z' }), pa('mesh', { ns: ROOT, mode: 'DISABLE' }));
    expect(r.model?.peerAuthentication).toEqual(only('DISABLE'));
  });

  it('an unknown mode is an error', () => {
    expect(errors(MESH, pa('ns', { ns: NS, mode: 'ON' })).join('\n')).toContain('spec.mtls.mode');
    expect(errors(MESH, pa('wl', { ns: NS, selector: WORKLOAD, ports: '{8080: {mode: strict}}' })).join('\n')).toContain('spec.portLevelMtls');
  });

  it('unknown spec fields are errors (a misspelt field must not fail open)', () => {
    const doc = pa('ns', { ns: NS }).replace('spec: {}', 'spec:\n  mtsl: {mode: STRICT}');
    expect(errors(MESH, doc).join('\n')).toMatch(/mtsl/);
  });

  it('a duplicate namespace/name is an error', () => {
    expect(errors(MESH, pa('ns', { ns: NS, mode: 'STRICT' }), pa('ns', { ns: NS, mode: 'DISABLE' })).join('\n')).toContain('duplicate PeerAuthentication "ns"');
  });
});
