/**
 * Envoy v3 protobuf messages ↔ proto3 JSON, the form every xDS translator reads.
 *
 * The .proto files are the ones @grpc/grpc-js-xds ships (Envoy's API, xds, udpa, googleapis,
 * protoc-gen-validate), parsed by protobufjs on first use (about 160 ms, only when xDS is used).
 * Field names stay snake_case (keepCase), as in Envoy's own config dumps.
 *
 * JSON mapping (proto3's canonical one, so a wire resource and a config dump read alike):
 * - Any → `{"@type": url, ...fields}`; a type these protos do not define (Istio's own filter
 *   configs) → `{"@type": url}` plus `"@value"` (base64) when it has content;
 * - Duration → "1.5s"; Timestamp → RFC 3339; Struct/Value/ListValue → plain JSON;
 * - wrappers (UInt32Value, BoolValue, …) → their value; enums → names; bytes → base64;
 * - 64-bit integers → decimal strings.
 *
 * protobufjs defines the google.protobuf types itself, in lowerCamelCase whatever keepCase says.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import protobuf from 'protobufjs';

export const TYPE_URL_PREFIX = 'type.googleapis.com/';

/** The resource types skiff subscribes to over ADS. */
export const TypeUrl = {
  cluster: `${TYPE_URL_PREFIX}envoy.config.cluster.v3.Cluster`,
  endpoints: `${TYPE_URL_PREFIX}envoy.config.endpoint.v3.ClusterLoadAssignment`,
  listener: `${TYPE_URL_PREFIX}envoy.config.listener.v3.Listener`,
  routes: `${TYPE_URL_PREFIX}envoy.config.route.v3.RouteConfiguration`,
  secret: `${TYPE_URL_PREFIX}envoy.extensions.transport_sockets.tls.v3.Secret`,
} as const;

/** Top-level files; their imports are loaded with them. */
const PROTO_FILES = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/service/discovery/v3/discovery.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/network/rbac/v3/rbac.proto',
  'envoy/extensions/filters/listener/original_dst/v3/original_dst.proto',
  'envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
  'envoy/extensions/filters/listener/http_inspector/v3/http_inspector.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/http/rbac/v3/rbac.proto',
  'envoy/extensions/filters/http/jwt_authn/v3/config.proto',
  'envoy/extensions/filters/http/fault/v3/fault.proto',
  'envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit.proto',
  'envoy/extensions/filters/http/cors/v3/cors.proto',
  'envoy/extensions/filters/http/grpc_stats/v3/config.proto',
  'envoy/extensions/filters/http/wasm/v3/wasm.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/extensions/retry/host/previous_hosts/v3/previous_hosts.proto',
  'envoy/extensions/access_loggers/file/v3/file.proto',
  'udpa/type/v1/typed_struct.proto',
  'xds/type/v3/typed_struct.proto',
  'google/rpc/status.proto',
];

let loaded: protobuf.Root | undefined;

