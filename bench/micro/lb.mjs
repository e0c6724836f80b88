/**
 * One load-balancer pick per policy, over 3 and 100 hosts, and hash32 on a typical header value.
 * Hosts carry real (never connected) ConnectionPools: a pool opens no socket until acquire().
 * Policy parameters are Istio's defaults as skiff's translation sets them (LEAST_REQUEST with 2
 * choices, ring minimum 1024, maglev table 65537).
 */
import { hash32 } from '../../dist/upstream/hash.js';
import { Host } from '../../dist/upstream/host.js';
import { createLoadBalancer } from '../../dist/upstream/lb/index.js';
import { ConnectionPool } from '../../dist/upstream/pool/connection-pool.js';
import { check, flat, suite } from './harness.mjs';

const POOL_OPTIONS = { connectTimeoutMs: 10_000, idleTimeoutMs: 3_600_000, maxRequestsPerConnection: 0 };

export function makeHosts(n, weight = () => 1) {
  const hosts = [];
  for (let i = 0; i < n; i++) {
    const address = `10.0.${i >> 8}.${(i & 255) + 1}`;
    hosts.push(new Host(address, 8080, weight(i), { app: 'reviews', version: `v${(i % 3) + 1}` }, new ConnectionPool({ host: address, port: 8080 }, POOL_OPTIONS)));
  }
  return hosts;
}

const POLICIES = [
  ['ROUND_ROBIN', { kind: 'ROUND_ROBIN' }, false],
  ['RANDOM', { kind: 'RANDOM' }, false],
  ['LEAST_REQUEST equal weights', { kind: 'LEAST_REQUEST', choiceCount: 2 }, false],
  ['LEAST_REQUEST unequal weights', { kind: 'LEAST_REQUEST', choiceCount: 2 }, false, (i) => 1 + (i % 4)],
  ['RING_HASH', { kind: 'RING_HASH', minimumRingSize: 1024, maximumRingSize: 8 * 1024 * 1024 }, true],
  ['MAGLEV', { kind: 'MAGLEV', tableSize: 65537 }, true],
];

export async function runLbBenchmarks({ quick }) {
  const s = suite('lb', { quick });

  // Precomputed request hashes to cycle through (the pick must not see one constant key).
  const HASHES = 1024;
  const contexts = Array.from({ length: HASHES }, (_, i) => ({ hash: hash32(`user-${i}@example.com`) }));
  const noHash = { hash: undefined };

  for (const n of [3, 100]) {
    for (const [label, policy, hashed, weight] of POLICIES) {
      const hosts = makeHosts(n, weight);
      const lb = createLoadBalancer(policy, hosts);
      // Sanity: every pick is one of the hosts, and a spread-out policy reaches more than one.
      const seen = new Set();
      for (let i = 0; i < 1000; i++) {
        const h = lb.pick(hashed ? contexts[i % HASHES] : noHash);
        check(h !== undefined && hosts.includes(h), `${label}: pick returned a foreign host`);
        seen.add(h);
      }
      check(seen.size > 1, `${label} over ${n} hosts always picks one host`);
      const name = `${label}, ${n} hosts${hashed ? ', with hash' : ''}`;
      if (hashed) s.add(name, (i) => lb.pick(contexts[i & (HASHES - 1)]).port);
      else s.add(name, () => lb.pick(noHash).port);
    }
  }

  // hash32 on typical hash-policy keys, cycling through 16 distinct values of the same length.
  const headers = Array.from({ length: 16 }, (_, i) => flat(`jason.smith${String(i).padStart(2, '0')}@example.com`));
  const uuids = Array.from({ length: 16 }, (_, i) => flat(`9f2c3a56-1b7e-4c1d-8a0e-5b2f7d9c4e${String(i).padStart(2, '0')}`));
  check(hash32(headers[0]) === hash32(headers[0]) && hash32(headers[0]) !== hash32(headers[1]), 'hash32 is deterministic');
  s.add(`hash32 header value (${headers[0].length} chars)`, (i) => hash32(headers[i & 15]));
  s.add(`hash32 uuid (${uuids[0].length} chars)`, (i) => hash32(uuids[i & 15]));

  return s.run();
}
