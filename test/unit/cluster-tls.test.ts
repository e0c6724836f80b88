/**
 * DestinationRule tls → each cluster's upstream transport (IST:pilot/pkg/networking/core
 * cluster_tls.go, cluster_builder.go buildAutoMtlsSettings): ISTIO_MUTUAL with the cluster name
 * as SNI and the server identities secure naming accepts; auto mTLS for MESH_INTERNAL services
 * when no rule sets TLS; plaintext for DISABLE and for original-destination clusters; SIMPLE,
 * MUTUAL and insecureSkipVerify refused; subset and port-level tls following the policy merge.
 */
import { describe, expect, it } from 'vitest';
import { formatDiagnostic } from '../../src/config/diagnostics.js';
import { loadFromSources } from '../../src/config/load.js';
import type { Cluster, Model, UpstreamTls } from '../../src/model/index.js';

// === helpers ===

interface Loaded {
  readonly model: Model | undefined;
  readonly lines: string[];
}

function load(...docs: string[]): Loaded {
  const r = loadFromSources([{ name: 'mesh.yaml', absolutePath: '/config/mesh.yaml', text: docs.join('---\n') }]);
  return { model: r.model, lines: r.diagnostics.map((d) => formatDiagnostic(d)) };
}

function model(...docs: string[]): Model {
  const r = load(...docs);
  if (r.model === undefined) throw new Error(`config is invalid:\n${r.lines.join('\n')}`);
  return r.model;
}

function errors(...docs: string[]): string[] {
  const r = load(...docs);
  expect(r.model).toBeUndefined();
  return r.lines.filter((l) => !l.includes(': warning: '));
}

function cluster(m: Model, name: string): Cluster {
  const c = m.clusters.find((x) => x.name === name);
  if (c === undefined) throw new Error(`no cluster ${name}; have ${m.clusters.map((x) => x.name).join(', ')}`);
  return c;
}

const tlsOf = (m: Model, name: string): UpstreamTls | undefined => cluster(m, name).tls;

const HOST = 'reviews.default.svc.cluster.local';
const cl = (port: number, subset = '', host = HOST): string => `outbound|${port}|${subset}|${host}`;
const sa = (account: string, ns = 'default', td = 'cluster.local'): string => `spiffe://${td}/ns/${ns}/sa/${account}`;

interface SeOptions {
  readonly host?: string;
  readonly namespace?: string;
  readonly resolution?: string;
  readonly location?: string;
  /** `endpoints:` list items, flow YAML, one per line. */
  readonly endpoints?: readonly string[];
  readonly subjectAltNames?: string;
}

