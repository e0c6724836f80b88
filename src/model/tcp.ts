/** Opaque TCP destinations: where a CONNECT tunnel (and, later, a TCP listener) sends bytes. */

export interface TcpService {
  /** Same name forms as the service's HTTP virtual host domains. */
  readonly domains: readonly string[];
  readonly port: number;
  readonly cluster: string;
}
