/** DestinationRule schema (istio/api networking/v1alpha3/destination_rule.proto). */
import { array, boolean, duration, enumOf, integer, number, object, string, type Infer } from '../schema.js';
import { labelsSchema, portSelectorSchema, workloadSelectorSchema } from './common.js';

const UINT32 = 2 ** 32 - 1;
const INT32 = 2 ** 31 - 1;

const consistentHashSchema = object(
  {
    httpHeaderName: string({ nonEmpty: true }),
    httpCookie: object(
      {
        name: string({ nonEmpty: true }),
        path: string(),
        ttl: duration({ allowZero: true }),
        attributes: array(object({ name: string({ nonEmpty: true }), value: string() }, { required: ['name'] })),
      },
      { required: ['name'] },
    ),
    useSourceIp: boolean(),
    httpQueryParameterName: string({ nonEmpty: true }),
    ringHash: object({ minimumRingSize: integer({ min: 1, max: 8_388_608 }) }),
    maglev: object({
      tableSize: integer({ min: 1, max: 5_000_011 }),
    }),
    minimumRingSize: integer({ min: 1, max: 8_388_608 }),
  },
  {
    exactlyOneOf: [['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName']],
    oneOf: [['ringHash', 'maglev', 'minimumRingSize']],
    check(v, path, issues) {
      const size = v.maglev?.tableSize;
      if (size !== undefined && !isPrime(size)) {
        issues.error([...path, 'maglev', 'tableSize'], `${size} is not a prime number (maglev table sizes must be prime)`);
      }
    },
  },
);

function isPrime(n: number): boolean {
  if (n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}

const localitySchema = object({
  distribute: array(object({ from: string(), to: labelsSchema })),
  failover: array(object({ from: string(), to: string() })),
  failoverPriority: array(string()),
  enabled: boolean(),
});

const loadBalancerSchema = object(
  {
    simple: enumOf(['UNSPECIFIED', 'LEAST_CONN', 'RANDOM', 'PASSTHROUGH', 'ROUND_ROBIN', 'LEAST_REQUEST']),
    consistentHash: consistentHashSchema,
    localityLbSetting: localitySchema,
    warmupDurationSecs: duration({ allowZero: true }),
    warmup: object({
      duration: duration({ minMs: 1 }),
      minimumPercent: number({ min: 0, max: 100 }),
      aggression: number({ min: 1 }),
    }),
  },
  { oneOf: [['simple', 'consistentHash']] },
);
export type LoadBalancerSettings = Infer<typeof loadBalancerSchema>;

const connectionPoolSchema = object({
  tcp: object({
    maxConnections: integer({ min: 0, max: INT32 }),
    connectTimeout: duration({ minMs: 1 }),
    tcpKeepalive: object({
      probes: integer({ min: 0, max: UINT32 }),
      time: duration({ minMs: 1 }),
      interval: duration({ minMs: 1 }),
    }),
    maxConnectionDuration: duration({ minMs: 1 }),
    idleTimeout: duration({ allowZero: true }),
  }),
  http: object({
    http1MaxPendingRequests: integer({ min: 0, max: INT32 }),
    http2MaxRequests: integer({ min: 0, max: INT32 }),
    maxRequestsPerConnection: integer({ min: 0, max: INT32 }),
    maxRetries: integer({ min: 0, max: INT32 }),
    idleTimeout: duration({ allowZero: true }),
    h2UpgradePolicy: enumOf(['DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE']),
    useClientProtocol: boolean(),
    maxConcurrentStreams: integer({ min: 0, max: INT32 }),
  }),
});

const outlierDetectionSchema = object({
  splitExternalLocalOriginErrors: boolean(),
  consecutiveLocalOriginFailures: integer({ min: 0, max: UINT32 }),
  consecutiveGatewayErrors: integer({ min: 0, max: UINT32 }),
  consecutive5xxErrors: integer({ min: 0, max: UINT32 }),
  consecutiveErrors: integer({ min: 0, max: INT32 }),
  interval: duration({ minMs: 1 }),
  baseEjectionTime: duration({ minMs: 1 }),
  maxEjectionPercent: integer({ min: 0, max: 100 }),
  minHealthPercent: integer({ min: 0, max: 100 }),
});

const clientTlsSchema = object(
  {
    mode: enumOf(['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL']),
    clientCertificate: string(),
    privateKey: string(),
    caCertificates: string(),
    credentialName: string(),
    subjectAltNames: array(string()),
    sni: string(),
    insecureSkipVerify: boolean(),
    caCrl: string(),
  },
);

const portTrafficPolicySchema = object(
  {
    port: portSelectorSchema,
    loadBalancer: loadBalancerSchema,
    connectionPool: connectionPoolSchema,
    outlierDetection: outlierDetectionSchema,
    tls: clientTlsSchema,
  },
  { required: ['port'] },
);

const trafficPolicySchema = object({
  loadBalancer: loadBalancerSchema,
  connectionPool: connectionPoolSchema,
  outlierDetection: outlierDetectionSchema,
  tls: clientTlsSchema,
  portLevelSettings: array(portTrafficPolicySchema),
  tunnel: object({ protocol: string(), targetHost: string(), targetPort: integer({ min: 1, max: 65535 }) }),
  proxyProtocol: object({ version: enumOf(['V1', 'V2']) }),
  retryBudget: object({
    percent: number({ min: 0, max: 100 }),
    minRetryConcurrency: integer({ min: 0, max: UINT32 }),
  }),
});
export type TrafficPolicy = Infer<typeof trafficPolicySchema>;

export const destinationRuleSpecSchema = object(
  {
    host: string({ nonEmpty: true }),
    trafficPolicy: trafficPolicySchema,
    subsets: array(
      object(
        {
          name: string({
            nonEmpty: true,
            pattern: /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/,
            patternHint: 'subset names must be DNS-1123 style labels',
          }),
          labels: labelsSchema,
          trafficPolicy: trafficPolicySchema,
        },
        { required: ['name'] },
      ),
    ),
    exportTo: array(string()),
    workloadSelector: workloadSelectorSchema,
  },
  {
    required: ['host'],
    check(v, path, issues) {
      const seen = new Set<string>();
      v.subsets?.forEach((s, i) => {
        if (s.name === undefined) return;
        if (seen.has(s.name)) issues.error([...path, 'subsets', i, 'name'], `duplicate subset name "${s.name}"`);
        seen.add(s.name);
      });
    },
  },
);
export type DestinationRuleSpec = Infer<typeof destinationRuleSpecSchema>;
