/**
 * The parts of an Envoy v3 RouteAction that bound or steer a forwarded request rather than pick
 * its destination: the gRPC and stream timeouts, the hash policy and per-route upgrades.
 */
import type { GrpcTimeoutPolicy, HashPolicy } from '../../model/index.js';
import { FieldReader, type Fields, type Spec } from './fields.js';

const MAX_STREAM_DURATION: Spec = { handled: ['max_stream_duration', 'grpc_timeout_header_max', 'grpc_timeout_header_offset'] };

const HASH_POLICY: Spec = {
  handled: ['header', 'cookie', 'connection_properties', 'query_parameter', 'terminal'],
  refused: { filter_state: 'hashing on filter state is not supported' },
};
const HASH_HEADER: Spec = { handled: ['header_name'], refused: { regex_rewrite: 'rewriting the header before hashing is not supported' } };
const HASH_COOKIE: Spec = { handled: ['name', 'ttl', 'path'], refused: { attributes: 'cookie attributes are not supported' } };
const HASH_CONNECTION: Spec = { handled: ['source_ip'] };
const HASH_QUERY: Spec = { handled: ['name'] };

const UPGRADE_CONFIG: Spec = {
  handled: ['upgrade_type', 'enabled'],
  refused: { connect_config: 'CONNECT termination is not supported' },
};

// === impl RouteActionPolicyReader ===

export class RouteActionPolicyReader extends FieldReader {
  /**
   * How grpc-timeout bounds the request. `max_stream_duration`, even all zeros, puts Envoy in its
   * "new timeouts" mode, where the route timeout is not used; otherwise `max_grpc_timeout` (Istio
   * sets it, "0s": uncapped) makes a gRPC request's deadline its timeout. The connection
   * manager's own max_stream_duration, which an unset route value falls back to, is the listener
   * translator's concern; here it is taken as unset (0: none).
   */
  grpcTimeout(f: Fields, path: string): GrpcTimeoutPolicy {
    if (f.has('max_stream_duration')) {
      const at = `${path}.max_stream_duration`;
      const d = this.message(f.get('max_stream_duration'), at, MAX_STREAM_DURATION);
      const streamMs = this.duration(d.get('max_stream_duration'), `${at}.max_stream_duration`) ?? 0;
      const headerMaxMs = this.duration(d.get('grpc_timeout_header_max'), `${at}.grpc_timeout_header_max`);
      const offsetMs = this.duration(d.get('grpc_timeout_header_offset'), `${at}.grpc_timeout_header_offset`) ?? 0;
      return { kind: 'stream', streamMs, ...(headerMaxMs !== undefined ? { headerMaxMs } : {}), offsetMs };
    }
    const maxMs = this.duration(f.get('max_grpc_timeout'), `${path}.max_grpc_timeout`);
    // grpc_timeout_offset only applies with max_grpc_timeout.
    const offsetMs = this.duration(f.get('grpc_timeout_offset'), `${path}.grpc_timeout_offset`) ?? 0;
    return maxMs === undefined ? { kind: 'ignore' } : { kind: 'grpc', maxMs, offsetMs };
  }

  /**
   * Route hash_policy → one HashPolicy. Envoy combines several policies' hashes; skiff hashes
   * on one, so a second is refused (`terminal` changes nothing with a single policy).
   */
  hashPolicy(v: unknown, path: string): HashPolicy | undefined {
    const list = this.list(v, path);
    let out: HashPolicy | undefined;
    list.forEach((p, i) => {
      const at = `${path}[${i}]`;
      const f = this.message(p, at, HASH_POLICY);
      this.bool(f.get('terminal'), `${at}.terminal`);
      if (i > 0) {
        this.problem(at, 'not supported: only one hash policy per route (Envoy combines several; skiff hashes on one)');
        return;
      }
      const kinds = ['header', 'cookie', 'connection_properties', 'query_parameter'].filter((k) => f.has(k));
      if (kinds.length !== 1) {
        // (A refused filter_state is reported already.)
        if (kinds.length > 1 || !isFilterState(p)) this.problem(at, 'exactly one of header, cookie, connection_properties or query_parameter is required');
        return;
      }
      out = this.#one(f, kinds[0]!, at);
    });
    return out;
  }

  #one(f: Fields, kind: string, path: string): HashPolicy | undefined {
    const at = `${path}.${kind}`;
    switch (kind) {
      case 'header': {
        const h = this.message(f.get(kind), at, HASH_HEADER);
        const name = this.string(h.get('header_name'), `${at}.header_name`) ?? '';
        if (name === '') this.problem(`${at}.header_name`, 'required');
        return { kind: 'header', name: name.toLowerCase() };
      }
      case 'cookie': {
        const c = this.message(f.get(kind), at, HASH_COOKIE);
        const name = this.string(c.get('name'), `${at}.name`) ?? '';
        if (name === '') this.problem(`${at}.name`, 'required');
        // A TTL, even 0 (a session cookie), generates a missing cookie.
        const ttlMs = this.duration(c.get('ttl'), `${at}.ttl`);
        const cookiePath = this.string(c.get('path'), `${at}.path`);
        return {
          kind: 'cookie',
          name,
          ...(cookiePath !== undefined && cookiePath !== '' ? { path: cookiePath } : {}),
          ...(ttlMs !== undefined ? { ttlMs } : {}),
        };
      }
      case 'connection_properties': {
        const c = this.message(f.get(kind), at, HASH_CONNECTION);
        if (this.bool(c.get('source_ip'), `${at}.source_ip`) !== true) {
          this.problem(`${at}.source_ip`, 'not supported: only source_ip: true is (otherwise the policy hashes nothing)');
          return undefined;
        }
        return { kind: 'sourceIp' };
      }
      default: {
        const q = this.message(f.get(kind), at, HASH_QUERY);
        const name = this.string(q.get('name'), `${at}.name`) ?? '';
        if (name === '') this.problem(`${at}.name`, 'required');
        return { kind: 'queryParam', name };
      }
    }
  }

  /**
   * Per-route upgrade_configs. skiff proxies WebSocket upgrades on every route (as Istio enables
   * them on every HTTP connection manager), so enabling WebSocket is what it does already;
   * disabling it, CONNECT and other upgrades are refused.
   */
  upgradeConfigs(v: unknown, path: string): void {
    this.list(v, path).forEach((u, i) => {
      const at = `${path}[${i}]`;
      const f = this.message(u, at, UPGRADE_CONFIG);
      const type = this.string(f.get('upgrade_type'), `${at}.upgrade_type`) ?? '';
      const enabled = this.bool(f.get('enabled'), `${at}.enabled`) ?? true;
      if (type.toLowerCase() !== 'websocket') {
        const why = type.toUpperCase() === 'CONNECT' ? 'CONNECT termination is not supported' : 'only websocket upgrades are';
        this.problem(`${at}.upgrade_type`, `not supported: ${JSON.stringify(type)} upgrades (${why})`);
      } else if (!enabled) {
        this.problem(`${at}.enabled`, 'not supported: WebSocket upgrades cannot be disabled on a route');
      }
    });
  }
}

const isFilterState = (v: unknown): boolean => typeof v === 'object' && v !== null && ('filter_state' in v || 'filterState' in v);
