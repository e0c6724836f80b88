/**
 * Istio metadata exchange: the Struct codec against an independent protobuf implementation
 * (protobufjs, both directions), hostile input, the canonical-service rule, env parsing and
 * the node id.
 */
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import type { WorkloadMetadata } from '../../src/model/telemetry.js';
import {
  decodePeerMetadata,
  decodePeerMetadataCached,
  decodeStruct,
  deploymentNameFromPod,
  encodePeerMetadata,
  encodeStruct,
  MAX_PEER_METADATA_LENGTH,
  MAX_STRUCT_DEPTH,
  nodeId,
  type PbStruct,
  type PbValue,
  workloadFromMetadata,
  workloadMetadataFromEnv,
} from '../../src/telemetry/peer-metadata.js';

// === protobufjs as the reference implementation ===

const root = protobuf.Root.fromJSON(protobuf.common.get('google/protobuf/struct.proto')!);
const StructType = root.lookupType('google.protobuf.Struct');

type JsValue =
  | { nullValue: number }
  | { numberValue: number }
  | { stringValue: string }
  | { boolValue: boolean }
  | { structValue: { fields: Record<string, JsValue> } }
  | { listValue: { values: JsValue[] } };

function toJs(v: PbValue): JsValue {
  if (v === null) return { nullValue: 0 };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (v instanceof Map) return { structValue: { fields: toJsFields(v) } };
  return { listValue: { values: (v as readonly PbValue[]).map(toJs) } };
}

function toJsFields(s: PbStruct): Record<string, JsValue> {
  const out: Record<string, JsValue> = {};
  for (const [k, v] of s) out[k] = toJs(v);
  return out;
}

/** A protobufjs-decoded Value (toObject with oneofs) as PbValue. */
function fromJs(v: Record<string, unknown>): PbValue {
  switch (v['kind']) {
    case 'nullValue':
      return null;
    case 'numberValue':
      return v['numberValue'] as number;
    case 'stringValue':
      return v['stringValue'] as string;
    case 'boolValue':
      return v['boolValue'] as boolean;
    case 'structValue':
      return fromJsStruct(v['structValue'] as Record<string, unknown>);
    case 'listValue':
      return (((v['listValue'] as Record<string, unknown>)['values'] ?? []) as Record<string, unknown>[]).map(fromJs);
    default:
      return null;
  }
}

function fromJsStruct(s: Record<string, unknown>): Map<string, PbValue> {
  const fields = (s['fields'] ?? {}) as Record<string, Record<string, unknown>>;
  return new Map(Object.entries(fields).map(([k, v]) => [k, fromJs(v)]));
}

function pbjsEncode(s: PbStruct): Uint8Array {
  return StructType.encode(StructType.fromObject({ fields: toJsFields(s) })).finish();
}

function pbjsDecode(bytes: Uint8Array): Map<string, PbValue> {
  return fromJsStruct(StructType.toObject(StructType.decode(bytes), { oneofs: true }) as Record<string, unknown>);
}

const b64 = (bytes: Uint8Array | readonly number[]): string => Buffer.from(bytes as Uint8Array).toString('base64');

/** Every kind of Value, nested both ways, with edge values. Keys in sorted order. */
const SAMPLE: PbStruct = new Map<string, PbValue>([
  ['', 'empty key'],
  ['bool_false', false],
  ['bool_true', true],
  ['empty_list', []],
  ['empty_string', ''],
  ['empty_struct', new Map()],
  ['list', [1, 'two', null, true, new Map([['in', 'list']]), [[]]]],
  ['neg', -0.5],
  ['null', null],
  ['num', 1e300],
  ['struct', new Map<string, PbValue>([['a', new Map([['b', 'deep']])], ['n', 42]])],
  ['unicode', 'Grüße 🚢 ✓'],
  ['zero', 0],
  ['ключ', 'non-ascii key'],
]);

