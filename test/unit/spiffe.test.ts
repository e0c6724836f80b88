import { describe, expect, it } from 'vitest';
import { parseSpiffeId, principalOf, spiffeId } from '../../src/security/spiffe.js';

describe('spiffeId', () => {
  it('formats Istio workload identities', () => {
    expect(spiffeId('cluster.local', 'default', 'bookinfo-productpage')).toBe('spiffe://cluster.local/ns/default/sa/bookinfo-productpage');
    expect(spiffeId('td-1.example_x', 'ns.1', 'SA_x-y')).toBe('spiffe://td-1.example_x/ns/ns.1/sa/SA_x-y');
  });

  it.each([
    ['', 'default', 'sa', /trust domain must not be empty/],
    ['Cluster.Local', 'default', 'sa', /trust domain/],
    ['cluster.local:8080', 'default', 'sa', /trust domain/],
    ['cluster.local', '', 'sa', /namespace must not be empty/],
    ['cluster.local', 'a/b', 'sa', /namespace/],
    ['cluster.local', '..', 'sa', /namespace/],
    ['cluster.local', 'default', '', /service account must not be empty/],
    ['cluster.local', 'default', 'a b', /service account/],
  ])('rejects (%j, %j, %j)', (td, ns, sa, message) => {
    expect(() => spiffeId(td, ns, sa)).toThrow(RangeError);
    expect(() => spiffeId(td, ns, sa)).toThrow(message);
  });
});

describe('parseSpiffeId', () => {
  it('parses what spiffeId formats', () => {
    expect(parseSpiffeId('spiffe://cluster.local/ns/default/sa/web')).toEqual({ trustDomain: 'cluster.local', namespace: 'default', serviceAccount: 'web' });
    expect(parseSpiffeId(spiffeId('foo.bar', 'istio-system', 'istio-ingressgateway-service-account'))).toEqual({
      trustDomain: 'foo.bar',
      namespace: 'istio-system',
      serviceAccount: 'istio-ingressgateway-service-account',
    });
  });

  it.each([
    '',
    'cluster.local/ns/default/sa/web',
    'SPIFFE://cluster.local/ns/default/sa/web',
    'Spiffe://cluster.local/ns/default/sa/web',
    'https://cluster.local/ns/default/sa/web',
    'spiffe:/cluster.local/ns/default/sa/web',
    'spiffe://cluster.local',
    'spiffe://cluster.local/',
    'spiffe://cluster.local/ns/default',
    'spiffe://cluster.local/ns/default/sa',
    'spiffe://cluster.local/ns/default/sa/',
    'spiffe://cluster.local/ns//sa/web',
    'spiffe:///ns/default/sa/web',
    'spiffe://cluster.local/ns/default/sa/web/',
    'spiffe://cluster.local/ns/default/sa/web/extra',
    'spiffe://cluster.local/sa/web/ns/default',
    'spiffe://cluster.local/NS/default/SA/web',
    'spiffe://cluster.local/ns/default/sa/web?x=1',
    'spiffe://cluster.local/ns/default/sa/web#frag',
    'spiffe://cluster.local/ns/de%2Ffault/sa/web',
    'spiffe://cluster.local:443/ns/default/sa/web',
    'spiffe://user@cluster.local/ns/default/sa/web',
    'spiffe://cluster.local/ns/../sa/web',
    'spiffe://cluster.local/ns/default/sa/web ',
  ])('rejects %j', (uri) => {
    expect(parseSpiffeId(uri)).toBeUndefined();
  });
});

describe('principalOf', () => {
  it('drops the scheme, as AuthorizationPolicy principals are written', () => {
    expect(principalOf('spiffe://cluster.local/ns/default/sa/sleep')).toBe('cluster.local/ns/default/sa/sleep');
    expect(principalOf({ trustDomain: 'td', namespace: 'ns1', serviceAccount: 'sa1' })).toBe('td/ns/ns1/sa/sa1');
  });

  it('is undefined for a URI that is not a workload identity', () => {
    expect(principalOf('spiffe://cluster.local/other/path')).toBeUndefined();
    expect(principalOf('cluster.local/ns/default/sa/sleep')).toBeUndefined();
  });
});
