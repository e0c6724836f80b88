/**
 * AuthorizationPolicy on opaque connections (Envoy's network RBAC filter): a connection is
 * checked when it is accepted and again after every config change, and closed as soon as the
 * policies in force no longer allow it.
 */
import type { Socket } from 'node:net';
import type { AuthzAttributes } from '../compile/authorization.js';
import type { Snapshot } from '../compile/snapshot.js';
import { unmappedAddress } from '../core/addresses.js';

/** Who is connecting: the client's address, its certificate's principal name and SNI when known. */
export interface ConnectionPeer {
  readonly remote: string;
  readonly identity?: string;
  readonly sni?: string | undefined;
}

/** Extra conditions a listener puts on a connection (a sidecar: the port's mTLS mode). */
export type ConnectionRule = (attrs: AuthzAttributes, mtls: boolean, snapshot: Snapshot) => boolean;

export class ConnectionAuthorizer {
  readonly #open = new Map<Socket, { readonly attrs: AuthzAttributes; readonly mtls: boolean }>();
  readonly #rule: ConnectionRule;

  constructor(rule: ConnectionRule = () => true) {
    this.#rule = rule;
  }

  /** Checks a new connection to `destination`; closes it and returns false when it is denied. */
  admit(socket: Socket, peer: ConnectionPeer, destination: { readonly address: string; readonly port: number }, snapshot: Snapshot): boolean {
    const source = unmappedAddress(peer.remote);
    const attrs: AuthzAttributes = {
      sourceIp: source,
      remoteIp: source,
      principal: peer.identity,
      destinationIp: destination.address,
      destinationPort: destination.port,
      ...(peer.sni !== undefined ? { sni: peer.sni } : {}),
    };
    const mtls = peer.identity !== undefined;
    if (!this.#allowed(attrs, mtls, snapshot)) {
      socket.destroy();
      return false;
    }
    this.#open.set(socket, { attrs, mtls });
    socket.once('close', () => this.#open.delete(socket));
    return true;
  }

  /** After a config change: closes the connections the new snapshot no longer allows. */
  recheck(snapshot: Snapshot): void {
    for (const [socket, c] of this.#open) if (!this.#allowed(c.attrs, c.mtls, snapshot)) socket.destroy();
  }

  #allowed(attrs: AuthzAttributes, mtls: boolean, snapshot: Snapshot): boolean {
    if (!this.#rule(attrs, mtls, snapshot)) return false;
    return !snapshot.tcpAuthorization.enabled || snapshot.tcpAuthorization.check(attrs).allowed;
  }
}
