/**
 * Istio's HTTP metadata exchange: the `x-envoy-peer-metadata-id` / `x-envoy-peer-metadata`
 * header pair a sidecar adds to requests it sends and to responses of requests that carried
 * them, so that each side's metrics can name the other workload.
 *
 * - `x-envoy-peer-metadata-id` is the Envoy node id, `<type>~<ip>~<pod>.<ns>~<ns>.svc.cluster.local`
 *   (IST:pilot/pkg/model/context.go `ServiceNode`).
 * - `x-envoy-peer-metadata` is standard, padded base64 of a deterministically serialized
 *   google.protobuf.Struct of node metadata (PRX:source/extensions/filters/http/peer_metadata/
 *   filter.cc `computeValue`; PRX:extensions/metadata_exchange/plugin.cc before it). Readers
 *   accept it with or without padding (Envoy `Base64::decodeWithoutPadding`).
 *
 * Keys sent here are the legacy exchange set (IST:pkg/bootstrap/config.go `metadataExchangeKeys`:
 * NAME, NAMESPACE, INSTANCE_IPS, LABELS, OWNER, PLATFORM_METADATA, WORKLOAD_NAME, MESH_ID,
 * SERVICE_ACCOUNT, CLUSTER_ID), limited to what WorkloadMetadata holds (no OWNER,
 * PLATFORM_METADATA, APP_CONTAINERS). It is a superset of what current Istio reads
 * (NAME, NAMESPACE, WORKLOAD_NAME, CLUSTER_ID, OWNER, LABELS with canonical-name,
 * canonical-revision, app, version: PRX:extensions/common/metadata_object.cc
 * `convertStructToWorkloadMetadata`), so old and new Istio peers both read it.
 *
 * Pure: no I/O. The only state is the bounded decode cache of `decodePeerMetadataCached`.
 */
import { isIP } from 'node:net';
import type { WorkloadMetadata } from '../model/telemetry.js';

/** Header values longer than this (base64 characters) are refused undecoded. */
export const MAX_PEER_METADATA_LENGTH = 16 * 1024;
/** Struct/ListValue nesting allowed in a decoded value; the top-level Struct is depth 1. */
export const MAX_STRUCT_DEPTH = 32;

// === protobuf Struct codec ===

/** google.protobuf.Value as plain data: a Struct is a Map, a ListValue an array. */
export type PbValue = null | number | string | boolean | PbStruct | readonly PbValue[];
/** google.protobuf.Struct. A Map, so a key such as `__proto__` is only data. */
export type PbStruct = ReadonlyMap<string, PbValue>;

const utf8 = new TextEncoder();
/** Strict: invalid UTF-8 in a string field fails the parse, as proto3 parsers do. */
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

const WT_VARINT = 0;
const WT_I64 = 1;
const WT_LEN = 2;
const WT_I32 = 5;