/** reviews: ports 9080 (HTTP) and 9443 (TCP); endpoints v1 (sa reviews-v1) and v2 (sa reviews-v2). */
function serviceEntry(o: SeOptions = {}): string {
  const host = o.host ?? 'reviews';
  const endpoints = o.endpoints ?? [
    '{address: 10.0.0.1, labels: {version: v1, security.istio.io/tlsMode: istio}, serviceAccount: reviews-v1}',
    '{address: 10.0.0.2, labels: {version: v2, security.istio.io/tlsMode: istio}, serviceAccount: reviews-v2}',
  ];
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ${host.split('.')[0]}${o.namespace !== undefined ? `\n  namespace: ${o.namespace}` : ''}
spec:
  hosts: ["${host}"]
  location: ${o.location ?? 'MESH_INTERNAL'}
  ports:
  - {number: 9080, name: http, protocol: HTTP}
  - {number: 9443, name: tcp, protocol: TCP}
  resolution: ${o.resolution ?? 'STATIC'}
${o.subjectAltNames !== undefined ? `  subjectAltNames: ${o.subjectAltNames}\n` : ''}${
    endpoints.length > 0 ? `  endpoints:\n${endpoints.map((e) => `  - ${e}`).join('\n')}\n` : ''
  }`;
}

function destinationRule(spec: string, o: { name?: string; namespace?: string } = {}): string {
  return `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: ${o.name ?? 'reviews'}${o.namespace !== undefined ? `\n  namespace: ${o.namespace}` : ''}
spec:
  host: reviews
${spec}`;
}

function meshConfig(spec: string): string {
  return `apiVersion: skiff.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec: ${spec}
`;
}

const SUBSETS = `  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`;

/** What every ISTIO_MUTUAL cluster of the default reviews service looks like. */
function istioMutual(name: string, auto: boolean, extra: Partial<UpstreamTls> = {}): UpstreamTls {
  return { mode: 'ISTIO_MUTUAL', auto, sni: name, subjectAltNames: [sa('reviews-v1'), sa('reviews-v2')], trustDomain: 'cluster.local', ...extra };
}

// === auto mTLS ===

describe('auto mTLS (no tls in any DestinationRule)', () => {
  it('is on by default: ISTIO_MUTUAL, auto, cluster name as SNI, endpoint service accounts as SANs', () => {
    const m = model(serviceEntry());
    expect(tlsOf(m, cl(9080))).toEqual(istioMutual(cl(9080), true));
    expect(tlsOf(m, cl(9443))).toEqual(istioMutual(cl(9443), true));
  });

  it('stays auto when a DestinationRule sets other policy but no tls', () => {
    const m = model(serviceEntry(), destinationRule(`  trafficPolicy: {connectionPool: {tcp: {maxConnections: 7}}}\n${SUBSETS}`));
    for (const name of [cl(9080), cl(9080, 'v1'), cl(9080, 'v2'), cl(9443, 'v1')]) expect(tlsOf(m, name)).toEqual(istioMutual(name, true));
  });

  it('MeshConfig enableAutoMtls: true is the same as the default', () => {
    expect(tlsOf(model(meshConfig('{enableAutoMtls: true}'), serviceEntry()), cl(9080))).toEqual(istioMutual(cl(9080), true));
  });

  it('enableAutoMtls: false leaves clusters without a tls setting plaintext', () => {
    const m = model(meshConfig('{enableAutoMtls: false}'), serviceEntry(), destinationRule(SUBSETS));
    for (const name of [cl(9080), cl(9443), cl(9080, 'v1'), cl(9443, 'v2')]) expect(tlsOf(m, name)).toBeUndefined();
  });

  it('applies to DNS clusters too', () => {
    const m = model(serviceEntry({ host: 'api.internal.example', resolution: 'DNS', endpoints: ['{address: api-1.internal.example, serviceAccount: api}'] }));
    const name = cl(9080, '', 'api.internal.example');
    expect(cluster(m, name).discovery).toBe('STRICT_DNS');
    expect(tlsOf(m, name)).toEqual({ mode: 'ISTIO_MUTUAL', auto: true, sni: name, subjectAltNames: [sa('api')], trustDomain: 'cluster.local' });
  });

  it("Istio's own clusters never get tls", () => {
    const m = model(serviceEntry());
    for (const name of ['PassthroughCluster', 'BlackHoleCluster', 'InboundPassthroughCluster']) expect(tlsOf(m, name), name).toBeUndefined();
  });

  it('is off for MESH_EXTERNAL services (the ServiceEntry default location), as istiod buildAutoMtlsSettings', () => {
    const m = model(serviceEntry({ location: 'MESH_EXTERNAL' }));
    expect(tlsOf(m, cl(9080))).toBeUndefined();
    const defaulted = model(serviceEntry().replace('  location: MESH_INTERNAL\n', ''));
    expect(tlsOf(defaulted, cl(9080))).toBeUndefined();
    // An explicit ISTIO_MUTUAL still applies to an external service.
    const explicit = model(serviceEntry({ location: 'MESH_EXTERNAL' }), destinationRule('  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\n'));
    expect(tlsOf(explicit, cl(9080))).toEqual(istioMutual(cl(9080), false));
  });
});

// === explicit ISTIO_MUTUAL / DISABLE ===

describe('DestinationRule tls.mode', () => {
  it('ISTIO_MUTUAL is not auto, on every cluster of the rule, subsets named in the SNI', () => {
    const m = model(serviceEntry(), destinationRule(`  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\n${SUBSETS}`));
    for (const name of [cl(9080), cl(9443), cl(9080, 'v1'), cl(9080, 'v2'), cl(9443, 'v1'), cl(9443, 'v2')]) {
      expect(tlsOf(m, name)).toEqual(istioMutual(name, false));
    }
  });

  it('ISTIO_MUTUAL applies even with enableAutoMtls: false', () => {
    const m = model(meshConfig('{enableAutoMtls: false}'), serviceEntry(), destinationRule('  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\n'));
    expect(tlsOf(m, cl(9080))).toEqual(istioMutual(cl(9080), false));
  });

  it('tls.sni replaces the cluster name', () => {
    const m = model(serviceEntry(), destinationRule(`  trafficPolicy: {tls: {mode: ISTIO_MUTUAL, sni: reviews.gateway.example}}\n${SUBSETS}`));
    expect(tlsOf(m, cl(9080))?.sni).toBe('reviews.gateway.example');
    expect(tlsOf(m, cl(9080, 'v1'))?.sni).toBe('reviews.gateway.example');
  });

  it('DISABLE is plaintext, auto mTLS or not', () => {
    const m = model(serviceEntry(), destinationRule(`  trafficPolicy: {tls: {mode: DISABLE}}\n${SUBSETS}`));
    for (const name of [cl(9080), cl(9443), cl(9080, 'v1'), cl(9443, 'v2')]) expect(tlsOf(m, name)).toBeUndefined();
  });

  it('an empty tls block (mode unset) is DISABLE, the proto default, not auto mTLS', () => {
    expect(tlsOf(model(serviceEntry(), destinationRule('  trafficPolicy: {tls: {}}\n')), cl(9080))).toBeUndefined();
  });

  it('the trust domain comes from MeshConfig', () => {
    const m = model(meshConfig('{trustDomain: example.org}'), serviceEntry(), destinationRule('  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\n'));
    expect(tlsOf(m, cl(9080))).toEqual({
      mode: 'ISTIO_MUTUAL',
      auto: false,
      sni: cl(9080),
      subjectAltNames: [sa('reviews-v1', 'default', 'example.org'), sa('reviews-v2', 'default', 'example.org')],
      trustDomain: 'example.org',
    });
  });
});

// === secure naming ===

describe('subjectAltNames (secure naming)', () => {
  it("the DestinationRule's subjectAltNames win over the ServiceEntry's and the endpoints'", () => {
    const m = model(
      serviceEntry({ subjectAltNames: '["spiffe://cluster.local/ns/default/sa/from-se"]' }),
      destinationRule('  trafficPolicy: {tls: {mode: ISTIO_MUTUAL, subjectAltNames: ["spiffe://cluster.local/ns/x/sa/from-dr"]}}\n'),
    );
    expect(tlsOf(m, cl(9080))?.subjectAltNames).toEqual(['spiffe://cluster.local/ns/x/sa/from-dr']);
  });

  it("the ServiceEntry's subjectAltNames apply when the rule has none (auto mTLS too)", () => {
    const endpoints = ['{address: 10.0.0.1, labels: {version: v1}}'];
    const se = serviceEntry({ subjectAltNames: '["spiffe://cluster.local/ns/default/sa/from-se"]', endpoints });
    expect(tlsOf(model(se, destinationRule('  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\n')), cl(9080))?.subjectAltNames).toEqual([
      'spiffe://cluster.local/ns/default/sa/from-se',
    ]);
    expect(tlsOf(model(se), cl(9080))?.subjectAltNames).toEqual(['spiffe://cluster.local/ns/default/sa/from-se']);
    // An empty list in the rule is "none".
    expect(tlsOf(model(se, destinationRule('  trafficPolicy: {tls: {mode: ISTIO_MUTUAL, subjectAltNames: []}}\n')), cl(9080))?.subjectAltNames).toEqual([
      'spiffe://cluster.local/ns/default/sa/from-se',
    ]);
  });

  // istiod's PushContext.initServiceAccounts takes the union of the endpoints' service
  // accounts and the ServiceEntry's subjectAltNames.
  it('ServiceEntry subjectAltNames are added to the endpoint service accounts, not instead of them', () => {
    const m = model(serviceEntry({ subjectAltNames: '["spiffe://cluster.local/ns/default/sa/from-se"]' }));
    expect([...(tlsOf(m, cl(9080))?.subjectAltNames ?? [])].sort()).toEqual([sa('from-se'), sa('reviews-v1'), sa('reviews-v2')]);
  });

  it('endpoint service accounts become SPIFFE URIs in the service namespace, deduplicated, endpoints without one skipped', () => {
    const m = model(
      serviceEntry({
        host: 'ratings.shop.svc.cluster.local',
        namespace: 'shop',
        endpoints: [
          '{address: 10.0.1.1, serviceAccount: ratings}',
          '{address: 10.0.1.2, serviceAccount: ratings}',
          '{address: 10.0.1.3}',
          '{address: 10.0.1.4, serviceAccount: ratings-canary}',
        ],
      }),
    );
    expect(tlsOf(m, cl(9080, '', 'ratings.shop.svc.cluster.local'))?.subjectAltNames).toEqual([sa('ratings', 'shop'), sa('ratings-canary', 'shop')]);
  });

  it('with no service account anywhere the list is empty (any identity of the trust domain)', () => {
    const m = model(serviceEntry({ endpoints: ['{address: 10.0.0.1}'] }));
    expect(tlsOf(m, cl(9080))?.subjectAltNames).toEqual([]);
  });

  it('a subset cluster expects the service accounts of the whole service', () => {
    const m = model(serviceEntry(), destinationRule(SUBSETS));
    expect(tlsOf(m, cl(9080, 'v1'))?.subjectAltNames).toEqual([sa('reviews-v1'), sa('reviews-v2')]);
  });
});

// === original destination ===

describe('original-destination clusters', () => {
  it('resolution NONE gets no auto tls', () => {
    const m = model(serviceEntry({ resolution: 'NONE', endpoints: [] }));
    expect(cluster(m, cl(9080)).discovery).toBe('ORIGINAL_DST');
    expect(tlsOf(m, cl(9080))).toBeUndefined();
  });

  it('loadBalancer PASSTHROUGH gets no auto tls, on the cluster or subset it applies to', () => {
    const m = model(serviceEntry(), destinationRule(`${SUBSETS.replace('{name: v2, labels: {version: v2}}', '{name: v2, labels: {version: v2}, trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}}')}`));
    expect(cluster(m, cl(9080, 'v2')).discovery).toBe('ORIGINAL_DST');
    expect(tlsOf(m, cl(9080, 'v2'))).toBeUndefined();
    expect(tlsOf(m, cl(9080, 'v1'))).toEqual(istioMutual(cl(9080, 'v1'), true));
  });

  // istiod skips only *auto* mTLS on passthrough clusters; an explicit ISTIO_MUTUAL is kept.
  it('an explicit ISTIO_MUTUAL on a passthrough cluster is never silently plaintext', () => {
    const r = load(serviceEntry({ resolution: 'NONE', endpoints: [] }), destinationRule('  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\n'));
    expect(r.model).toBeDefined();
    expect(tlsOf(r.model!, cl(9080))).toMatchObject({ mode: 'ISTIO_MUTUAL', auto: false });
  });
});

// === refused settings ===

describe('refused tls settings', () => {
  it('MUTUAL without a client certificate and key, and credentialName, are errors (never plaintext), wherever they are set', () => {
    const places: Array<[string, string]> = [
      ['  trafficPolicy: {tls: TLS}\n', 'spec.trafficPolicy.tls'],
      ['  trafficPolicy: {portLevelSettings: [{port: {number: 9080}, tls: TLS}]}\n', 'spec.trafficPolicy.portLevelSettings[0].tls'],
      ['  subsets: [{name: v1, labels: {version: v1}, trafficPolicy: {tls: TLS}}]\n', 'spec.subsets[0].trafficPolicy.tls'],
      [
        '  subsets: [{name: v1, labels: {version: v1}, trafficPolicy: {portLevelSettings: [{port: {number: 9443}, tls: TLS}]}}]\n',
        'spec.subsets[0].trafficPolicy.portLevelSettings[0].tls',
      ],
    ];
    for (const [spec, field] of places) {
      const noKey = errors(serviceEntry(), destinationRule(spec.replace('TLS', '{mode: MUTUAL, clientCertificate: /c.pem}')));
      expect(noKey, `MUTUAL without a key at ${field}`).toHaveLength(1);
      expect(noKey[0]).toContain(`DestinationRule/reviews: ${field}: MUTUAL TLS requires privateKey`);
      for (const mode of ['SIMPLE', 'MUTUAL']) {
        const errs = errors(serviceEntry(), destinationRule(spec.replace('TLS', `{mode: ${mode}, credentialName: reviews-cred}`)));
        expect(errs, `${mode} credentialName at ${field}`).toHaveLength(1);
        expect(errs[0]).toContain(`DestinationRule/reviews: ${field}.credentialName: TLS origination (${mode}) with credentialName is not supported`);
      }
      const ok = load(serviceEntry(), destinationRule(spec.replace('TLS', '{mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem}')));
      expect(ok.lines.filter((l) => !l.includes(': warning: ')), `MUTUAL with files at ${field}`).toEqual([]);
      expect(ok.model).toBeDefined();
    }
  });

  it('SIMPLE and MUTUAL with files build an originating cluster: SNI from tls.sni or the service host, only the rule\'s SANs', () => {
    const name = 'outbound|9080||reviews.default.svc.cluster.local';
    const simple = model(serviceEntry(), destinationRule('  trafficPolicy: {tls: {mode: SIMPLE, caCertificates: /ca.pem, clientCertificate: /c.pem}}\n'));
    expect(tlsOf(simple, name)).toEqual({ mode: 'SIMPLE', sni: 'reviews.default.svc.cluster.local', subjectAltNames: [], caCertificates: '/ca.pem' });
    const mutual = model(
      serviceEntry(),
      destinationRule('  trafficPolicy: {tls: {mode: MUTUAL, sni: api.example.com, subjectAltNames: [x.example.com], clientCertificate: /c.pem, privateKey: /k.pem}}\n'),
    );
    expect(tlsOf(mutual, name)).toEqual({ mode: 'MUTUAL', sni: 'api.example.com', subjectAltNames: ['x.example.com'], clientCertificate: '/c.pem', privateKey: '/k.pem' });
  });

  it('insecureSkipVerify: true is an error wherever it is set; false is accepted', () => {
    const top = errors(serviceEntry(), destinationRule('  trafficPolicy: {tls: {mode: ISTIO_MUTUAL, insecureSkipVerify: true}}\n'));
    expect(top).toHaveLength(1);
    expect(top[0]).toContain('spec.trafficPolicy.tls.insecureSkipVerify: insecureSkipVerify is not supported');
    const sub = errors(serviceEntry(), destinationRule('  subsets: [{name: v1, labels: {version: v1}, trafficPolicy: {portLevelSettings: [{port: {number: 9080}, tls: {insecureSkipVerify: true}}]}}]\n'));
    expect(sub).toHaveLength(1);
    expect(sub[0]).toContain('spec.subsets[0].trafficPolicy.portLevelSettings[0].tls.insecureSkipVerify');
    const ok = model(serviceEntry(), destinationRule('  trafficPolicy: {tls: {mode: ISTIO_MUTUAL, insecureSkipVerify: false}}\n'));
    expect(tlsOf(ok, cl(9080))).toEqual(istioMutual(cl(9080), false));
  });

  it('an unknown mode is an error', () => {
    expect(errors(serviceEntry(), destinationRule('  trafficPolicy: {tls: {mode: ISTIO}}\n')).join('\n')).toContain('spec.trafficPolicy.tls.mode');
  });
});

// === subset and port-level precedence ===

describe('subset and port-level tls', () => {
  it('a subset tls overrides the top-level one; subsets without one inherit it', () => {
    const m = model(
      serviceEntry(),
      destinationRule(`  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}, trafficPolicy: {tls: {mode: DISABLE}}}
