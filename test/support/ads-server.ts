/**
 * A small state-of-the-world ADS server (Envoy v3 `AggregatedDiscoveryService`) for tests.
 *
 * Tests set resource sets per type URL; the server pushes them to every subscribed stream and
 * records every DiscoveryRequest and DiscoveryResponse so tests can assert on ACKs and NACKs.
 * It speaks the SotW rules of Envoy's xds_protocol.rst (see the reference, section 8.3):
 * - a stream gets a response when it first subscribes to a type or changes that type's
 *   resource_names; an ACK or NACK of the latest nonce with unchanged names gets none;
 * - a request whose response_nonce is not the latest one sent for its type is stale: recorded,
 *   otherwise ignored;
 * - Listener and Cluster are wildcard types (no names, or `*`): a response holds every
 *   resource; other types hold the requested names that exist;
 * - nonces are unique across the server.
 * DeltaAggregatedResources answers UNIMPLEMENTED (grpc-js' default handler).
 *
 * Real sockets only: 127.0.0.1 on port 0, or a unix socket; plaintext, TLS or mTLS, optionally
 * behind a bearer token and with Istio's CA service beside it (istiod's 15012).
 */
import { readFile } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import { decodeMessage, encodeAny, messageType, TypeUrl, type Json } from '../../src/config/xds/proto.js';
import type { CaKeyPair } from '../../src/security/ca.js';
import { addIstioCaService, type CaCall } from './istio-ca-service.js';

// === wire ===

const ADS = '/envoy.service.discovery.v3.AggregatedDiscoveryService';
const REQUEST = 'envoy.service.discovery.v3.DiscoveryRequest';
const RESPONSE = 'envoy.service.discovery.v3.DiscoveryResponse';

/** A DiscoveryResponse in protobufjs object form: resources are already-encoded Anys. */
interface WireResponse {
  readonly version_info: string;
  readonly resources: readonly { type_url: string; value: Uint8Array }[];
  readonly type_url: string;
  readonly nonce: string;
}

function serializeResponse(response: WireResponse): Buffer {
  const type = messageType(RESPONSE)!;
  return Buffer.from(type.encode(type.fromObject(response as unknown as Record<string, unknown>)).finish());
}

function deserializeRequest(bytes: Buffer): { [key: string]: Json } {
  return decodeMessage(REQUEST, bytes);
}

const unused = (): never => {
  throw new Error('the test ADS server neither sends requests nor reads responses');
};

/** Hand-made service definition (no proto-loader): SotW ADS, plus Delta left unimplemented. */
const ADS_SERVICE: grpc.ServiceDefinition = {
  StreamAggregatedResources: {
    path: `${ADS}/StreamAggregatedResources`,
    requestStream: true,
    responseStream: true,
    requestSerialize: unused,
    requestDeserialize: deserializeRequest,
    responseSerialize: serializeResponse,
    responseDeserialize: unused,
  },
  DeltaAggregatedResources: {
    path: `${ADS}/DeltaAggregatedResources`,
    requestStream: true,
    responseStream: true,
    requestSerialize: unused,
    requestDeserialize: (bytes: Buffer) => decodeMessage('envoy.service.discovery.v3.DeltaDiscoveryRequest', bytes),
    responseSerialize: unused,
    responseDeserialize: unused,
  },
};

// === records ===

/** One DiscoveryRequest as received, in JSON form. */
export interface RecordedRequest {
  /** Stream id, 1 for the first stream the server accepted. */
  readonly stream: number;
  readonly typeUrl: string;
  readonly versionInfo: string;
  /** `response_nonce`; '' on a first request. */
  readonly nonce: string;
  readonly resourceNames: readonly string[];
  /** Set iff the request is a NACK. */
  readonly errorDetail?: { readonly code: number; readonly message: string };
  /** The node, when the request carried one (the first on a stream, at least). */
  readonly node?: Json;
}

/** One DiscoveryResponse as sent. */
export interface RecordedResponse {
  readonly stream: number;
  readonly typeUrl: string;
  readonly version: string;
  readonly nonce: string;
  /** Names of the resources it held, in order. */
  readonly names: readonly string[];
}

/** A resource set as served: JSON (with `@type`) and its encoded Any, by name. */
interface TypeState {
  version: string;
  /** How many times the set was replaced; the default version is its decimal form. */
  generation: number;
  readonly resources: Map<string, { type_url: string; value: Uint8Array }>;
}

/** What one stream has subscribed to for one type. */
interface Subscription {
  /** Names as last requested (not stale); empty or containing `*` means wildcard for wildcard types. */
  names: readonly string[];
  /** Nonce of the latest response on this stream for this type; a request with another is stale. */
  lastNonce: string | undefined;
}