/** The protobuf root with every type skiff reads; parsed once, on first use. */
export function protoRoot(): protobuf.Root {
  if (loaded !== undefined) return loaded;
  const require = createRequire(import.meta.url);
  const deps = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
  // protobufjs carries google/protobuf/*.proto (descriptor.proto is imported by validate.proto).
  const includes = [...['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(deps, d)), dirname(require.resolve('protobufjs/package.json'))];
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => includes.map((dir) => join(dir, target)).find((p) => existsSync(p)) ?? target;
  root.loadSync(PROTO_FILES, { keepCase: true });
  root.resolveAll();
  loaded = root;
  return root;
}

/** A message type by full name (`envoy.config.cluster.v3.Cluster`), or undefined. */
export function messageType(name: string): protobuf.Type | undefined {
  try {
    return protoRoot().lookupType(name);
  } catch {
    return undefined;
  }
}

function requireType(name: string): protobuf.Type {
  const t = messageType(name);
  if (t === undefined) throw new Error(`unknown protobuf message ${name}`);
  return t;
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

// === decoding (wire → JSON) ===

/** Decodes `bytes` as message `name` into proto3 JSON. Throws on malformed input. */
export function decodeMessage(name: string, bytes: Uint8Array): { [key: string]: Json } {
  const type = requireType(name);
  return messageToJson(type, type.decode(bytes)) as { [key: string]: Json };
}

/** An Any's payload in JSON form (`@type` included). */
export function decodeAny(typeUrl: string, value: Uint8Array): { [key: string]: Json } {
  const type = messageType(typeUrl.slice(typeUrl.lastIndexOf('/') + 1));
  if (type === undefined) return value.length === 0 ? { '@type': typeUrl } : { '@type': typeUrl, '@value': Buffer.from(value).toString('base64') };
  return { '@type': typeUrl, ...(messageToJson(type, type.decode(value)) as { [key: string]: Json }) };
}

const WRAPPERS = new Set(['DoubleValue', 'FloatValue', 'Int64Value', 'UInt64Value', 'Int32Value', 'UInt32Value', 'BoolValue', 'StringValue', 'BytesValue']);

function wellKnown(type: protobuf.Type): string | undefined {
  const full = type.fullName;
  return full.startsWith('.google.protobuf.') ? full.slice('.google.protobuf.'.length) : undefined;
}

function messageToJson(type: protobuf.Type, message: protobuf.Message | Record<string, unknown>): Json {
  const m = message as Record<string, unknown>;
  switch (wellKnown(type)) {
    case 'Any':
      return decodeAny(String(m['type_url'] ?? ''), (m['value'] as Uint8Array | undefined) ?? new Uint8Array());
    case 'Duration':
      return formatDuration(toNumber(m['seconds']), Number(m['nanos'] ?? 0));
    case 'Timestamp':
      return new Date(toNumber(m['seconds']) * 1000 + Math.floor(Number(m['nanos'] ?? 0) / 1e6)).toISOString();
    case 'Struct':
      return structToJson(m);
    case 'Value':
      return valueToJson(m);
    case 'ListValue':
      return ((m['values'] as Record<string, unknown>[] | undefined) ?? []).map(valueToJson);
    case 'Empty':
      return {};
  }
  if (WRAPPERS.has(type.name) && wellKnown(type) !== undefined) {
    return scalarToJson(type.fields['value']!, m['value'] ?? type.fields['value']!.defaultValue);
  }
  const out: { [key: string]: Json } = {};
  for (const key of Object.keys(m)) {
    const field = type.fields[key];
    if (field === undefined) continue;
    const v = m[key];
    if (v === undefined || v === null) continue;
    if (field.map) {
      if (Object.keys(v as object).length === 0) continue;
      const obj: { [key: string]: Json } = {};
      for (const [k, item] of Object.entries(v as Record<string, unknown>)) obj[k] = fieldValueToJson(field, item);
      out[key] = obj;
    } else if (field.repeated) {
      if ((v as unknown[]).length === 0) continue;
      out[key] = (v as unknown[]).map((item) => fieldValueToJson(field, item));
    } else {
      out[key] = fieldValueToJson(field, v);
    }
  }
  return out;
}

function fieldValueToJson(field: protobuf.Field, v: unknown): Json {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) return messageToJson(resolved, v as protobuf.Message);
  if (resolved instanceof protobuf.Enum) return typeof v === 'number' ? (resolved.valuesById[v] ?? v) : (v as Json);
  return scalarToJson(field, v);
}

function scalarToJson(field: protobuf.Field, v: unknown): Json {
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
  if (field.type === 'int64' || field.type === 'uint64' || field.type === 'sint64' || field.type === 'fixed64' || field.type === 'sfixed64') {
    return String(v);
  }
  return v as Json;
}

const toNumber = (v: unknown): number => (v === undefined || v === null ? 0 : Number(String(v)));

/** proto3 JSON: seconds with 0, 3, 6 or 9 fractional digits and an "s". */
export function formatDuration(seconds: number, nanos: number): string {
  const sign = seconds < 0 || nanos < 0 ? '-' : '';
  const s = Math.abs(seconds);
  const n = Math.abs(nanos);
  if (n === 0) return `${sign}${s}s`;
  const digits = n % 1_000_000 === 0 ? 3 : n % 1000 === 0 ? 6 : 9;
  return `${sign}${s}.${String(n).padStart(9, '0').slice(0, digits)}s`;
}

function structToJson(m: Record<string, unknown>): Json {
  const out: { [key: string]: Json } = {};
  for (const [k, v] of Object.entries((m['fields'] as Record<string, Record<string, unknown>> | undefined) ?? {})) out[k] = valueToJson(v);
  return out;
}

function valueToJson(v: Record<string, unknown>): Json {
  // Unset oneof members read as defaults through the prototype: only own properties are set.
  const has = (k: string): boolean => Object.prototype.hasOwnProperty.call(v, k);
  if (has('structValue')) return structToJson(v['structValue'] as Record<string, unknown>);
  if (has('listValue')) return (((v['listValue'] as Record<string, unknown>)['values'] as Record<string, unknown>[] | undefined) ?? []).map(valueToJson);
  if (has('stringValue')) return v['stringValue'] as string;
  if (has('numberValue')) return v['numberValue'] as number;
  if (has('boolValue')) return v['boolValue'] as boolean;
  return null;
}

// === encoding (JSON → wire) ===

export interface EncodeOptions {
  /**
   * An Any of a type not defined here (Istio's own filter configs) whose JSON has fields cannot
   * be encoded: by default that throws; `lossy` encodes it empty (tests replaying config dumps).
   */
  readonly lossy?: boolean;
}

/**
 * Encodes proto3 JSON (snake_case or lowerCamelCase names) as message `name`. An Any whose type
 * is not defined here is encoded from its `@value` (or empty when it has no fields); any other
 * field or value that does not fit the schema throws, naming its path.
 */
export function encodeMessage(name: string, json: unknown, options: EncodeOptions = {}): Uint8Array {
  const type = requireType(name);
  return type.encode(type.fromObject(jsonToObject(type, json, name, options) as Record<string, unknown>)).finish();
}

/** An Any (`{type_url, value}` in protobufjs object form) from its JSON form. */
export function encodeAny(json: unknown, options: EncodeOptions = {}, path = '@type'): { type_url: string; value: Uint8Array } {
  if (typeof json !== 'object' || json === null || typeof (json as Record<string, unknown>)['@type'] !== 'string') {
    throw new Error(`${path}: an Any needs "@type"`);
  }
  const { ['@type']: typeUrl, ['@value']: raw, ...body } = json as Record<string, unknown>;
  const type = messageType(String(typeUrl).slice(String(typeUrl).lastIndexOf('/') + 1));
  if (type === undefined) {
    if (Object.keys(body).length > 0 && options.lossy !== true) throw new Error(`${path}: cannot encode ${String(typeUrl)}: its message type is unknown`);
    return { type_url: String(typeUrl), value: typeof raw === 'string' ? Buffer.from(raw, 'base64') : new Uint8Array() };
  }
  const inner = wellKnown(type) !== undefined && 'value' in body && Object.keys(body).length === 1 ? body['value'] : body;
  return { type_url: String(typeUrl), value: type.encode(type.fromObject(jsonToObject(type, inner, path, options) as Record<string, unknown>)).finish() };
}

const camelToSnake = (k: string): string => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** proto3 JSON → the object form protobufjs' fromObject takes (well-known types expanded). */
function jsonToObject(type: protobuf.Type, json: unknown, path: string, options: EncodeOptions): unknown {
  switch (wellKnown(type)) {
    case 'Any':
      return encodeAny(json, options, path);
    case 'Duration':
      return parseDuration(json, path);
    case 'Timestamp': {
      const ms = Date.parse(String(json));
      if (Number.isNaN(ms)) throw new Error(`${path}: invalid timestamp`);
      return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
    }
    case 'Struct':
      return jsonToStruct(json, path);
    case 'Value':
      return jsonToValue(json);
    case 'ListValue':
      return { values: (json as unknown[]).map(jsonToValue) };
  }
  if (WRAPPERS.has(type.name) && wellKnown(type) !== undefined) {
    const v = typeof json === 'object' && json !== null && 'value' in json ? (json as { value: unknown }).value : json;
    return { value: v };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${path}: must be an object (${type.name})`);
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(json)) {
    const name = camelToSnake(key);
    const field = type.fields[name];
    const at = `${path}.${name}`;
    if (field === undefined) throw new Error(`${at}: unknown field of ${type.fullName.slice(1)}`);
    if (v === null) continue;
    const resolved = field.resolvedType;
    const one = (item: unknown, p: string): unknown => (resolved instanceof protobuf.Type ? jsonToObject(resolved, item, p, options) : item);
    if (field.map) out[name] = Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, item]) => [k, one(item, `${at}.${k}`)]));
    else if (field.repeated) out[name] = (v as unknown[]).map((item, i) => one(item, `${at}[${i}]`));
    else out[name] = one(v, at);
  }
  return out;
}

function parseDuration(json: unknown, path: string): { seconds: number; nanos: number } {
  if (typeof json === 'object' && json !== null) {
    const o = json as Record<string, unknown>;
    return { seconds: Number(o['seconds'] ?? 0), nanos: Number(o['nanos'] ?? 0) };
  }
  const m = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/.exec(String(json));
  if (m === null) throw new Error(`${path}: invalid duration ${JSON.stringify(json)}`);
  const sign = m[1] === undefined ? 1 : -1;
  return { seconds: sign * Number(m[2]), nanos: sign * Number((m[3] ?? '').padEnd(9, '0')) };
}

function jsonToStruct(json: unknown, path: string): { fields: Record<string, unknown> } {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${path}: a Struct must be an object`);
  return { fields: Object.fromEntries(Object.entries(json).map(([k, v]) => [k, jsonToValue(v)])) };
}

function jsonToValue(v: unknown): Record<string, unknown> {
  if (v === null || v === undefined) return { nullValue: 0 };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(jsonToValue) } };
  return { structValue: jsonToStruct(v, '') };
}

/**
 * Whether an undecoded message (the `@value` of an Any whose type these protos lack) holds a
 * field at `path` (field numbers, outer first; every field on the way a message). Used to check
 * Istio's own filter configs for settings skiff must refuse without their .proto files.
 */
export function rawFieldPresent(base64: string, path: readonly number[]): boolean {
  let bytes: Uint8Array = Buffer.from(base64, 'base64');
  for (const [depth, wanted] of path.entries()) {
    const reader = protobuf.Reader.create(bytes);
    let found: Uint8Array | undefined;
    while (reader.pos < reader.len) {
      const tag = reader.uint32();
      const field = tag >>> 3;
      const wire = tag & 7;
      if (field === wanted && wire === 2) {
        found = reader.bytes();
        break;
      }
      reader.skipType(wire);
    }
    if (found === undefined) return false;
    if (depth === path.length - 1) return true;
    bytes = found;
  }
  return false;
}
