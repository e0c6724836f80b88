/** ServiceEntry schema (istio/api networking/v1alpha3/service_entry.proto). */
import { array, enumOf, integer, object, record, string, type Infer } from '../schema.js';
import { labelsSchema } from './common.js';

export const PORT_PROTOCOLS = ['HTTP', 'HTTPS', 'GRPC', 'GRPC-WEB', 'HTTP2', 'MONGO', 'TCP', 'TLS', 'UDP'] as const;

const portSchema = object(
  {
    number: integer({ min: 1, max: 65535 }),
    protocol: enumOf(PORT_PROTOCOLS),
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
      v.ports?.forEach((p, i) => {
        if (p.number === undefined) return;
        if (numbers.has(p.number)) issues.error([...path, 'ports', i, 'number'], `duplicate port ${p.number}`);
        numbers.add(p.number);
      });
      const resolution = v.resolution ?? 'NONE';
      v.endpoints?.forEach((e, i) => {
        if (e.address === undefined || e.address === '') {
          issues.error([...path, 'endpoints', i, 'address'], 'required field is missing');
        } else if (resolution === 'STATIC' && !isIpAddress(e.address) && !e.address.startsWith('unix://')) {
          issues.error(
            [...path, 'endpoints', i, 'address'],
            `"${e.address}" is not an IP address: resolution STATIC needs IP endpoints (use resolution DNS for names)`,
          );
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