`),
    );
    expect(tlsOf(m, cl(9080))).toEqual(istioMutual(cl(9080), false));
    expect(tlsOf(m, cl(9080, 'v1'))).toEqual(istioMutual(cl(9080, 'v1'), false));
    expect(tlsOf(m, cl(9080, 'v2'))).toBeUndefined();
    expect(tlsOf(m, cl(9443, 'v2'))).toBeUndefined();
  });

  it('a subset ISTIO_MUTUAL over a top-level DISABLE', () => {
    const m = model(
      serviceEntry(),
      destinationRule(`  trafficPolicy: {tls: {mode: DISABLE}}
  subsets:
  - {name: v1, labels: {version: v1}, trafficPolicy: {tls: {mode: ISTIO_MUTUAL, sni: v1.reviews}}}
`),
    );
    expect(tlsOf(m, cl(9080))).toBeUndefined();
    expect(tlsOf(m, cl(9080, 'v1'))).toEqual(istioMutual(cl(9080, 'v1'), false, { sni: 'v1.reviews' }));
  });

  it('top-level portLevelSettings replace the tls for their port only', () => {
    const m = model(
      serviceEntry(),
      destinationRule(`  trafficPolicy:
    tls: {mode: DISABLE}
    portLevelSettings:
    - {port: {number: 9443}, tls: {mode: ISTIO_MUTUAL}}