describe('Struct codec vs protobufjs', () => {
  it('decodes what protobufjs encodes', () => {
    expect(decodeStruct(pbjsEncode(SAMPLE))).toEqual(SAMPLE);
  });

  it('encodes what protobufjs decodes', () => {
    expect(pbjsDecode(encodeStruct(SAMPLE))).toEqual(SAMPLE);
  });

  it('writes the same bytes as protobufjs for keys given in sorted order', () => {
    expect(Buffer.from(encodeStruct(SAMPLE)).equals(Buffer.from(pbjsEncode(SAMPLE)))).toBe(true);
  });

  it('sorts map keys by UTF-8 bytes (deterministic serialization) whatever the insertion order', () => {
    const shuffled = new Map([...SAMPLE].reverse());
    expect(Buffer.from(encodeStruct(shuffled)).equals(Buffer.from(encodeStruct(SAMPLE)))).toBe(true);
  });

  it('round-trips an empty Struct as zero bytes', () => {
    expect(encodeStruct(new Map()).length).toBe(0);
    expect(decodeStruct(new Uint8Array(0))).toEqual(new Map());
  });

  it('skips unknown fields and keeps the last of repeated keys, as protobuf does', () => {
    // field 9 varint, field 10 fixed32, then {a: "1"}, then {a: "2"}
    const entry = (v: string): number[] => [0x0a, 8, 0x0a, 1, 0x61, 0x12, 3, 0x1a, 1, v.charCodeAt(0)];
    const bytes = Uint8Array.from([0x48, 0x05, 0x55, 1, 2, 3, 4, ...entry('1'), ...entry('2')]);
    expect(decodeStruct(bytes)).toEqual(new Map([['a', '2']]));
  });

  it('reads a map entry without a value as null, without a key as ""', () => {
    expect(decodeStruct(Uint8Array.from([0x0a, 3, 0x0a, 1, 0x6b]))).toEqual(new Map([['k', null]]));
    expect(decodeStruct(Uint8Array.from([0x0a, 5, 0x12, 3, 0x1a, 1, 0x76]))).toEqual(new Map([['', 'v']]));
  });
});

/** A Struct with `levels` Struct levels in all (the top-level one included). */
function nested(levels: number, viaList = false): PbStruct {
  let s: PbStruct = new Map([['leaf', 'x']]);
  for (let i = 1; i < levels; i++) s = new Map([['n', viaList ? [s] : s]]);
  return s;
}

describe('Struct codec: malformed input is null, never a throw', () => {
  const cases: [string, number[]][] = [
    ['truncated varint (tag)', [0x80]],
    ['truncated varint (length)', [0x0a, 0x80]],
    ['varint longer than 10 bytes', [0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]],
    ['wrong wire type for Struct.fields', [0x08, 0x01]],
    ['wrong wire type for string_value', [0x0a, 6, 0x0a, 1, 0x6b, 0x12, 1, 0x18]],
    ['wrong wire type for number_value', [0x0a, 7, 0x0a, 1, 0x6b, 0x12, 2, 0x10, 0x01]],
    ['length past the end', [0x0a, 10, 0x0a, 1]],
    ['huge length', [0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00]],
    ['huge nested length', [0x0a, 6, 0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]],
    ['truncated double', [0x0a, 7, 0x0a, 1, 0x6b, 0x12, 2, 0x11, 0x00]],
    ['field number 0', [0x02, 0x00]],
    ['group wire type (unknown field)', [0x4b]],
    ['wire type 7 (unknown field)', [0x4f]],
    ['invalid UTF-8 in a key', [0x0a, 3, 0x0a, 1, 0xff]],
    ['invalid UTF-8 in a string value', [0x0a, 8, 0x0a, 1, 0x6b, 0x12, 3, 0x1a, 1, 0xc3]],
  ];
  for (const [name, bytes] of cases) {
    it(name, () => expect(decodeStruct(Uint8Array.from(bytes))).toBeNull());
  }

  it(`accepts ${MAX_STRUCT_DEPTH} levels of nesting and refuses more, through Structs and lists`, () => {
    expect(decodeStruct(encodeStruct(nested(MAX_STRUCT_DEPTH)))).toEqual(nested(MAX_STRUCT_DEPTH));
    expect(decodeStruct(encodeStruct(nested(MAX_STRUCT_DEPTH + 1)))).toBeNull();
    expect(decodeStruct(encodeStruct(nested(MAX_STRUCT_DEPTH / 2, true)))).not.toBeNull();
    expect(decodeStruct(encodeStruct(nested(MAX_STRUCT_DEPTH, true)))).toBeNull();
    // far deeper input stops at the limit, not at the stack
    expect(decodeStruct(encodeStruct(nested(400)))).toBeNull();
  });

  it('every truncation of a valid encoding decodes or is null, never throws', () => {
    const full = encodeStruct(SAMPLE);
    for (let n = 0; n < full.length; n++) expect(() => decodeStruct(full.subarray(0, n))).not.toThrow();
  });

  it('random bytes and bit flips never throw', () => {
    let seed = 12345;
    const rand = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const full = encodeStruct(SAMPLE);
    for (let i = 0; i < 3000; i++) {
      const junk = Uint8Array.from({ length: Math.floor(rand() * 64) }, () => Math.floor(rand() * 256));
      expect(() => decodeStruct(junk)).not.toThrow();
      const flipped = Uint8Array.from(full);
      const at = Math.floor(rand() * flipped.length);
      flipped[at] = flipped[at]! ^ (1 << Math.floor(rand() * 8));
      expect(() => decodeStruct(flipped)).not.toThrow();
    }
  });
});

