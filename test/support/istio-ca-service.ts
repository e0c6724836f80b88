/**
 * Istio's CA service (`istio.v1.auth.IstioCertificateService/CreateCertificate`) for tests, as
 * istiod serves it on 15012: the caller's bearer token must match, and the CSR is signed by the
 * test root with the SANs it asks for. Added to a grpc-js server (the test ADS server's).
 */
import * as grpc from '@grpc/grpc-js';
import { signCertificateRequest, type CaKeyPair } from '../../src/security/ca.js';
import { CREATE_CERTIFICATE, IstioCaMessages } from '../../src/security/istio-ca-client.js';

const Request = IstioCaMessages.request;
const Response = IstioCaMessages.response;

export interface CaCall {
  readonly clusterId: string;
  readonly csr: string;
  readonly ttlSeconds: number;
}

/**
 * Adds the CA service; `calls` records each accepted request. `ttlSeconds` overrides the
 * lifetime asked for, as a CA with a shorter maximum does.
 */
export function addIstioCaService(server: grpc.Server, ca: CaKeyPair, token: string, calls: CaCall[], ttlSeconds?: number): void {
  const service: grpc.ServiceDefinition = {
    CreateCertificate: {
      path: CREATE_CERTIFICATE,
      requestStream: false,
      responseStream: false,
      requestSerialize: () => Buffer.alloc(0),
      requestDeserialize: (b: Buffer) => Request.toObject(Request.decode(b), { longs: Number }) as { csr: string; validity_duration: number },
      responseSerialize: (r: { cert_chain: string[] }) => Buffer.from(Response.encode(Response.fromObject(r)).finish()),
      responseDeserialize: () => ({}),
    },
  };
  server.addService(service, {
    CreateCertificate: (call: grpc.ServerUnaryCall<{ csr: string; validity_duration: number }, unknown>, callback: grpc.sendUnaryData<{ cert_chain: string[] }>) => {
      if (call.metadata.get('authorization')[0] !== `Bearer ${token}`) {
        callback({ code: grpc.status.UNAUTHENTICATED, details: 'authenticate failure' });
        return;
      }
      try {
        const signed = signCertificateRequest(ca, call.request.csr, (ttlSeconds ?? (call.request.validity_duration || 86_400)) / 3600);
        calls.push({ clusterId: String(call.metadata.get('clusterid')[0] ?? ''), csr: call.request.csr, ttlSeconds: call.request.validity_duration });
        callback(null, { cert_chain: [signed.certChainPem, signed.rootCertPem] });
      } catch (err) {
        callback({ code: grpc.status.INVALID_ARGUMENT, details: (err as Error).message });
      }
    },
  });
}