${SUBSETS}`),
    );
    expect(tlsOf(m, cl(9080))).toBeUndefined();
    expect(tlsOf(m, cl(9443))).toEqual(istioMutual(cl(9443), false));
    expect(tlsOf(m, cl(9080, 'v1'))).toBeUndefined();
    expect(tlsOf(m, cl(9443, 'v1'))).toEqual(istioMutual(cl(9443, 'v1'), false));
  });

  it('a port-level block without tls does not inherit the top-level tls (Istio: port settings do not inherit)', () => {
    const m = model(
      serviceEntry(),
      destinationRule(`  trafficPolicy:
    tls: {mode: DISABLE}
    portLevelSettings:
    - {port: {number: 9443}, connectionPool: {tcp: {maxConnections: 5}}}
`),
    );
    expect(tlsOf(m, cl(9080))).toBeUndefined();
    expect(tlsOf(m, cl(9443))).toEqual(istioMutual(cl(9443), true));
  });

  it('subset portLevelSettings win over the subset and top-level tls for their port', () => {
    const m = model(
      serviceEntry(),
      destinationRule(`  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      tls: {mode: ISTIO_MUTUAL, sni: subset-v1}
      portLevelSettings:
      - {port: {number: 9443}, tls: {mode: DISABLE}}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      portLevelSettings:
      - {port: {number: 9080}, loadBalancer: {simple: RANDOM}}
