/** VirtualService schema (istio/api networking/v1alpha3/virtual_service.proto). */
import { canonicalCidr } from './addresses.js';
import { didYouMean } from '../../core/did-you-mean.js';
import {
  array,
  boolean,
  duration,
  enumOf,
  integer,
  object,
  re2,
  record,
  refine,
  string,
  type Infer,
} from '../schema.js';
import {
  destinationSchema,
  headersSchema,
  labelsSchema,
  percentSchema,
  stringMatchSchema,
} from './common.js';

const HEADER_KEY = { pattern: /^[!#$%&'*+\-.^_`|~0-9a-z@[\]]+$/, hint: 'header names must be lowercase' };

const httpMatchSchema = object({
  name: string(),
  uri: stringMatchSchema,
  scheme: stringMatchSchema,
  method: stringMatchSchema,
  authority: stringMatchSchema,
  headers: record(stringMatchSchema, { key: HEADER_KEY }),
  port: integer({ min: 1, max: 65535 }),
  sourceLabels: labelsSchema,
  gateways: array(string({ nonEmpty: true })),
  queryParams: record(stringMatchSchema),
  ignoreUriCase: boolean(),
  withoutHeaders: record(stringMatchSchema, { key: HEADER_KEY }),
  sourceNamespace: string(),
  statPrefix: string(),
});
export type HttpMatch = Infer<typeof httpMatchSchema>;

const httpRouteDestinationSchema = object(
  {
    destination: destinationSchema,
    weight: integer({ min: 0, max: 2 ** 31 - 1 }),
    headers: headersSchema,
  },
  { required: ['destination'] },
);
export type HttpRouteDestination = Infer<typeof httpRouteDestinationSchema>;

const REDIRECT_CODES = [301, 302, 303, 307, 308];

const redirectSchema = object(
  {
    uri: string(),
    authority: string(),
    port: integer({ min: 1, max: 65535 }),
    derivePort: enumOf(['FROM_PROTOCOL_DEFAULT', 'FROM_REQUEST_PORT']),
    scheme: string({ pattern: /^[A-Za-z][A-Za-z0-9+.-]*$/, patternHint: 'not a URI scheme' }),
    redirectCode: refine(integer({ min: 0, max: 999 }), (code, path, issues) => {
      if (code === 0 || REDIRECT_CODES.includes(code)) return code;
      issues.error(path, `unsupported redirect code ${code}: expected one of ${REDIRECT_CODES.join(', ')}`);
      return undefined;
    }),
  },
  { oneOf: [['port', 'derivePort']] },
);

const directResponseSchema = object(
  {
    status: integer({ min: 200, max: 599 }),
    body: object({ string: string(), bytes: string() }, { oneOf: [['string', 'bytes']] }),
  },
  { required: ['status'] },
);

const rewriteSchema = object(
  {
    uri: string(),
    authority: string(),
    uriRegexRewrite: object(
      { match: re2(), rewrite: string() },
      { required: ['match', 'rewrite'] },
    ),
  },
  { oneOf: [['uri', 'uriRegexRewrite']] },
);

/** Envoy retry_on names (x-envoy-retry-on and x-envoy-retry-grpc-on) that Istio accepts. */
export const RETRY_ON_NAMES = [
  '5xx', 'gateway-error', 'reset', 'reset-before-request', 'connect-failure', 'envoy-ratelimited',
  'retriable-4xx', 'refused-stream', 'retriable-status-codes', 'retriable-headers',
  'http3-post-connect-failure', 'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable',
] as const;

/** A comma list of retry_on names and bare HTTP status codes (Istio parseRetryOn). */
const retryOnSchema = refine(string(), (v, path, issues) => {
  for (const raw of v.split(',')) {
    const part = raw.trim();
    if (part === '') continue;
    if (/^\d+$/.test(part)) {
      const code = Number(part);
      if (code < 100 || code > 599) issues.error(path, `retryOn status code ${part} is out of range (100-599)`);
      continue;
    }
    if (!(RETRY_ON_NAMES as readonly string[]).includes(part)) {
      issues.error(path, `unknown retryOn condition "${part}"${didYouMean(part, RETRY_ON_NAMES)}`);
    }
  }
  return v;
});

const retrySchema = object({
  attempts: integer({ min: 0, max: 2 ** 31 - 1 }),
  perTryTimeout: duration({ minMs: 1 }),
  retryOn: retryOnSchema,
  retryRemoteLocalities: boolean(),
  retryIgnorePreviousHosts: boolean(),
  backoff: duration({ minMs: 1 }),
});

/** gRPC status names (Istio's abort.grpcStatus takes the name, e.g. UNAVAILABLE). */
export const GRPC_STATUS_CODES: Readonly<Record<string, number>> = {
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9, ABORTED: 10, OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, DATA_LOSS: 15, UNAUTHENTICATED: 16,
};

const faultSchema = object({
  delay: object(
    {
      fixedDelay: duration({ minMs: 1 }),
      exponentialDelay: duration({ minMs: 1 }),
      percentage: percentSchema,
      percent: integer({ min: 0, max: 100 }),
    },
    { exactlyOneOf: [['fixedDelay', 'exponentialDelay']] },
  ),
  abort: object(
    {
      httpStatus: integer({ min: 200, max: 599 }),
      grpcStatus: enumOf(Object.keys(GRPC_STATUS_CODES)),
      http2Error: string({ nonEmpty: true }),
      percentage: percentSchema,
    },
    { exactlyOneOf: [['httpStatus', 'grpcStatus', 'http2Error']] },
  ),
});

const corsSchema = object({
  allowOrigins: array(stringMatchSchema),
  allowOrigin: array(string()),
  allowMethods: array(string()),
  allowHeaders: array(string()),
  exposeHeaders: array(string()),
  maxAge: duration({ allowZero: true }),
  allowCredentials: boolean(),
  unmatchedPreflights: enumOf(['UNSPECIFIED', 'FORWARD', 'IGNORE']),
});

const mirrorPolicySchema = object({ destination: destinationSchema, percentage: percentSchema }, { required: ['destination'] });

const httpRouteSchema = object(
  {
    name: string(),
    match: array(httpMatchSchema),
    route: array(httpRouteDestinationSchema),
    redirect: redirectSchema,
    directResponse: directResponseSchema,
    delegate: object({ name: string({ nonEmpty: true }), namespace: string() }, { required: ['name'] }),
    rewrite: rewriteSchema,
    timeout: duration({ allowZero: true, minMs: 1 }),
    retries: retrySchema,
    fault: faultSchema,
    mirror: destinationSchema,
    mirrors: array(mirrorPolicySchema),
    mirrorPercentage: percentSchema,
    mirrorPercent: integer({ min: 0, max: 100 }),
    corsPolicy: corsSchema,
    headers: headersSchema,
  },
  {
    exactlyOneOf: [['route', 'redirect', 'directResponse', 'delegate']],
    check(route, path, issues) {
      if (route.rewrite !== undefined && (route.redirect !== undefined || route.directResponse !== undefined)) {
        issues.error([...path, 'rewrite'], 'rewrite cannot be used together with redirect or directResponse', true);
      }
      if (route.route !== undefined && route.route.length === 0) {
        issues.error([...path, 'route'], 'must have at least one destination');
      }
      if (route.route !== undefined && route.route.length > 1 && route.route.every((d) => (d.weight ?? 0) === 0)) {
        issues.error([...path, 'route'], 'with more than one destination, at least one weight must be greater than 0');
      }
    },
  },
);
export type HttpRoute = Infer<typeof httpRouteSchema>;

const l4MatchSchema = object({
  destinationSubnets: array(string()),
  port: integer({ min: 1, max: 65535 }),
  sourceLabels: labelsSchema,
  gateways: array(string()),
  sourceNamespace: string(),
  sourceSubnet: string(),
});

const tlsMatchSchema = object(
  {
    sniHosts: array(string({ nonEmpty: true }), { minItems: 1 }),
    destinationSubnets: array(string()),
    port: integer({ min: 1, max: 65535 }),
    sourceLabels: labelsSchema,
    gateways: array(string()),
    sourceNamespace: string(),
  },
  { required: ['sniHosts'] },
);

const routeDestinationSchema = object(
  { destination: destinationSchema, weight: integer({ min: 0, max: 2 ** 31 - 1 }) },
  { required: ['destination'] },
);

export const virtualServiceSpecSchema = object(
  {
    hosts: array(string({ nonEmpty: true }), { minItems: 1 }),
    gateways: array(string({ nonEmpty: true })),
    http: array(httpRouteSchema),
    tls: array(object({ match: array(tlsMatchSchema), route: array(routeDestinationSchema) })),
    tcp: array(object({ match: array(l4MatchSchema), route: array(routeDestinationSchema) })),
    exportTo: array(string()),
  },
  {
    // Istio: "virtual service must have at least one host" (only delegates may omit them).
    required: ['hosts'],
    check(vs, path, issues) {
      for (const section of ['tcp', 'tls'] as const) {
        vs[section]?.forEach((rule, i) => {
          const at = [...path, section, i];
          rule.match?.forEach((m, j) =>
            m.destinationSubnets?.forEach((s, k) => {
              if (canonicalCidr(s) === undefined) issues.error([...at, 'match', j, 'destinationSubnets', k], `"${s}" is not an IP address or CIDR range`);
            }),
          );
          const route = rule.route ?? [];
          if (route.length === 0) issues.error([...at, 'route'], 'at least one destination is required');
          else if (route.length > 1 && route.every((d) => (d.weight ?? 0) === 0)) {
            issues.error([...at, 'route'], 'with more than one destination, at least one weight must be greater than 0');
          }
        });
      }
      const mesh = vs.gateways === undefined || vs.gateways.length === 0 || vs.gateways.includes('mesh');
      vs.hosts?.forEach((h, i) => {
        if (mesh && h === '*') {
          issues.error([...path, 'hosts', i], 'wildcard host * is not allowed for virtual services bound to the mesh gateway');
        }
      });
    },
  },
);
export type VirtualServiceSpec = Infer<typeof virtualServiceSpecSchema>;
