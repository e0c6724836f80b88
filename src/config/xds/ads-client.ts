/**
 * The Aggregated Discovery Service client: one gRPC stream
 * (`envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources`) carrying
 * every resource type, State of the World.
 *
 * Contract:
 * - every response is answered: an ACK (its version and nonce) when the handler accepts its
 *   resources, else a NACK (the last accepted version, its nonce, and error_detail with the
 *   handler's problems);
 * - the node goes on the first request of each stream only (Istio's
 *   set_node_on_first_message_only);
 * - clusters and listeners are wildcard subscriptions; endpoints and route configurations are
 *   subscribed by name, and `subscribe` sends a new request when the names change (never an
 *   empty first request, which a server would read as a wildcard);
 * - on a broken stream it reconnects with jittered exponential backoff (Envoy's 500 ms base,
 *   30 s cap), re-sending each subscription with the last accepted version so the server may
 *   skip what is unchanged. What was accepted stays in force meanwhile: the handler is only
 *   called with new responses.
 */
import * as grpc from '@grpc/grpc-js';
import { JitteredBackoff } from '../../core/backoff.js';
import { decodeMessage, encodeMessage, type Json } from './proto.js';

const ADS_METHOD = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';
const REQUEST = 'envoy.service.discovery.v3.DiscoveryRequest';
const RESPONSE = 'envoy.service.discovery.v3.DiscoveryResponse';
/** google.rpc.Code INVALID_ARGUMENT, what Envoy puts in a NACK. */
const INVALID_ARGUMENT = 3;

export interface AdsResponse {
  readonly typeUrl: string;
  readonly versionInfo: string;
  readonly nonce: string;
  /** Each resource in proto3 JSON with `@type`. */
  readonly resources: readonly Json[];
}

/** What the client needs from whoever consumes the resources. */
export interface AdsHandler {
  /** Validates and takes a response's resources; returns the problems (non-empty: NACK, and nothing of it is used). */
  onResponse(response: AdsResponse): readonly string[];
  /** The stream (re)connected or broke; for logs and status. */
  onConnection?(state: 'connected' | 'disconnected', detail?: string): void;
}

export interface AdsClientOptions {
  /** `host:port` or `unix:/path` (grpc-js target syntax). */
  readonly target: string;
  /**
   * How to authenticate to the server (TLS, mTLS, a bearer token); plaintext when absent. Called
   * at each (re)connect, so rotated certificates and tokens are used from the next stream on.
   */
  readonly credentials?: () => grpc.ChannelCredentials;
  /** TLS name of the server when it differs from the target host (e.g. istiod.istio-system.svc). */
  readonly serverName?: string;
  /** The Envoy Node (proto3 JSON). */
  readonly node: Json;
  readonly handler: AdsHandler;
  readonly backoff?: { readonly baseMs: number; readonly maxMs: number };
}

interface Subscription {
  /** null: wildcard. */
  names: readonly string[] | null;
  /** The last accepted version ('' before any). */
  version: string;
  /** The last response's nonce on this stream ('' before any). */
  nonce: string;
  /** A request for this type went out on the current stream. */
  sent: boolean;
}

type Stream = grpc.ClientDuplexStream<Json, Json>;

export class AdsClient {
  readonly #options: AdsClientOptions;
  readonly #subscriptions = new Map<string, Subscription>();
  #client: grpc.Client | null = null;
  #stream: Stream | null = null;
  /** The node has been sent on the current stream. */
  #nodeSent = false;
  #retryTimer: NodeJS.Timeout | null = null;
  readonly #backoff: JitteredBackoff;
  #closed = false;

  constructor(options: AdsClientOptions) {
    this.#options = options;
    const { baseMs, maxMs } = options.backoff ?? { baseMs: 500, maxMs: 30_000 };
    this.#backoff = new JitteredBackoff(baseMs, maxMs);
  }

  start(): void {
    this.#connect();
  }

