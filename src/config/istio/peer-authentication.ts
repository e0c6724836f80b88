/** The PeerAuthentication (security.istio.io) schema; peer-authn-policy.ts resolves the policies. */
import { enumOf, object, record, type Infer } from '../schema.js';
import { workloadSelectorSchema } from './common.js';

export const modeSchema = enumOf(['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT']);

export const peerAuthenticationSpecSchema = object(
  {
    selector: workloadSelectorSchema,
    mtls: object({ mode: modeSchema }),
    portLevelMtls: record(object({ mode: modeSchema }), {
      key: { pattern: /^[1-9]\d{0,4}$/, hint: 'a port number' },
    }),
  },
  {
    check(spec, path, issues) {
      const selected = Object.keys(spec.selector?.matchLabels ?? {}).length > 0;
      if (spec.portLevelMtls !== undefined && !selected) {
        issues.error([...path, 'portLevelMtls'], 'portLevelMtls requires a workload selector');
      }
      for (const port of Object.keys(spec.portLevelMtls ?? {})) {
        if (Number(port) > 65535) issues.error([...path, 'portLevelMtls', port], 'port must be 1-65535');
      }
    },
  },
);
export type PeerAuthenticationSpec = Infer<typeof peerAuthenticationSpecSchema>;