interface OpenStream {
  readonly id: number;
  readonly call: grpc.ServerDuplexStream<{ [key: string]: Json }, WireResponse>;
  readonly subscriptions: Map<string, Subscription>;
}

const WILDCARD_TYPES: ReadonlySet<string> = new Set([TypeUrl.listener, TypeUrl.cluster]);

/** The name SotW matches a resource by: `cluster_name` for ClusterLoadAssignment, else `name`. */
export function resourceName(resource: object): string {
  const r = resource as Record<string, unknown>;
  const name = r['name'] ?? r['cluster_name'] ?? r['clusterName'];
  if (typeof name !== 'string' || name === '') throw new Error(`resource has no name: ${JSON.stringify(resource).slice(0, 200)}`);
  return name;
}

export interface AdsServerOptions {
  /** Listen on this unix socket instead of 127.0.0.1:0. The caller owns the path. */
  readonly socketPath?: string;
  /**
   * PEM strings; with them the server speaks TLS and, unless `clientCertificates` is false,
   * requires and verifies client certificates (mTLS).
   */
  readonly tls?: { readonly key: string; readonly cert: string; readonly ca: string; readonly clientCertificates?: boolean };
  /** Streams must carry `authorization: Bearer <token>` (istiod's service-account token check). */
  readonly bearerToken?: string;
  /** Also serve Istio's CA (CreateCertificate) signing with this root, behind `bearerToken`. */
  readonly ca?: { readonly root: CaKeyPair; readonly calls: CaCall[]; readonly ttlSeconds?: number };
  /**
   * Answer subscriptions to types never set with an empty response (default true, as a control
   * plane that has nothing of a type does). false holds them until `setResources` (startup tests).
   */
  readonly answerUnset?: boolean;
}

/** Resource lists read from an Envoy `/config_dump`, in JSON form with `@type`. */
export interface ConfigDumpResources {
  readonly clusters: object[];
  readonly listeners: object[];
  readonly routes: object[];
  readonly endpoints: object[];
  readonly secrets: object[];
}

// === impl AdsServer ===

export class AdsServer {
  /** Where clients connect: `127.0.0.1:PORT` or `unix:/path`. */
  readonly target: string;
  readonly #server: grpc.Server;
  /** Every request received, oldest first. */
  readonly #requests: RecordedRequest[] = [];
  /** Every response sent, oldest first. */
  readonly #responses: RecordedResponse[] = [];
  readonly #types = new Map<string, TypeState>();
  /** Invariant: holds exactly the streams that have not ended. */
  readonly #open = new Set<OpenStream>();
  readonly #waiters = new Set<(r: RecordedRequest) => void>();
  #nextStream = 1;
  #nextNonce = 1;

  readonly #answerUnset: boolean;

  private constructor(server: grpc.Server, target: string, answerUnset: boolean) {
    this.#server = server;
    this.target = target;
    this.#answerUnset = answerUnset;
  }