// === headers ===

const REVIEWS: WorkloadMetadata = {
  name: 'reviews-v1-5b8f7d9c4-x7k2p',
  namespace: 'default',
  workloadName: 'reviews-v1',
  labels: { app: 'reviews', version: 'v1', 'pod-template-hash': '5b8f7d9c4' },
  clusterId: 'Kubernetes',
  meshId: 'cluster.local',
  serviceAccount: 'bookinfo-reviews',
  instanceIps: ['10.0.0.1', 'fd00::1'],
};

describe('x-envoy-peer-metadata', () => {
  it('round-trips: decode(encode(meta)) is the workload this proxy reports for itself', () => {
    const w = decodePeerMetadata(encodePeerMetadata(REVIEWS));
    expect(w).toEqual(workloadFromMetadata(REVIEWS));
    expect(w).toEqual({
      workloadName: 'reviews-v1',
      namespace: 'default',
      app: 'reviews',
      version: 'v1',
      canonicalService: 'reviews',
      canonicalRevision: 'v1',
      cluster: 'Kubernetes',
      serviceAccount: 'bookinfo-reviews',
    });
  });

  it('sends the Istio keys, protobufjs reading them: LABELS nested with canonical labels, INSTANCE_IPS comma-joined', () => {
    const s = pbjsDecode(Buffer.from(encodePeerMetadata(REVIEWS), 'base64'));
    expect(s).toEqual(
      new Map<string, PbValue>([
        ['CLUSTER_ID', 'Kubernetes'],
        ['INSTANCE_IPS', '10.0.0.1,fd00::1'],
        [
          'LABELS',
          new Map([
            ['app', 'reviews'],
            ['pod-template-hash', '5b8f7d9c4'],
            ['service.istio.io/canonical-name', 'reviews'],
            ['service.istio.io/canonical-revision', 'v1'],
            ['version', 'v1'],
          ]),
        ],
        ['MESH_ID', 'cluster.local'],
        ['NAME', 'reviews-v1-5b8f7d9c4-x7k2p'],
        ['NAMESPACE', 'default'],
        ['SERVICE_ACCOUNT', 'bookinfo-reviews'],
        ['WORKLOAD_NAME', 'reviews-v1'],
      ]),
    );
  });

  it('leaves out empty values', () => {
    const bare: WorkloadMetadata = { ...REVIEWS, meshId: '', serviceAccount: '', instanceIps: [], labels: {}, workloadName: '' };
    const s = pbjsDecode(Buffer.from(encodePeerMetadata(bare), 'base64'));
    expect([...s.keys()]).toEqual(['CLUSTER_ID', 'LABELS', 'NAME', 'NAMESPACE']);
    expect(s.get('LABELS')).toEqual(new Map([['service.istio.io/canonical-revision', 'latest']]));
    expect(decodePeerMetadata(encodePeerMetadata(bare))).not.toHaveProperty('serviceAccount');
  });

  it('decodes a header an Istio sidecar would send (built with protobufjs), padded or not', () => {
    const istio = new Map<string, PbValue>([
      ['APP_CONTAINERS', 'details'],
      ['CLUSTER_ID', 'east'],
      ['INSTANCE_IPS', '10.1.2.3'],
      ['ISTIO_VERSION', '1.20.0'],
      [
        'LABELS',
        new Map<string, PbValue>([
          ['app', 'details'],
          ['security.istio.io/tlsMode', 'istio'],
          ['service.istio.io/canonical-name', 'details-svc'],
          ['service.istio.io/canonical-revision', 'v7'],
          ['version', 'v1'],
        ]),
      ],
      ['MESH_ID', 'cluster.local'],
      ['NAME', 'details-v1-79f774bdb9-abcde'],
      ['NAMESPACE', 'bookinfo'],
      ['OWNER', 'kubernetes://apis/apps/v1/namespaces/bookinfo/deployments/details-v1'],
      ['PLATFORM_METADATA', new Map<string, PbValue>([['gcp_project', 'p']])],
      ['SERVICE_ACCOUNT', 'bookinfo-details'],
      ['WORKLOAD_NAME', 'details-v1'],
    ]);
    const value = b64(pbjsEncode(istio));
    const want = {
      workloadName: 'details-v1',
      namespace: 'bookinfo',
      app: 'details',
      version: 'v1',
      canonicalService: 'details-svc',
      canonicalRevision: 'v7',
      cluster: 'east',
      serviceAccount: 'bookinfo-details',
    };
    expect(decodePeerMetadata(value)).toEqual(want);
    expect(decodePeerMetadata(value.replace(/=+$/, ''))).toEqual(want);
  });

  it('decodes the reduced struct current Istio sends (no SERVICE_ACCOUNT)', () => {
    const modern = new Map<string, PbValue>([
      ['CLUSTER_ID', 'Kubernetes'],
      [
        'LABELS',
        new Map([
          ['app', 'productpage'],
          ['service.istio.io/canonical-name', 'productpage'],
          ['service.istio.io/canonical-revision', 'v1'],
          ['version', 'v1'],
        ]),
      ],
      ['NAME', 'productpage-v1-6b746f74dc-9stvs'],
      ['NAMESPACE', 'default'],
      ['OWNER', 'kubernetes://apis/apps/v1/namespaces/default/deployments/productpage-v1'],
      ['WORKLOAD_NAME', 'productpage-v1'],
    ]);
    expect(decodePeerMetadata(b64(pbjsEncode(modern)))).toEqual({
      workloadName: 'productpage-v1',
      namespace: 'default',
      app: 'productpage',
      version: 'v1',
      canonicalService: 'productpage',
      canonicalRevision: 'v1',
      cluster: 'Kubernetes',
    });
  });

  it('reads non-string fields and labels as empty', () => {
    const odd = new Map<string, PbValue>([
      ['LABELS', new Map<string, PbValue>([['app', 5], ['version', 'v2']])],
      ['NAMESPACE', true],
      ['WORKLOAD_NAME', new Map()],
    ]);
    expect(decodePeerMetadata(b64(encodeStruct(odd)))).toMatchObject({ workloadName: '', namespace: '', app: '', version: 'v2' });
    expect(decodePeerMetadata(b64(encodeStruct(new Map([['LABELS', 'not a struct']]))))).toMatchObject({ app: '', canonicalRevision: 'latest' });
  });

  const bad: [string, string][] = [
    ['empty', ''],
    ['not base64', '!!!!'],
    ['url-safe alphabet', '-_-_'],
    ['padding in the middle', 'QQ==QQ=='],
    ['impossible length', 'QUJDR'],
    ['whitespace', 'Cg AB'],
    ['oversized', 'A'.repeat(MAX_PEER_METADATA_LENGTH + 4)],
    ['truncated varint', b64([0x0a, 0x80])],
    ['wrong wire type', b64([0x08, 0x01])],
    ['huge length', b64([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])],
    ['too deep', b64(encodeStruct(nested(MAX_STRUCT_DEPTH + 1)))],
  ];
  for (const [name, value] of bad) {
    it(`is null for ${name}`, () => {
      expect(() => decodePeerMetadata(value)).not.toThrow();
      expect(decodePeerMetadata(value)).toBeNull();
    });
  }

  it('accepts a value right at the size limit', () => {
    const big = new Map<string, PbValue>([['WORKLOAD_NAME', 'w'], ['PAD', 'x'.repeat(12_000)]]);
    const value = b64(encodeStruct(big));
    expect(value.length).toBeLessThanOrEqual(MAX_PEER_METADATA_LENGTH);
    expect(decodePeerMetadata(value)?.workloadName).toBe('w');
  });

  it('caches by raw value: one decode, the same frozen object, null results too', () => {
    const value = encodePeerMetadata(REVIEWS);
    const a = decodePeerMetadataCached(value);
    expect(decodePeerMetadataCached(value)).toBe(a);
    expect(Object.isFrozen(a)).toBe(true);
    expect(decodePeerMetadataCached('!!!!')).toBeNull();
    // many distinct peers: the cache clears instead of growing, results stay right
    for (let i = 0; i < 2500; i++) {
      const v = encodePeerMetadata({ ...REVIEWS, workloadName: `w${i}` });
      expect(decodePeerMetadataCached(v)?.workloadName).toBe(`w${i}`);
    }
  });
});

