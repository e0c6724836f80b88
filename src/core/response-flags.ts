/**
 * Envoy response flags (access-log `%RESPONSE_FLAGS%`): short codes that say why a request ended
 * the way it did. Telemetry labels and logs use these exact strings.
 */
export const ResponseFlag = {
  NoHealthyUpstream: 'UH',
  UpstreamConnectionFailure: 'UF',
  UpstreamOverflow: 'UO',
  NoRouteFound: 'NR',
  UpstreamRetryLimitExceeded: 'URX',
  NoClusterFound: 'NC',
  DownstreamConnectionTermination: 'DC',
  UpstreamRequestTimeout: 'UT',
  LocalReset: 'LR',
  UpstreamRemoteReset: 'UR',
  UpstreamConnectionTermination: 'UC',
  DelayInjected: 'DI',
  FaultInjected: 'FI',
  RateLimited: 'RL',
  DownstreamProtocolError: 'DPE',
  UpstreamProtocolError: 'UPE',
  StreamIdleTimeout: 'SI',
} as const;

export type ResponseFlagCode = (typeof ResponseFlag)[keyof typeof ResponseFlag];

/** Envoy's ALL_RESPONSE_STRINGS_FLAGS order, in which several flags are comma-joined. */
const FLAG_ORDER: readonly string[] = [
  'LH', 'UH', 'UT', 'LR', 'UR', 'UF', 'UC', 'UO', 'NR', 'DI', 'FI', 'RL', 'UAEX', 'RLSE', 'DC', 'URX', 'SI', 'IH', 'DPE',
  'UMSDR', 'RFCF', 'NFCF', 'DT', 'UPE', 'NC', 'OM', 'DF', 'DO',
];

/**
 * Flags as Envoy prints them everywhere (access logs, the response_flags label, span tags):
 * comma-joined in Envoy's order, `-` when there are none.
 */
export function flagsText(flags: readonly ResponseFlagCode[] | null): string {
  if (flags === null || flags.length === 0) return '-';
  if (flags.length === 1) return flags[0]!;
  return [...flags].sort((a, b) => FLAG_ORDER.indexOf(a) - FLAG_ORDER.indexOf(b)).join(',');
}
