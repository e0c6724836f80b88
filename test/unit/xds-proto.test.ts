/**
 * The proto3 JSON codec against real istiod output: every cluster, listener, route configuration
 * and endpoint assignment in two Istio sidecar config dumps survives JSON → protobuf → JSON
 * unchanged (apart from the bodies of Istio's own filter configs, whose types Envoy's protos do
 * not define), and the well-known types take their canonical JSON forms.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeAny, decodeMessage, encodeAny, encodeMessage, messageType } from '../../src/config/xds/proto.js';

const dump = (name: string): any => JSON.parse(readFileSync(new URL(`../../../shared/xds-data/${name}`, import.meta.url), 'utf8'));

/** Every resource a config dump holds, in its JSON form with `@type`. */
function resources(d: any): any[] {
  const out: any[] = [];
  for (const c of d.configs) {
    for (const k of ['dynamic_active_clusters', 'static_clusters', 'dynamicActiveClusters', 'staticClusters']) for (const x of c[k] ?? []) out.push(x.cluster);
    for (const x of c.dynamic_listeners ?? c.dynamicListeners ?? []) {
      const l = (x.active_state ?? x.activeState)?.listener;
      if (l !== undefined) out.push(l);
    }
    for (const x of c.dynamic_route_configs ?? c.dynamicRouteConfigs ?? []) out.push(x.route_config ?? x.routeConfig);
    for (const x of c.dynamic_endpoint_configs ?? []) out.push(x.endpoint_config);
  }
  return out;
}

const snake = (k: string): string => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

const MAPS = new Set(['typed_extension_protocol_options', 'typed_per_filter_config', 'typed_filter_metadata']);
const STRUCTS = new Set(['filter_metadata', 'value', 'fields']);

/**
 * What a round trip must give back: snake_case field names (map keys and Struct contents keep
 * theirs), and Any messages of unknown types without a body.
 */
function expected(v: any, inStruct = false, isMap = false, parent = ''): any {
  if (Array.isArray(v)) return v.map((x) => expected(x, inStruct, false, parent));
  if (v === null || typeof v !== 'object') return v;
  if (!inStruct && typeof v['@type'] === 'string' && messageType(v['@type'].split('/').pop() ?? '') === undefined) return { '@type': v['@type'] };
  return Object.fromEntries(
    Object.keys(v).map((k) => {
      const name = inStruct || isMap ? k : snake(k);
      // A transport socket match's `match` is a Struct; elsewhere `match` is a message.
      const struct = inStruct || STRUCTS.has(name) || (name === 'match' && parent === 'transport_socket_matches');
      return [name, expected(v[k], struct, !inStruct && MAPS.has(name), name)];
    }),
  );
}

const sorted = (v: any): any =>
  Array.isArray(v) ? v.map(sorted) : v !== null && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted(v[k])])) : v;

describe('proto3 JSON codec', () => {
  for (const file of ['DeathStarBench__config_dump.json', 'istio__configdump.json']) {
    it(`round-trips every resource of ${file}`, () => {
      const all = resources(dump(file));
      expect(all.length).toBeGreaterThan(30);
      for (const r of all) {
        const any = encodeAny(r, { lossy: true });
        expect(sorted(decodeAny(any.type_url, any.value)), r.name ?? r.cluster_name).toEqual(sorted(expected(r)));
      }
    });
  }

  it('maps well-known types to their canonical JSON', () => {
    const json = {
      name: 'c',
      connect_timeout: '1.250s',
      per_connection_buffer_limit_bytes: 32768,
      metadata: { filter_metadata: { istio: { services: [{ host: 'a', port: 1, ok: true, none: null }] } } },
      lb_policy: 'LEAST_REQUEST',
    };
    const back = decodeMessage('envoy.config.cluster.v3.Cluster', encodeMessage('envoy.config.cluster.v3.Cluster', json));
    expect(back).toEqual(json);
  });

  it('refuses what does not fit the schema, naming the field', () => {
    expect(() => encodeMessage('envoy.config.cluster.v3.Cluster', { name: 'c', conect_timeout: '1s' })).toThrow(/conect_timeout: unknown field/);
    expect(() => encodeMessage('envoy.config.cluster.v3.Cluster', { connect_timeout: 'soon' })).toThrow(/connect_timeout: invalid duration/);
    expect(() => encodeAny({ '@type': 'type.googleapis.com/stats.PluginConfig', x: 1 })).toThrow(/its message type is unknown/);
  });
});