// === canonical service / revision ===

describe('canonical service and revision (Istio injector rule)', () => {
  const rows: [string, Record<string, string>, string, string, string, string][] = [
    // labels, workload → canonicalService, canonicalRevision, app, version
    ['canonical labels win', { 'service.istio.io/canonical-name': 'c', 'service.istio.io/canonical-revision': 'r', 'app.kubernetes.io/name': 'k', app: 'a', version: 'v' }, 'c', 'r', 'k', 'v'],
    ['app.kubernetes.io/* next', { 'app.kubernetes.io/name': 'k', 'app.kubernetes.io/version': 'kv', app: 'a', version: 'v' }, 'k', 'kv', 'k', 'kv'],
    ['then app / version', { app: 'a', version: 'v' }, 'a', 'v', 'a', 'v'],
    ['then workload name / latest', {}, 'wl', 'latest', '', ''],
    ['an empty label counts as absent', { 'service.istio.io/canonical-name': '', app: 'a', 'service.istio.io/canonical-revision': '' }, 'a', 'latest', 'a', ''],
  ];
  for (const [name, labels, service, revision, app, version] of rows) {
    it(name, () => {
      const meta: WorkloadMetadata = { ...REVIEWS, workloadName: 'wl', labels };
      expect(workloadFromMetadata(meta)).toMatchObject({ canonicalService: service, canonicalRevision: revision, app, version });
      // the peer side reads the same from the header
      expect(decodePeerMetadata(encodePeerMetadata(meta))).toMatchObject({ canonicalService: service, canonicalRevision: revision, app, version });
    });
  }

  it('a workload-name fallback is cut to 63 characters without a trailing "-"', () => {
    const meta: WorkloadMetadata = { ...REVIEWS, labels: {}, workloadName: `${'a'.repeat(62)}-bbb` };
    expect(workloadFromMetadata(meta).canonicalService).toBe('a'.repeat(62));
  });

  it('no labels and no workload name: canonical service empty, revision latest', () => {
    expect(workloadFromMetadata({ ...REVIEWS, labels: {}, workloadName: '' })).toMatchObject({ canonicalService: '', canonicalRevision: 'latest' });
  });

  it('ignores inherited properties as labels', () => {
    expect(workloadFromMetadata({ ...REVIEWS, labels: {}, workloadName: '' }).app).toBe('');
    expect(workloadFromMetadata({ ...REVIEWS, labels: JSON.parse('{"__proto__":{"app":"evil"}}') as Record<string, string>, workloadName: '' }).app).toBe('');
  });
});

