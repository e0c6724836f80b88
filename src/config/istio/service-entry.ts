/** ServiceEntry schema (istio/api networking/v1alpha3/service_entry.proto). */
import { canonicalCidr } from './addresses.js';
import { didYouMean } from '../../core/did-you-mean.js';
import { array, enumOf, integer, object, record, string, type Infer, type Schema } from '../schema.js';
import { labelsSchema } from './common.js';

export const PORT_PROTOCOLS = ['HTTP', 'HTTPS', 'GRPC', 'GRPC-WEB', 'HTTP2', 'MONGO', 'MYSQL', 'REDIS', 'TCP', 'TLS', 'UDP'] as const;
export type PortProtocol = (typeof PORT_PROTOCOLS)[number];

/** Istio's protocol.Parse is case-insensitive ("http", "gRPC-Web"); the upper-case name is kept. */
const protocolSchema: Schema<PortProtocol> = {
  expected: `one of ${PORT_PROTOCOLS.join(', ')}`,
  parse(v, path, issues) {
    const upper = typeof v === 'string' ? v.toUpperCase() : undefined;
    const known = PORT_PROTOCOLS.find((p) => p === upper);
    return known ?? enumOf(PORT_PROTOCOLS).parse(v, path, issues);
  },
};

const portSchema = object(
  {
    number: integer({ min: 1, max: 65535 }),
    protocol: protocolSchema,
    name: string({ nonEmpty: true }),
    targetPort: integer({ min: 1, max: 65535 }),
  },
  { required: ['number'] },
);

const endpointSchema = object({
  address: string(),
  ports: record(integer({ min: 1, max: 65535 })),
  labels: labelsSchema,
  network: string(),
  locality: string(),
  weight: integer({ min: 0, max: 2 ** 32 - 1 }),
  serviceAccount: string(),
});
export type WorkloadEntrySpec = Infer<typeof endpointSchema>;

/** Protocols whose connections name their host (HTTP Host / TLS SNI), as Istio's IsHTTP or IsTLS. */
const DISTINGUISHABLE = new Set<PortProtocol>(['HTTP', 'HTTPS', 'GRPC', 'GRPC-WEB', 'HTTP2', 'TLS']);

export const serviceEntrySpecSchema = object(
  {
    hosts: array(string({ nonEmpty: true }), { minItems: 1, maxItems: 256 }),
    addresses: array(string({ nonEmpty: true })),
    ports: array(portSchema),
    location: enumOf(['MESH_EXTERNAL', 'MESH_INTERNAL']),
    resolution: enumOf(['NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN', 'DYNAMIC_DNS']),
    endpoints: array(endpointSchema),
    workloadSelector: object({ labels: labelsSchema }),
    exportTo: array(string()),
    subjectAltNames: array(string()),
  },
  {
    required: ['hosts'],
    oneOf: [['endpoints', 'workloadSelector']],
    check(v, path, issues) {
      v.hosts?.forEach((h, i) => {
        if (h === '*') issues.error([...path, 'hosts', i], 'a ServiceEntry host cannot be "*"');
      });
      const numbers = new Set<number>();
      const names = new Set<string>();
      v.ports?.forEach((p, i) => {
        if (p.number !== undefined && numbers.has(p.number)) issues.error([...path, 'ports', i, 'number'], `duplicate port ${p.number}`);
        if (p.number !== undefined) numbers.add(p.number);
        if (p.name !== undefined && names.has(p.name)) issues.error([...path, 'ports', i, 'name'], `duplicate port name "${p.name}"`);
        if (p.name !== undefined) names.add(p.name);
      });
      v.addresses?.forEach((a, i) => {
        if (canonicalCidr(a) === undefined) issues.error([...path, 'addresses', i], `"${a}" is not an IP address or CIDR range`);
      });
      const resolution = v.resolution ?? 'NONE';
      // The checks below follow Istio's ValidateServiceEntry.
      if (resolution === 'NONE' && v.endpoints !== undefined && v.endpoints.length > 0) {
        issues.error([...path, 'endpoints'], 'no endpoints should be provided for resolution NONE (traffic goes to the original destination)');
      }
      if (resolution !== 'NONE' && resolution !== 'STATIC') {
        v.addresses?.forEach((a, i) => {
          if (a.includes('/')) issues.error([...path, 'addresses', i], `CIDR addresses are allowed only for resolution NONE or STATIC, not ${resolution}`);
        });
      }
      if ((resolution === 'DNS' || resolution === 'DNS_ROUND_ROBIN') && (v.endpoints ?? []).length === 0) {
        v.hosts?.forEach((h, i) => {
          if (h.includes('*')) {
            issues.error([...path, 'hosts', i], `hosts must be FQDNs when resolution ${resolution} has no endpoints: "${h}" cannot be resolved`);
          }
        });
      }
      if (resolution !== 'NONE' && (v.hosts ?? []).length > 1) {
        const distinguishable = (v.ports ?? []).every((p) => p.protocol !== undefined && DISTINGUISHABLE.has(p.protocol));
        if (!distinguishable) {
          issues.error([...path, 'hosts'], 'multiple hosts need HTTP or TLS ports (with a protocol set) unless resolution is NONE: plain TCP cannot tell the hosts apart');
        }
      }
      v.endpoints?.forEach((e, i) => {
        if (e.address === undefined || e.address === '') {
          issues.error([...path, 'endpoints', i, 'address'], 'required field is missing');
        } else if (resolution === 'STATIC' && !isIpAddress(e.address) && !e.address.startsWith('unix://')) {
          issues.error(
            [...path, 'endpoints', i, 'address'],
            `"${e.address}" is not an IP address: resolution STATIC needs IP endpoints (use resolution DNS for names)`,
          );
        }
        for (const name of Object.keys(e.ports ?? {})) {
          if (!names.has(name)) {
            issues.error([...path, 'endpoints', i, 'ports', name], `endpoint port "${name}" is not defined by the service entry's ports${didYouMean(name, names)}`, true);
          }
        }
      });
      if (resolution === 'STATIC' && v.endpoints === undefined && v.workloadSelector === undefined) {
        issues.warn([...path, 'resolution'], 'resolution STATIC with no endpoints: requests will get 503 no healthy upstream');
      }
    },
  },
);
export type ServiceEntrySpec = Infer<typeof serviceEntrySpecSchema>;

export function isIpAddress(s: string): boolean {
  return /^(\d{1,3})(\.\d{1,3}){3}$/.test(s) ? s.split('.').every((o) => Number(o) <= 255) : /^[0-9a-fA-F:.]+$/.test(s) && s.includes(':');
}