  /** Starts listening; resolves once bound. */
  static async start(options: AdsServerOptions = {}): Promise<AdsServer> {
    const server = new grpc.Server();
    const credentials =
      options.tls === undefined
        ? grpc.ServerCredentials.createInsecure()
        : grpc.ServerCredentials.createSsl(Buffer.from(options.tls.ca), [{ private_key: Buffer.from(options.tls.key), cert_chain: Buffer.from(options.tls.cert) }], options.tls.clientCertificates !== false);
    const address = options.socketPath === undefined ? '127.0.0.1:0' : `unix:${options.socketPath}`;
    const port = await new Promise<number>((resolve, reject) => server.bindAsync(address, credentials, (err, p) => (err ? reject(err) : resolve(p))));
    const ads = new AdsServer(server, options.socketPath === undefined ? `127.0.0.1:${port}` : address, options.answerUnset ?? true);
    server.addService(ADS_SERVICE, {
      StreamAggregatedResources: (call: OpenStream['call']) => {
        if (options.bearerToken !== undefined && call.metadata.get('authorization')[0] !== `Bearer ${options.bearerToken}`) {
          call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: 'authentication failure' });
          return;
        }
        ads.#accept(call);
      },
    });
    if (options.ca !== undefined) addIstioCaService(server, options.ca.root, options.bearerToken ?? '', options.ca.calls, options.ca.ttlSeconds);
    return ads;
  }

  /** Every DiscoveryRequest received so far, oldest first. */
  get requests(): ReadonlyArray<RecordedRequest> {
    return this.#requests;
  }

  /** Every DiscoveryResponse sent so far, oldest first. */
  get responses(): ReadonlyArray<RecordedResponse> {
    return this.#responses;
  }

  /** How many ADS streams are open now. */
  get streams(): number {
    return this.#open.size;
  }

  /** Requests of `typeUrl` that acknowledge a response: a nonce and no error_detail. */
  acks(typeUrl: string): RecordedRequest[] {
    return this.#requests.filter((r) => r.typeUrl === typeUrl && r.nonce !== '' && r.errorDetail === undefined);
  }

  /** Requests of `typeUrl` that reject a response (error_detail set). */
  nacks(typeUrl: string): RecordedRequest[] {
    return this.#requests.filter((r) => r.typeUrl === typeUrl && r.errorDetail !== undefined);
  }

  /** The version currently served for `typeUrl` ("0" before the first setResources). */
  version(typeUrl: string): string {
    return this.#types.get(typeUrl)?.version ?? '0';
  }

  /**
   * Replaces the resource set of `typeUrl` and pushes it to every open stream subscribed to
   * that type. Resources are JSON, with or without `@type` (added when missing; when present it
   * must equal `typeUrl`). Encoding is lossy: Any payloads of types the protos here do not know
   * (Istio's filter configs) go out empty. Throws, sending nothing, when a resource does not
   * encode or lacks a name. `version` defaults to the count of replacements of this type.
   */
  setResources(typeUrl: string, resources: readonly object[], version?: string): void {
    const encoded = new Map<string, { type_url: string; value: Uint8Array }>();
    for (const resource of resources) {
      const declared = (resource as Record<string, unknown>)['@type'];
      if (declared !== undefined && declared !== typeUrl) throw new Error(`resource ${resourceName(resource)} has @type ${String(declared)}, not ${typeUrl}`);
      encoded.set(resourceName(resource), encodeAny({ '@type': typeUrl, ...resource }, { lossy: true }));
    }
    const previous = this.#types.get(typeUrl);
    const generation = (previous?.generation ?? 0) + 1;
    this.#types.set(typeUrl, { version: version ?? String(generation), generation, resources: encoded });
    for (const stream of this.#open) if (stream.subscriptions.has(typeUrl)) this.#respond(stream, typeUrl);
  }

  /**
   * The first recorded request (past or future) matching `predicate`. Rejects after
   * `timeoutMs` naming the requests seen, so a failing test says what the client did send.
   */
  waitFor(predicate: (r: RecordedRequest) => boolean, timeoutMs = 5000): Promise<RecordedRequest> {
    const seen = this.#requests.find(predicate);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter = (r: RecordedRequest): void => {
        if (!predicate(r)) return;
        clearTimeout(timer);
        this.#waiters.delete(waiter);
        resolve(r);
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`no matching DiscoveryRequest within ${timeoutMs} ms; received:\n${this.describe()}`));
      }, timeoutMs);
      this.#waiters.add(waiter);
    });
  }

  /** The exchange so far, one line per request or response, for assertion messages. */
  describe(): string {
    const short = (t: string): string => t.slice(t.lastIndexOf('.') + 1);
    const lines = [
      ...this.#requests.map((r) => `  req  stream ${r.stream} ${short(r.typeUrl)} version=${JSON.stringify(r.versionInfo)} nonce=${JSON.stringify(r.nonce)} names=${JSON.stringify(r.resourceNames)}${r.errorDetail ? ` NACK ${JSON.stringify(r.errorDetail.message)}` : ''}`),
      ...this.#responses.map((r) => `  resp stream ${r.stream} ${short(r.typeUrl)} version=${JSON.stringify(r.version)} nonce=${JSON.stringify(r.nonce)} names=${JSON.stringify(r.names)}`),
    ];
    return lines.length === 0 ? '  (nothing)' : lines.join('\n');
  }

  /** Ends every open stream with UNAVAILABLE, so clients reconnect. The server keeps serving. */
  disconnectAll(): void {
    for (const stream of [...this.#open]) {
      this.#open.delete(stream);
      stream.call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'test ADS server: disconnectAll' });
    }
  }

  /** Ends every stream and stops the server. Idempotent. */
  async close(): Promise<void> {
    this.#open.clear();
    this.#server.forceShutdown();
  }

  // === stream handling ===

  #accept(call: OpenStream['call']): void {
    const stream: OpenStream = { id: this.#nextStream++, call, subscriptions: new Map() };
    this.#open.add(stream);
    const done = (): void => void this.#open.delete(stream);
    call.on('data', (request: { [key: string]: Json }) => this.#onRequest(stream, request));
    call.on('end', () => {
      done();
      call.end();
    });
    call.on('cancelled', done);
    call.on('error', done);
    call.on('close', done);
  }

  #onRequest(stream: OpenStream, request: { [key: string]: Json }): void {
    const record = toRecord(stream.id, request);
    this.#requests.push(record);
    for (const waiter of [...this.#waiters]) waiter(record);
    if (!this.#open.has(stream) || record.typeUrl === '') return;

    const subscription = stream.subscriptions.get(record.typeUrl);
    if (subscription === undefined) {
      // First request for this type on this stream: answer whatever nonce it carries (a nonce
      // from an earlier stream means nothing here).
      stream.subscriptions.set(record.typeUrl, { names: record.resourceNames, lastNonce: undefined });
      this.#respond(stream, record.typeUrl);
      return;
    }
    if (record.nonce !== subscription.lastNonce) return; // stale: a newer response is in flight
    if (sameNames(subscription.names, record.resourceNames)) return; // ACK or NACK
    subscription.names = record.resourceNames;
    this.#respond(stream, record.typeUrl);
  }

  /** Sends `typeUrl`'s current state to `stream`, filtered by the stream's subscription. */
  #respond(stream: OpenStream, typeUrl: string): void {
    const subscription = stream.subscriptions.get(typeUrl)!;
    const state = this.#types.get(typeUrl);
    if (state === undefined && !this.#answerUnset) return;
    const all = state?.resources ?? new Map<string, { type_url: string; value: Uint8Array }>();
    const wildcard = WILDCARD_TYPES.has(typeUrl) && (subscription.names.length === 0 || subscription.names.includes('*'));
    const names = wildcard ? [...all.keys()] : subscription.names.filter((n) => all.has(n));
    const nonce = String(this.#nextNonce++);
    const version = state?.version ?? '0';
    subscription.lastNonce = nonce;
    this.#responses.push({ stream: stream.id, typeUrl, version, nonce, names });
    stream.call.write({ version_info: version, resources: names.map((n) => all.get(n)!), type_url: typeUrl, nonce });
  }

  // === config dumps ===

  /**
   * Resources from an Envoy `/config_dump` (snake_case or camelCase, as istioctl writes it):
   * dynamic active clusters (static ones too with `includeStatic`), active listeners (dynamic,
   * plus static with `includeStatic`), dynamic route configs, dynamic endpoint configs (present
   * only in dumps taken with `include_eds`) and active secrets. Each keeps its `@type`.
   */
  static async loadConfigDump(path: string, options: { includeStatic?: boolean } = {}): Promise<ConfigDumpResources> {
    const dump = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    const out = { clusters: [] as object[], listeners: [] as object[], routes: [] as object[], endpoints: [] as object[], secrets: [] as object[] };
    const statics = options.includeStatic === true;
    for (const config of list(dump, 'configs')) {
      const type = String(config['@type'] ?? '');
      const take = (into: object[], entries: Record<string, unknown>[], ...path: string[]): void => {
        for (const entry of entries) {
          const resource = path.reduce<unknown>((at, key) => (at === undefined ? undefined : field(at as Record<string, unknown>, key)), entry);
          if (resource !== undefined) into.push(resource as object);
        }
      };
      if (type.endsWith('.ClustersConfigDump')) {
        if (statics) take(out.clusters, list(config, 'static_clusters'), 'cluster');
        take(out.clusters, list(config, 'dynamic_active_clusters'), 'cluster');
      } else if (type.endsWith('.ListenersConfigDump')) {
        if (statics) take(out.listeners, list(config, 'static_listeners'), 'listener');
        take(out.listeners, list(config, 'dynamic_listeners'), 'active_state', 'listener');
      } else if (type.endsWith('.RoutesConfigDump')) {
        take(out.routes, list(config, 'dynamic_route_configs'), 'route_config');
      } else if (type.endsWith('.EndpointsConfigDump')) {
        take(out.endpoints, list(config, 'dynamic_endpoint_configs'), 'endpoint_config');
      } else if (type.endsWith('.SecretsConfigDump')) {
        take(out.secrets, list(config, 'dynamic_active_secrets'), 'secret');
      }
    }
    return out;
  }
}

// === helpers ===

function toRecord(stream: number, request: { [key: string]: Json }): RecordedRequest {
  const error = request['error_detail'] as { code?: number; message?: string } | undefined;
  const node = request['node'];
  return {
    stream,
    typeUrl: String(request['type_url'] ?? ''),
    versionInfo: String(request['version_info'] ?? ''),
    nonce: String(request['response_nonce'] ?? ''),
    resourceNames: ((request['resource_names'] as string[] | undefined) ?? []).slice(),
    ...(error === undefined ? {} : { errorDetail: { code: error.code ?? 0, message: error.message ?? '' } }),
    ...(node === undefined ? {} : { node }),
  };
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  const sa = new Set(a);
  const sb = new Set(b);
  return sa.size === sb.size && [...sa].every((n) => sb.has(n));
}

/** A field by its snake_case name, or its lowerCamelCase form (istioctl's JSON). */
function field(obj: Record<string, unknown>, snake: string): unknown {
  return obj[snake] ?? obj[snake.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase())];
}

function list(obj: Record<string, unknown>, snake: string): Record<string, unknown>[] {
  const v = field(obj, snake);
  return Array.isArray(v) ? (v as Record<string, unknown>[]) : [];
}