function varintBytes(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

function lenField(fieldNo: number, payload: Uint8Array): Uint8Array {
  const head = [...varintBytes((fieldNo << 3) | WT_LEN), ...varintBytes(payload.length)];
  const out = new Uint8Array(head.length + payload.length);
  out.set(head, 0);
  out.set(payload, head.length);
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function encodeValue(v: PbValue): Uint8Array {
  if (v === null) return Uint8Array.of((1 << 3) | WT_VARINT, 0);
  if (typeof v === 'number') {
    const out = new Uint8Array(9);
    out[0] = (2 << 3) | WT_I64;
    new DataView(out.buffer).setFloat64(1, v, true);
    return out;
  }
  if (typeof v === 'string') return lenField(3, utf8.encode(v));
  if (typeof v === 'boolean') return Uint8Array.of((4 << 3) | WT_VARINT, v ? 1 : 0);
  if (v instanceof Map) return lenField(5, encodeStruct(v));
  return lenField(6, concat((v as readonly PbValue[]).map((item) => lenField(1, encodeValue(item)))));
}

/** Byte order of the UTF-8 encodings: the order C++ deterministic serialization gives map keys. */
function compareUtf8(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/**
 * Serializes a Struct. Deterministic: map entries sorted by key bytes, each entry with both key
 * and value, oneof members written even when default (proto3 explicit presence).
 */
export function encodeStruct(s: PbStruct): Uint8Array {
  const entries = [...s].map(([k, v]) => [utf8.encode(k), v] as const).sort((x, y) => compareUtf8(x[0], y[0]));
  return concat(entries.map(([key, value]) => lenField(1, concat([lenField(1, key), lenField(2, encodeValue(value))]))));
}

/** Thrown inside the decoder only; `decodeStruct` turns it into null. */
class Malformed extends Error {}

/** A bounds-checked cursor over [pos, end) of `buf`. Every read either advances or throws Malformed. */
class Reader {
  readonly #buf: Uint8Array;
  readonly #view: DataView;
  pos: number;
  readonly end: number;

  constructor(buf: Uint8Array, pos: number, end: number) {
    this.#buf = buf;
    this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.pos = pos;
    this.end = end;
  }

  /** Up to 10 bytes. Values past 2^53 lose precision; they are only tested for zero or rejected as lengths. */
  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new Malformed('truncated varint');
      const b = this.#buf[this.pos++]!;
      value += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return value;
      scale *= 128;
    }
    throw new Malformed('varint longer than 10 bytes');
  }

  /** A field key: field number 1..2^29-1 and its wire type. */
  tag(): { readonly field: number; readonly wireType: number } {
    const key = this.varint();
    const field = Math.floor(key / 8);
    if (field < 1 || field > 0x1fffffff) throw new Malformed('bad field number');
    return { field, wireType: key % 8 };
  }

  /** A length-delimited payload: a Reader over it; this reader moves past it. */
  sub(): Reader {
    const len = this.varint();
    if (len > this.end - this.pos) throw new Malformed('length past end');
    const r = new Reader(this.#buf, this.pos, this.pos + len);
    this.pos += len;
    return r;
  }

  string(): string {
    const r = this.sub();
    return utf8Strict.decode(this.#buf.subarray(r.pos, r.end));
  }

  double(): number {
    if (this.end - this.pos < 8) throw new Malformed('truncated double');
    const v = this.#view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** Skips an unknown field. Groups (3, 4) and wire types 6, 7 are refused. */
  skip(wireType: number): void {
    switch (wireType) {
      case WT_VARINT:
        this.varint();
        return;
      case WT_I64:
      case WT_I32: {
        const n = wireType === WT_I64 ? 8 : 4;
        if (this.end - this.pos < n) throw new Malformed('truncated fixed field');
        this.pos += n;
        return;
      }
      case WT_LEN:
        this.sub();
        return;
      default:
        throw new Malformed(`wire type ${wireType}`);
    }
  }
}

/** Known field numbers must come with their declared wire type; unknown ones are skipped. */
function requireWireType(wireType: number, want: number): void {
  if (wireType !== want) throw new Malformed('wrong wire type');
}

function readStruct(r: Reader, depth: number): Map<string, PbValue> {
  if (depth > MAX_STRUCT_DEPTH) throw new Malformed('nesting too deep');
  const out = new Map<string, PbValue>();
  while (r.pos < r.end) {
    const { field, wireType } = r.tag();
    if (field !== 1) {
      r.skip(wireType);
      continue;
    }
    requireWireType(wireType, WT_LEN);
    const entry = r.sub();
    let key = '';
    let value: PbValue = null;
    while (entry.pos < entry.end) {
      const t = entry.tag();
      if (t.field === 1) {
        requireWireType(t.wireType, WT_LEN);
        key = entry.string();
      } else if (t.field === 2) {
        requireWireType(t.wireType, WT_LEN);
        value = readValue(entry.sub(), depth);
      } else {
        entry.skip(t.wireType);
      }
    }
    out.set(key, value); // a repeated key: the last wins, as for protobuf maps
  }
  return out;
}

/** A Value with no kind set reads as null; with several, the last wins (oneof semantics). */
function readValue(r: Reader, depth: number): PbValue {
  let value: PbValue = null;
  while (r.pos < r.end) {
    const { field, wireType } = r.tag();
    switch (field) {
      case 1:
        requireWireType(wireType, WT_VARINT);
        r.varint();
        value = null;
        break;
      case 2:
        requireWireType(wireType, WT_I64);
        value = r.double();
        break;
      case 3:
        requireWireType(wireType, WT_LEN);
        value = r.string();
        break;
      case 4:
        requireWireType(wireType, WT_VARINT);
        value = r.varint() !== 0;
        break;
      case 5:
        requireWireType(wireType, WT_LEN);
        value = readStruct(r.sub(), depth + 1);
        break;
      case 6:
        requireWireType(wireType, WT_LEN);
        value = readList(r.sub(), depth + 1);
        break;
      default:
        r.skip(wireType);
    }
  }
  return value;
}

function readList(r: Reader, depth: number): PbValue[] {
  if (depth > MAX_STRUCT_DEPTH) throw new Malformed('nesting too deep');
  const out: PbValue[] = [];
  while (r.pos < r.end) {
    const { field, wireType } = r.tag();
    if (field !== 1) {
      r.skip(wireType);
      continue;
    }
    requireWireType(wireType, WT_LEN);
    out.push(readValue(r.sub(), depth));
  }
  return out;
}

/**
 * Parses a serialized Struct; null for any malformed input, never throws. Stricter than
 * protobuf in one respect: a known field with the wrong wire type is an error, not an unknown
 * field.
 */
export function decodeStruct(bytes: Uint8Array): PbStruct | null {
  try {
    return readStruct(new Reader(bytes, 0, bytes.length), 1);
  } catch {
    return null;
  }
}

// === workload identity as Istio's stats see it ===

/** The peer fields Istio's standard metrics use (source_* / destination_* labels). Unknown: ''. */
export interface PeerWorkload {
  readonly workloadName: string;
  readonly namespace: string;
  readonly app: string;
  readonly version: string;
  readonly canonicalService: string;
  readonly canonicalRevision: string;
  readonly cluster: string;
  /** Only when the peer sent a non-empty SERVICE_ACCOUNT. */
  readonly serviceAccount?: string;
}

export const CANONICAL_NAME_LABEL = 'service.istio.io/canonical-name';
export const CANONICAL_REVISION_LABEL = 'service.istio.io/canonical-revision';
const WORKLOAD_NAME_LABEL = 'service.istio.io/workload-name';

type LabelLookup = (name: string) => string | undefined;

function firstNonEmpty(get: LabelLookup, names: readonly string[]): string {
  for (const n of names) {
    const v = get(n);
    if (v !== undefined && v !== '') return v;
  }
  return '';
}

/**
 * The one derivation both sides use. Canonical service/revision follow the labels Istio's
 * injection template puts on the pod (the same order as IST:pkg/kube/labels
 * `CanonicalService`): canonical-name, then
 * app.kubernetes.io/name, then app, then the workload name, cut to 63 characters without a
 * trailing '-'; canonical-revision, then app.kubernetes.io/version, then version, then `latest`.
 * An empty label counts as absent, as sprig's `default` does. app and version prefer the
 * qualified labels (PRX:extensions/common/metadata_object.cc `AppNameQualifiedLabel`).
 */
function deriveWorkload(
  get: LabelLookup,
  workloadName: string,
  namespace: string,
  cluster: string,
  serviceAccount: string,
): PeerWorkload {
  let canonicalService = firstNonEmpty(get, [CANONICAL_NAME_LABEL, 'app.kubernetes.io/name', 'app']) || workloadName;
  canonicalService = canonicalService.slice(0, 63);
  if (canonicalService.endsWith('-')) canonicalService = canonicalService.slice(0, -1);
  const w: PeerWorkload = {
    workloadName,
    namespace,
    app: firstNonEmpty(get, ['app.kubernetes.io/name', 'app']),
    version: firstNonEmpty(get, ['app.kubernetes.io/version', 'version']),
    canonicalService,
    canonicalRevision: firstNonEmpty(get, [CANONICAL_REVISION_LABEL, 'app.kubernetes.io/version', 'version']) || 'latest',
    cluster,
    ...(serviceAccount !== '' ? { serviceAccount } : {}),
  };
  return Object.freeze(w);
}

function recordLookup(labels: Readonly<Record<string, string>>): LabelLookup {
  return (name) => (Object.hasOwn(labels, name) ? labels[name] : undefined);
}

/** This proxy's own workload, by the same rule as a decoded peer. */
export function workloadFromMetadata(meta: WorkloadMetadata): PeerWorkload {
  return deriveWorkload(recordLookup(meta.labels), meta.workloadName, meta.namespace, meta.clusterId, meta.serviceAccount);
}

// === header encode / decode ===

/**
 * The `x-envoy-peer-metadata` value for this workload. Only non-empty values are sent;
 * LABELS is a nested Struct of the workload labels plus canonical-name/-revision as the
 * injector would have labelled the pod; INSTANCE_IPS is comma-joined, as Istio's
 * `StringList` marshals it.
 */
export function encodePeerMetadata(meta: WorkloadMetadata): string {
  const w = workloadFromMetadata(meta);
  const labels = new Map<string, PbValue>(Object.entries(meta.labels));
  if (w.canonicalService !== '') labels.set(CANONICAL_NAME_LABEL, w.canonicalService);
  labels.set(CANONICAL_REVISION_LABEL, w.canonicalRevision);
  const fields = new Map<string, PbValue>();
  const put = (key: string, value: string): void => {
    if (value !== '') fields.set(key, value);
  };
  put('NAME', meta.name);
  put('NAMESPACE', meta.namespace);
  put('WORKLOAD_NAME', meta.workloadName);
  put('CLUSTER_ID', meta.clusterId);
  put('MESH_ID', meta.meshId);
  put('SERVICE_ACCOUNT', meta.serviceAccount);
  put('INSTANCE_IPS', meta.instanceIps.join(','));
  fields.set('LABELS', labels);
  return Buffer.from(encodeStruct(fields)).toString('base64');
}

/**
 * The `x-envoy-peer-metadata-id` value: Istio's `<type>~<ip>~<pod>.<ns>~<dnsDomain>`. ip is the
 * first instance IP; with none, 127.0.0.1, which is what Istio's agent falls back to when it
 * finds no pod or host IP. dnsDomain defaults to `<ns>.svc.cluster.local` (IST pilot-agent
 * `getDNSDomain`).
 */
export function nodeId(meta: WorkloadMetadata, mode: 'sidecar' | 'router', dnsDomain?: string): string {
  const ip = meta.instanceIps[0] ?? '127.0.0.1';
  return `${mode}~${ip}~${meta.name}.${meta.namespace}~${dnsDomain ?? `${meta.namespace}.svc.cluster.local`}`;
}

/** Standard alphabet, padding optional (Envoy's decodeWithoutPadding accepts both forms). */
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function fromBase64(value: string): Uint8Array | null {
  if (value === '' || value.length > MAX_PEER_METADATA_LENGTH || !BASE64.test(value)) return null;
  const pad = value.endsWith('==') ? 2 : value.endsWith('=') ? 1 : 0;
  if (pad > 0 ? value.length % 4 !== 0 : value.length % 4 === 1) return null;
  return Buffer.from(value, 'base64');
}

function str(v: PbValue | undefined): string {
  return typeof v === 'string' ? v : '';
}

/**
 * The peer a `x-envoy-peer-metadata` value describes, or null when it is empty, oversized,
 * not base64 or not a Struct. Never throws. Non-string fields and labels read as ''/absent,
 * as `string_value()` of another kind does in Istio.
 */
export function decodePeerMetadata(value: string): PeerWorkload | null {
  const bytes = fromBase64(value);
  if (bytes === null) return null;
  const s = decodeStruct(bytes);
  if (s === null) return null;
  const rawLabels = s.get('LABELS');
  const labels = rawLabels instanceof Map ? (rawLabels as PbStruct) : new Map<string, PbValue>();
  const get: LabelLookup = (name) => {
    const v = labels.get(name);
    return typeof v === 'string' ? v : undefined;
  };
  return deriveWorkload(get, str(s.get('WORKLOAD_NAME')), str(s.get('NAMESPACE')), str(s.get('CLUSTER_ID')), str(s.get('SERVICE_ACCOUNT')));
}

const CACHE_MAX_ENTRIES = 1000;
/** Longer values are decoded every time, so the cache holds at most ~4 MiB of keys. */
const CACHE_MAX_KEY_LENGTH = 4096;
/** Raw header value → decode result (null results too). Cleared when full. */
const decodeCache = new Map<string, PeerWorkload | null>();

/** `decodePeerMetadata` memoized by the raw header value; results are frozen and shared. */
export function decodePeerMetadataCached(value: string): PeerWorkload | null {
  const hit = decodeCache.get(value);
  if (hit !== undefined) return hit;
  const out = decodePeerMetadata(value);
  if (value.length <= CACHE_MAX_KEY_LENGTH) {
    if (decodeCache.size >= CACHE_MAX_ENTRIES) decodeCache.clear();
    decodeCache.set(value, out);
  }
  return out;
}

// === this workload, from an injected pod's environment ===

/** Kubernetes' name-suffix alphabet (k8s.io/apimachinery/pkg/util/rand `SafeEncodeString`). */
const DEPLOYMENT_POD = /^(.+)-[bcdfghjklmnpqrstvwxz2456789]{1,10}-[bcdfghjklmnpqrstvwxz2456789]{5}$/;

/**
 * A Deployment's name from one of its pods' names, `<deployment>-<pod-template-hash>-<5>`:
 * what Istio's injector derives from the owner ReplicaSet (IST `GetDeployMetaFromPod`:
 * ReplicaSet name minus `-<pod-template-hash>`). '' when the name has
 * not that shape (StatefulSet, bare pod).
 */
export function deploymentNameFromPod(podName: string): string {
  return DEPLOYMENT_POD.exec(podName)?.[1] ?? '';
}

/** ISTIO_METAJSON_LABELS: a JSON object; non-string values are skipped (Go's json.Unmarshal into map[string]string). */
function jsonLabels(value: string | undefined): Record<string, string> {
  if (value === undefined || value === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return {};
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return {};
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [k, v] of Object.entries(parsed)) if (typeof v === 'string') out[k] = v;
  return out;
}

/**
 * This workload as an injected pod's environment describes it (IST:pkg/bootstrap/config.go
 * `extractAttributesMetadata`): POD_NAME, POD_NAMESPACE (else defaults.namespace),
 * INSTANCE_IP (kept only if an IP), SERVICE_ACCOUNT, ISTIO_META_CLUSTER_ID (else `Kubernetes`,
 * the injector's default), ISTIO_META_MESH_ID, ISTIO_METAJSON_LABELS over defaults.labels
 * (MeshConfig workloadLabels). Workload name: ISTIO_META_WORKLOAD_NAME, else the
 * `service.istio.io/workload-name` label, else the Deployment name read from the pod name,
 * else ''. Istio also reads labels from the downward-API file and adds host IPs; this does not.
 */
export function workloadMetadataFromEnv(
  env: NodeJS.ProcessEnv,
  defaults: { readonly namespace: string; readonly labels: Readonly<Record<string, string>> },
): WorkloadMetadata {
  const name = env['POD_NAME'] ?? '';
  const labels: Record<string, string> = { ...defaults.labels, ...jsonLabels(env['ISTIO_METAJSON_LABELS']) };
  const ip = env['INSTANCE_IP'] ?? '';
  return {
    name,
    namespace: env['POD_NAMESPACE'] || defaults.namespace,
    workloadName: env['ISTIO_META_WORKLOAD_NAME'] || labels[WORKLOAD_NAME_LABEL] || deploymentNameFromPod(name),
    labels,
    clusterId: env['ISTIO_META_CLUSTER_ID'] || 'Kubernetes',
    meshId: env['ISTIO_META_MESH_ID'] ?? '',
    serviceAccount: env['SERVICE_ACCOUNT'] ?? '',
    instanceIps: isIP(ip) !== 0 ? [ip] : [],
  };
}
