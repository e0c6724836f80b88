/**
 * In-test trace collectors: a JSON receiver on 127.0.0.1 that stands for an OTLP/HTTP collector
 * (/v1/traces) or a Zipkin one (/api/v2/spans), and the decoding of what it received.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A span as OTLP/HTTP JSON carries it. */
export interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  traceState?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string | number;
  endTimeUnixNano: string | number;
  attributes: { key: string; value: { stringValue?: string } }[];
  status?: { code?: number };
}

/** A span as received, with the `service.name` of the resource it came under and its attributes by key. */
export interface ReceivedSpan extends OtlpSpan {
  service: string;
  tags: Record<string, string | undefined>;
}

/** The body of one OTLP/HTTP JSON export request. */
export interface OtlpBody {
  resourceSpans: {
    resource: { attributes: { key: string; value: { stringValue?: string } }[] };
    scopeSpans: { spans: OtlpSpan[] }[];
  }[];
}

/** A span as Zipkin v2 JSON carries it. */
export interface ZipkinSpan {
  traceId: string;
  id: string;
  parentId?: string;
  kind?: string;
  name: string;
  timestamp: number;
  duration: number;
  localEndpoint: { serviceName: string };
  tags: Record<string, string>;
}

export interface Collector {
  readonly port: number;
  /** `http://127.0.0.1:<port><path>`: where an exporter sends to. */
  readonly url: string;
  /** Parsed JSON bodies, in arrival order. */
  readonly bodies: unknown[];
  readonly paths: string[];
  close(): Promise<void>;
}

/**
 * A JSON receiver on 127.0.0.1: keeps each request's path and parsed body, and answers `status`
 * (200 with `{}`, anything else with an empty body).
 */
export async function startCollector(path = '/v1/traces', status = 200): Promise<Collector> {
  const bodies: unknown[] = [];
  const paths: string[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      paths.push(req.url ?? '');
      bodies.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(status === 200 ? '{}' : '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}${path}`,
    bodies,
    paths,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * The spans of OTLP/HTTP JSON bodies in arrival order, each with its resource's `service.name`
 * ('' when it has none) and its attributes as tags; and the `service.name` of every resource
 * that has one.
 */
export function otlpSpans(bodies: unknown[]): { spans: ReceivedSpan[]; serviceNames: string[] } {
  const spans: ReceivedSpan[] = [];
  const serviceNames: string[] = [];
  for (const body of bodies as OtlpBody[]) {
    for (const rs of body.resourceSpans) {
      const name = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue;
      if (name !== undefined) serviceNames.push(name);
      for (const ss of rs.scopeSpans) {
        for (const s of ss.spans) {
          spans.push({ ...s, service: name ?? '', tags: Object.fromEntries(s.attributes.map((a) => [a.key, a.value.stringValue])) });
        }
      }
    }
  }
  return { spans, serviceNames };
}

/** The spans of Zipkin v2 JSON bodies (each an array of spans), in arrival order. */
export function zipkinSpans(bodies: unknown[]): ZipkinSpan[] {
  return bodies.flat() as ZipkinSpan[];
}
