/**
 * The gRPC side of P9: the echo service (one unary method that answers with the request's
 * bytes, no protobuf), the request body h2load sends, and the checks that a target answers
 * gRPC calls with grpc-status 0 (h2load only sees HTTP statuses, and a failed gRPC call is an
 * HTTP 200 whose trailers carry the error).
 */
import { connect } from 'node:http2';
import grpc from '@grpc/grpc-js';

export const ECHO_PATH = '/bench.Echo/Echo';

const bytes = (b) => b;

/** The service definition, shared by the server (grpc-echo.mjs) and the check client. */
export const ECHO_SERVICE = {
  Echo: { path: ECHO_PATH, requestStream: false, responseStream: false, requestSerialize: bytes, requestDeserialize: bytes, responseSerialize: bytes, responseDeserialize: bytes },
};

/** Headers h2load sends with each call (besides :authority): a gRPC POST. */
export const GRPC_HEADERS = ['content-type: application/grpc', 'te: trailers'];

/** A gRPC length-prefixed message: flag 0 (not compressed), 4-byte big-endian length, payload. */
export function grpcFrame(payload) {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(payload.length, 1);
  return Buffer.concat([header, payload]);
}

/** One unary call with the @grpc/grpc-js client; resolves { code, details, echoed }. */
export function grpcJsCall(port, authority, payload) {
  const Client = grpc.makeGenericClientConstructor(ECHO_SERVICE, 'Echo');
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': authority });
  return new Promise((resolve) => {
    client.Echo(payload, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (err, value) => {
      client.close();
      resolve({ code: err ? err.code : grpc.status.OK, details: err?.details ?? '', echoed: Buffer.isBuffer(value) && value.equals(payload) });
    });
  });
}

/**
 * The request h2load sends (same headers and body), once, with node:http2; resolves
 * { status, grpcStatus, echoed }. grpcStatus comes from the trailers, or from the headers of a
 * trailers-only response; NaN when there is none.
 */
export function rawGrpcCall(port, authority, body) {
  return new Promise((resolve) => {
    const session = connect(`http://127.0.0.1:${port}`);
    const fail = (err) => {
      session.destroy();
      resolve({ status: 0, grpcStatus: NaN, echoed: false, error: String(err) });
    };
    session.on('error', fail);
    const req = session.request({ ':method': 'POST', ':path': ECHO_PATH, ':authority': authority, 'content-type': 'application/grpc', te: 'trailers' });
    req.setTimeout(5000, () => fail('timeout'));
    req.on('error', fail);
    let headers = {};
    let trailers = {};
    const chunks = [];
    req.on('response', (h) => (headers = h));
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      session.close();
      resolve({ status: headers[':status'], grpcStatus: Number(trailers['grpc-status'] ?? headers['grpc-status'] ?? NaN), echoed: Buffer.concat(chunks).equals(body) });
    });
    req.end(body);
  });
}