`),
    );
    expect(tlsOf(m, cl(9080, 'v1'))).toEqual(istioMutual(cl(9080, 'v1'), false, { sni: 'subset-v1' }));
    expect(tlsOf(m, cl(9443, 'v1'))).toBeUndefined();
    // v2's port-level block for 9080 has no tls: no inheritance, so auto mTLS.
    expect(tlsOf(m, cl(9080, 'v2'))).toEqual(istioMutual(cl(9080, 'v2'), true));
    expect(tlsOf(m, cl(9443, 'v2'))).toEqual(istioMutual(cl(9443, 'v2'), false));
  });

  it('a top-level port-level tls applies to subsets whose own policy leaves tls unset', () => {
    const m = model(
      serviceEntry(),
      destinationRule(`  trafficPolicy:
    portLevelSettings:
    - {port: {number: 9080}, tls: {mode: DISABLE}}
  subsets:
  - {name: v1, labels: {version: v1}, trafficPolicy: {connectionPool: {tcp: {maxConnections: 3}}}}
`),
    );
    expect(tlsOf(m, cl(9080))).toBeUndefined();
    expect(tlsOf(m, cl(9080, 'v1'))).toBeUndefined();
    expect(tlsOf(m, cl(9443, 'v1'))).toEqual(istioMutual(cl(9443, 'v1'), true));
  });
});
