/**
 * skiff's local rate limiting kind (apiVersion skiff.dev/v1alpha1, kind LocalRateLimit). Istio
 * reaches Envoy's local_ratelimit filter only through EnvoyFilter; this kind says the same in a
 * few lines: ordered rules, the first that matches a route wins, each rule one token bucket.
 *
 *   spec:
 *     rules:
 *     - name: reviews-to-ratings
 *       match: {sourceLabels: {app: reviews}, destination: {host: ratings}}
 *       tokenBucket: {maxTokens: 1, tokensPerFill: 1, fillInterval: 1s}
 *     - name: ratings
 *       match: {destination: {host: ratings}}
 *       tokenBucket: {maxTokens: 100, tokensPerFill: 100, fillInterval: 1s}
 *     - name: default
 *       tokenBucket: {maxTokens: 5000, tokensPerFill: 5000, fillInterval: 1s}
 *
 * `sourceLabels` select the workload this proxy runs for (MeshConfig workloadLabels);
 * `destination` the host (short names resolve in the resource's namespace) and port a request
 * addresses; `route` a VirtualService route by name. A rule without match covers every route.
 */
import { array, duration, integer, object, record, string, type Infer } from '../schema.js';

const tokenBucketSchema = object(
  {
    maxTokens: integer({ min: 1, max: 2 ** 32 - 1 }),
    tokensPerFill: integer({ min: 1, max: 2 ** 32 - 1 }),
    fillInterval: duration({ minMs: 1 }),
  },
  { required: ['maxTokens', 'fillInterval'] },
);

const ruleSchema = object(
  {
    name: string({ nonEmpty: true }),
    match: object({
      sourceLabels: record(string()),
      destination: object({ host: string({ nonEmpty: true }), port: integer({ min: 1, max: 65535 }) }),
      route: string({ nonEmpty: true }),
    }),
    tokenBucket: tokenBucketSchema,
  },
  { required: ['tokenBucket'] },
);

export const localRateLimitSpecSchema = object(
  { rules: array(ruleSchema, { minItems: 1 }) },
  { required: ['rules'] },
);
export type LocalRateLimitSpec = Infer<typeof localRateLimitSpecSchema>;
export type RateLimitRule = NonNullable<LocalRateLimitSpec['rules']>[number];
