/**
 * LocalRateLimit rules → per-route token buckets. Rules are taken in load order across
 * resources; for each route the first rule that matches wins. Rules whose `sourceLabels` do not
 * select this proxy's workload are dropped. A rule is one bucket: every route it wins shares it.
 */
import type { LocalRateLimit, MeshSettings, Route, RouteConfig } from '../../model/index.js';
import { hostMatches, toFqdn } from './hosts.js';
import type { RateLimitRule } from './local-rate-limit.js';
import type { IstioResource } from './resources.js';

export type LocalRateLimitResource = Extract<IstioResource, { kind: 'LocalRateLimit' }>;

interface ResolvedRule {
  readonly limit: LocalRateLimit;
  readonly host: string | undefined;
  readonly port: number | undefined;
  readonly route: string | undefined;
}

function resolveRules(resources: readonly LocalRateLimitResource[], mesh: MeshSettings): ResolvedRule[] {
  const out: ResolvedRule[] = [];
  for (const r of resources) {
    const namespace = r.metadata.namespace ?? mesh.defaultNamespace;
    (r.spec.rules ?? []).forEach((rule: RateLimitRule, i) => {
      const selector = rule.match?.sourceLabels ?? {};
      if (Object.entries(selector).some(([k, v]) => mesh.workloadLabels[k] !== v)) return;
      const bucket = rule.tokenBucket!;
      out.push({
        limit: {
          key: `${r.label}/${rule.name ?? `rules[${i}]`}`,
          maxTokens: bucket.maxTokens!,
          tokensPerFill: bucket.tokensPerFill ?? 1,
          fillIntervalMs: bucket.fillInterval!,
        },
        host: rule.match?.destination?.host === undefined ? undefined : toFqdn(rule.match.destination.host, namespace),
        port: rule.match?.destination?.port,
        route: rule.match?.route,
      });
    });
  }
  return out;
}

/** Returns the route configs with `rateLimit` set on every route a rule covers. */
export function applyRateLimits(
  configs: readonly RouteConfig[],
  resources: readonly LocalRateLimitResource[],
  mesh: MeshSettings,
): RouteConfig[] {
  const rules = resolveRules(resources, mesh);
  if (rules.length === 0) return [...configs];
  return configs.map((rc) => {
    const port = Number(rc.name);
    return {
      ...rc,
      virtualHosts: rc.virtualHosts.map((vh) => ({
        ...vh,
        routes: vh.routes.map((route): Route => {
          const rule = rules.find(
            (r) =>
              (r.port === undefined || r.port === port) &&
              (r.route === undefined || r.route === route.name) &&
              (r.host === undefined || vh.domains.some((d) => d !== '*' && hostMatches(r.host!, d))),
          );
          return rule === undefined ? route : { ...route, rateLimit: rule.limit };
        }),
      })),
    };
  });
}
