/**
 * The HTTP/1 response decoder kept on a pooled connection across borrows: each borrower takes
 * it over (or creates it on a new connection) and becomes its callbacks.
 */
import type { PooledConnection } from '../../upstream/pool/connection-pool.js';
import { ResponseDecoder, type DecoderCallbacks } from '../codec/h1/decoder.js';
import type { ResponseHead } from '../codec/h1/head.js';

/** The connection's response decoder, now reporting to `callbacks`. */
export function takeDecoder(conn: PooledConnection, callbacks: DecoderCallbacks<ResponseHead>, bodylessResponse: boolean): ResponseDecoder {
  let decoder = conn.attachment as ResponseDecoder | null;
  if (decoder === null) {
    decoder = new ResponseDecoder(callbacks);
    conn.attachment = decoder;
  } else {
    decoder.callbacks = callbacks;
    decoder.resume();
  }
  decoder.expectBodylessResponse = bodylessResponse;
  return decoder;
}