// === environment ===

describe('workloadMetadataFromEnv', () => {
  const defaults = { namespace: 'fallback-ns', labels: { app: 'mesh-app', team: 'a' } };

  it('reads what an injected pod has', () => {
    const env = {
      POD_NAME: 'reviews-v1-5b8f7d9c4-x7k2p',
      POD_NAMESPACE: 'default',
      INSTANCE_IP: '10.0.0.1',
      SERVICE_ACCOUNT: 'bookinfo-reviews',
      ISTIO_META_WORKLOAD_NAME: 'reviews-v1',
      ISTIO_META_CLUSTER_ID: 'east',
      ISTIO_META_MESH_ID: 'mesh1',
      ISTIO_METAJSON_LABELS: '{"app":"reviews","version":"v1","n":5}',
    };
    expect(workloadMetadataFromEnv(env, defaults)).toEqual({
      name: 'reviews-v1-5b8f7d9c4-x7k2p',
      namespace: 'default',
      workloadName: 'reviews-v1',
      labels: { app: 'reviews', version: 'v1', team: 'a' },
      clusterId: 'east',
      meshId: 'mesh1',
      serviceAccount: 'bookinfo-reviews',
      instanceIps: ['10.0.0.1'],
    });
  });

  it('falls back: namespace and labels from defaults, cluster Kubernetes, workload from the pod name', () => {
    expect(workloadMetadataFromEnv({ POD_NAME: 'ratings-v1-7dc98c7588-9xbz2', INSTANCE_IP: 'not-an-ip', ISTIO_METAJSON_LABELS: '{bad json' }, defaults)).toEqual({
      name: 'ratings-v1-7dc98c7588-9xbz2',
      namespace: 'fallback-ns',
      workloadName: 'ratings-v1',
      labels: { app: 'mesh-app', team: 'a' },
      clusterId: 'Kubernetes',
      meshId: '',
      serviceAccount: '',
      instanceIps: [],
    });
  });

  it('takes the workload name from the service.istio.io/workload-name label before the pod name', () => {
    const env = { POD_NAME: 'ratings-v1-7dc98c7588-9xbz2', ISTIO_METAJSON_LABELS: '{"service.istio.io/workload-name":"ratings"}' };
    expect(workloadMetadataFromEnv(env, defaults).workloadName).toBe('ratings');
  });

  it('accepts IPv6 and ignores non-object label JSON', () => {
    const m = workloadMetadataFromEnv({ INSTANCE_IP: 'fd00::5', ISTIO_METAJSON_LABELS: '["app"]' }, { namespace: 'ns', labels: {} });
    expect(m.instanceIps).toEqual(['fd00::5']);
    expect(m.labels).toEqual({});
    expect(m.workloadName).toBe('');
  });

  it('derives a Deployment name only from a Deployment-shaped pod name', () => {
    expect(deploymentNameFromPod('productpage-v1-6b746f74dc-9stvs')).toBe('productpage-v1');
    expect(deploymentNameFromPod('web-0')).toBe('');
    expect(deploymentNameFromPod('standalone')).toBe('');
    expect(deploymentNameFromPod('job-abcde')).toBe('');
    expect(deploymentNameFromPod('bad-AAAAAAAA-9stvs')).toBe('');
    expect(deploymentNameFromPod('')).toBe('');
  });
});

describe('nodeId', () => {
  it("is Istio's <type>~<ip>~<pod>.<ns>~<ns>.svc.cluster.local", () => {
    expect(nodeId(REVIEWS, 'sidecar')).toBe('sidecar~10.0.0.1~reviews-v1-5b8f7d9c4-x7k2p.default~default.svc.cluster.local');
    expect(nodeId(REVIEWS, 'router')).toBe('router~10.0.0.1~reviews-v1-5b8f7d9c4-x7k2p.default~default.svc.cluster.local');
  });

  it('uses 127.0.0.1 without an instance IP, and a given DNS domain', () => {
    expect(nodeId({ ...REVIEWS, instanceIps: [] }, 'sidecar', 'default.svc.corp.example')).toBe(
      'sidecar~127.0.0.1~reviews-v1-5b8f7d9c4-x7k2p.default~default.svc.corp.example',
    );
  });
});
