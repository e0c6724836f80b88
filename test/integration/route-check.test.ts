/**
 * `skiff route-check`: Envoy's router_check_tool test pairs from Envoy's own suite must all pass;
 * a failing expectation names the test and the field; Istio YAML shows the rule and cluster.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO, assertBuilt, runCli } from '../helpers/cli.js';

const DATA = join(REPO, '..', 'shared', 'xds-data', 'router_check');
const PAIRS = ['Redirect', 'TestRoutes', 'Timeout', 'Weighted'];

let dir: string;
beforeAll(() => {
  assertBuilt();
  dir = mkdtempSync(join(tmpdir(), 'skiff-route-check-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('skiff route-check on Envoy router_check_tool pairs', () => {
  for (const pair of PAIRS) {
    it(`${pair}: every test passes`, async () => {
      const r = await runCli(['route-check', '--config', join(DATA, `envoy__${pair}.yaml`), '--tests', join(DATA, `envoy__${pair}.golden.proto.json`)]);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/(\d+)\/\1 tests passed/);
      expect(r.code).toBe(0);
    });
  }

  it('--details prints every test name and nothing else when all pass', async () => {
    const r = await runCli(['route-check', '-c', join(DATA, 'envoy__Weighted.yaml'), '-t', join(DATA, 'envoy__Weighted.golden.proto.json'), '--details']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual(['Test_1', 'Test_2', 'Test_3', 'Test_4', 'Test_5', 'Test_6', 'Test_7']);
  });
});

describe('skiff route-check failures', () => {
  const failing = (): string =>
    write(
      'failing.yaml',
      `tests:
- test_name: weighted pick
  input: {authority: www1.lyft.com, path: /foo, method: GET, random_value: 15}
  validate: {cluster_name: cluster2, virtual_host_name: www1}
- test_name: route timeout
  input: {authority: www1.lyft.com, path: /foo, method: GET}
  validate: {timeout: 30s}
- test_name: passes
  input: {authority: www1.lyft.com, path: /foo, method: GET, random_value: 99}
  validate: {cluster_name: cluster3, timeout: 15s}
- test_name: header
  input: {authority: www1.lyft.com, path: /foo, method: GET, additional_request_headers: [{key: x-user, value: a}]}
  validate: {request_header_matches: [{name: x-user, string_match: {exact: b}}]}
`,
    );

  it('exits 1 naming each failing test, the field, expected and actual', async () => {
    const r = await runCli(['route-check', '-c', join(DATA, 'envoy__Weighted.yaml'), '-t', failing()]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('weighted pick FAILED\nexpected: [cluster2], actual: [cluster1], test type: cluster_name\n');
    // Envoy's default route timeout when the route sets none.
    expect(r.stdout).toContain('route timeout FAILED\nexpected: [30s], actual: [15s], test type: timeout\n');
    expect(r.stdout).toContain('header FAILED\nexpected: [x-user {"string_match":{"exact":"b"}}], actual: [x-user: a], test type: request_header_matches\n');
    expect(r.stdout).not.toContain('passes');
    expect(r.stderr).toContain('1/4 tests passed');
  });

  it('--details lists passing tests too', async () => {
    const r = await runCli(['route-check', '-c', join(DATA, 'envoy__Weighted.yaml'), '-t', failing(), '--details']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('weighted pick\nexpected: [cluster2], actual: [cluster1], test type: cluster_name\n');
    expect(r.stdout).toContain('\npasses\nheader\n');
  });

  it('reports test-file problems with the file and field path', async () => {
    const tests = write('bad-tests.yaml', 'tests:\n- test_name: t\n  input: {path: /}\n  validate: {cluster: x}\n');
    const r = await runCli(['route-check', '-c', join(DATA, 'envoy__Weighted.yaml'), '-t', tests]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`${tests}: tests[0].input.authority: required string`);
    expect(r.stdout).toContain(`${tests}: tests[0].validate.cluster: unknown field`);
  });

  it('reports config problems with the file and field path', async () => {
    const config = write('bad-routes.yaml', 'virtual_hosts:\n- name: a\n  domains: [a.example]\n  routes:\n  - match: {prefix: /}\n    route: {timeout: forever}\n');
    const r = await runCli(['route-check', '-c', config, '-t', join(DATA, 'envoy__Weighted.golden.proto.json')]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`^${config.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: virtual_hosts\\[0\\]\\.routes\\[0\\]`, 'm'));
  });
});

describe('skiff route-check on Istio YAML', () => {
  it('passes the README example: the demo canary checked before it is applied', async () => {
    const r = await runCli(['route-check', '-c', join(REPO, 'config', 'demo'), '-t', join(REPO, 'config', 'route-check', 'demo-canary.yaml')]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toContain('3/3 tests passed');
  });

  it('shows the VirtualService rule and destination cluster of each request', async () => {
    const tests = write(
      'istio.yaml',
      `tests:
- test_name: jason
  input: {authority: 'reviews:9080', path: /reviews/1, method: GET, additional_request_headers: [{key: end-user, value: jason}]}
  validate: {cluster_name: 'outbound|9080|v2|reviews.default.svc.cluster.local'}
- test_name: canary 80%
  input: {authority: 'reviews:9080', path: /reviews/1, method: GET, random_value: 79}
  validate: {cluster_name: 'outbound|9080|v1|reviews.default.svc.cluster.local'}
- test_name: canary 20%
  input: {authority: 'reviews:9080', path: /reviews/1, method: GET, random_value: 80}
  validate: {cluster_name: 'outbound|9080|v3|reviews.default.svc.cluster.local'}
`,
    );
    const r = await runCli(['route-check', '-c', join(REPO, 'config', 'demo'), '-t', tests, '--details']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('jason\n  route "jason" in virtual host reviews.default.svc.cluster.local:9080 -> cluster outbound|9080|v2|reviews.default.svc.cluster.local\n');
    expect(r.stdout).toContain('canary 20%\n  route "canary" in virtual host reviews.default.svc.cluster.local:9080 -> cluster outbound|9080|v3|');
  });
});