  /**
   * Subscribes to a type (names null: wildcard) or changes its names. Sends a request at once
   * when connected; otherwise the subscription goes out on (re)connect.
   */
  subscribe(typeUrl: string, names: readonly string[] | null): void {
    const sorted = names === null ? null : [...new Set(names)].sort();
    const current = this.#subscriptions.get(typeUrl);
    if (current !== undefined && sameNames(current.names, sorted)) return;
    const sub = current ?? { names: sorted, version: '', nonce: '', sent: false };
    sub.names = sorted;
    this.#subscriptions.set(typeUrl, sub);
    if (this.#stream !== null) this.#send(typeUrl, sub);
  }

  close(): void {
    this.#closed = true;
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#stream?.cancel();
    this.#stream = null;
    this.#client?.close();
    this.#client = null;
  }

  #connect(): void {
    if (this.#closed) return;
    this.#client?.close();
    let credentials: grpc.ChannelCredentials;
    try {
      credentials = this.#options.credentials?.() ?? grpc.credentials.createInsecure();
    } catch (err) {
      // E.g. a certificate file not there yet: try again later.
      this.#options.handler.onConnection?.('disconnected', `credentials: ${(err as Error).message}`);
      this.#retryLater();
      return;
    }
    const channelOptions: grpc.ChannelOptions = {
      'grpc.keepalive_time_ms': 300_000,
      ...(this.#options.serverName !== undefined ? { 'grpc.ssl_target_name_override': this.#options.serverName, 'grpc.default_authority': this.#options.serverName } : {}),
    };
    const client = new grpc.Client(this.#options.target, credentials, channelOptions);
    this.#client = client;
    const stream = client.makeBidiStreamRequest(
      ADS_METHOD,
      (request: Json) => Buffer.from(encodeMessage(REQUEST, request)),
      (bytes: Buffer) => decodeMessage(RESPONSE, bytes),
    ) as Stream;
    this.#stream = stream;
    this.#nodeSent = false;
    let connected = false;
    stream.on('metadata', () => {
      connected = true;
      this.#options.handler.onConnection?.('connected');
    });
    stream.on('data', (response: Json) => {
      if (!connected) {
        connected = true;
        this.#options.handler.onConnection?.('connected');
      }
      this.#backoff.reset();
      this.#onResponse(stream, response as { [key: string]: Json });
    });
    stream.on('error', (err: grpc.ServiceError) => this.#broken(stream, err.details || err.message));
    stream.on('end', () => this.#broken(stream, 'the server ended the stream'));
    for (const [typeUrl, sub] of this.#subscriptions) {
      sub.nonce = '';
      sub.sent = false;
      this.#send(typeUrl, sub);
    }
  }

  #broken(stream: Stream, detail: string): void {
    if (this.#stream !== stream) return;
    this.#stream = null;
    stream.cancel();
    if (this.#closed) return;
    this.#options.handler.onConnection?.('disconnected', detail);
    this.#retryLater();
  }

  #retryLater(): void {
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      this.#connect();
    }, this.#backoff.next());
  }

  #onResponse(stream: Stream, response: { [key: string]: Json }): void {
    const typeUrl = String(response['type_url'] ?? '');
    const nonce = String(response['nonce'] ?? '');
    const versionInfo = String(response['version_info'] ?? '');
    const sub = this.#subscriptions.get(typeUrl);
    if (sub === undefined) return; // never asked for: nothing to acknowledge
    sub.nonce = nonce;
    const resources = (response['resources'] as Json[] | undefined) ?? [];
    let problems: readonly string[];
    try {
      problems = this.#options.handler.onResponse({ typeUrl, versionInfo, nonce, resources });
    } catch (err) {
      problems = [`internal error: ${(err as Error).message}`];
    }
    if (problems.length === 0) sub.version = versionInfo;
    if (this.#stream === stream) this.#send(typeUrl, sub, problems);
  }

  #send(typeUrl: string, sub: Subscription, problems: readonly string[] = []): void {
    // A stream's first request with no names would be a wildcard (legacy xDS): a named type
    // waits until it has names. Later, no names unsubscribes from all.
    if (sub.names !== null && sub.names.length === 0 && !sub.sent) return;
    sub.sent = true;
    const request: { [key: string]: Json } = {
      type_url: typeUrl,
      version_info: sub.version,
      response_nonce: sub.nonce,
      resource_names: sub.names === null ? [] : [...sub.names],
    };
    if (!this.#nodeSent) {
      request['node'] = this.#options.node;
      this.#nodeSent = true;
    }
    if (problems.length > 0) request['error_detail'] = { code: INVALID_ARGUMENT, message: problems.join('\n') };
    this.#stream?.write(request);
  }
}

function sameNames(a: readonly string[] | null, b: readonly string[] | null): boolean {
  if (a === null || b === null) return a === b;
  return a.length === b.length && a.every((n, i) => n === b[i]);
}
