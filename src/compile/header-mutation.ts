/**
 * Compiled header mutations: Envoy's headers_to_add (append or overwrite) and headers_to_remove.
 * Values with substitution commands (core/header-format) are evaluated per request from the
 * request's record; a command that yields an empty value adds nothing (Envoy's default without
 * keep_empty_value). Plain values cost nothing extra.
 */
import { hostname } from 'node:os';
import { parseHeaderFormat, type HeaderFormatPart } from '../core/header-format.js';
import type { HeaderMutation } from '../model/route.js';
import { pseudoHeaderValue, type MutableHeaders } from './request-view.js';
import { utf8ByteString } from './string-matcher.js';

/**
 * What substitution commands read: the downstream connection and the request as received.
 * The data path's StreamInfo has this shape.
 */
export interface HeaderContext {
  readonly downstreamRemoteAddress: string;
  readonly downstreamRemotePort: number;
  readonly downstreamLocalAddress: string;
  readonly downstreamLocalPort: number;
  readonly request: {
    readonly method: string;
    readonly path: string;
    readonly authority: string;
    readonly scheme: string;
    readonly httpVersion: '1.0' | '1.1' | '2';
    readonly headers: { get(name: string): string | undefined };
  } | null;
}

export type HeaderMutator = (headers: MutableHeaders, context: HeaderContext) => void;

type Value = string | ((context: HeaderContext) => string);

const HOSTNAME = hostname();

/** Returns null for an empty mutation so callers can skip it with one check. */
export function compileHeaderMutation(m: HeaderMutation): HeaderMutator | null {
  if (m.add.length === 0 && m.remove.length === 0) return null;
  const remove = m.remove.map((n) => n.toLowerCase());
  const add = m.add.map((h) => ({ name: h.name.toLowerCase(), value: compileValue(h.value), append: h.append }));
  if (add.every((h) => typeof h.value === 'string')) {
    // Envoy removes first, then adds in list order.
    return (headers) => {
      for (const n of remove) headers.remove(n);
      for (const h of add) {
        if (h.append) headers.addValue(h.name, h.value as string);
        else headers.set(h.name, h.value as string);
      }
    };
  }
  // With commands, as Envoy: remove, then evaluate every value (against the headers as they are
  // after the removals, before any of this list's additions), then add.
  return (headers, context) => {
    for (const n of remove) headers.remove(n);
    const values = add.map((h) => (typeof h.value === 'string' ? h.value : h.value(context)));
    add.forEach((h, i) => {
      const value = values[i]!;
      if (value === '' && typeof h.value !== 'string') return;
      if (h.append) headers.addValue(h.name, value);
      else headers.set(h.name, value);
    });
  };
}

/** Values go on the wire as UTF-8 bytes (headers are byte strings in the data path). */
function compileValue(raw: string): Value {
  const parsed = parseHeaderFormat(raw);
  // Translators refuse malformed values; one that got here anyway is sent as written.
  if ('error' in parsed) return utf8ByteString(raw);
  const parts = parsed.parts.map((p) => (typeof p === 'string' ? utf8ByteString(p) : p));
  if (parts.length === 1 && typeof parts[0] === 'string') return parts[0];
  return (context) => {
    let out = '';
    for (const p of parts) out += typeof p === 'string' ? p : evaluate(p, context);
    return out;
  };
}

function evaluate(part: Exclude<HeaderFormatPart, string>, c: HeaderContext): string {
  switch (part.op) {
    case 'DOWNSTREAM_REMOTE_ADDRESS':
    case 'DOWNSTREAM_DIRECT_REMOTE_ADDRESS':
      return withPort(c.downstreamRemoteAddress, c.downstreamRemotePort);
    case 'DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT':
    case 'DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT':
      return c.downstreamRemoteAddress;
    case 'DOWNSTREAM_REMOTE_PORT':
      return String(c.downstreamRemotePort);
    case 'DOWNSTREAM_LOCAL_ADDRESS':
      return withPort(c.downstreamLocalAddress, c.downstreamLocalPort);
    case 'DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT':
      return c.downstreamLocalAddress;
    case 'DOWNSTREAM_LOCAL_PORT':
      return String(c.downstreamLocalPort);
    case 'PROTOCOL':
      return c.request === null ? '' : c.request.httpVersion === '2' ? 'HTTP/2' : `HTTP/${c.request.httpVersion}`;
    case 'HOSTNAME':
      return HOSTNAME;
    case 'REQ':
      for (const name of part.names) {
        const v = requestHeader(c, name);
        if (v !== undefined && v !== '') return v;
      }
      return '';
  }
}

/** A request header by name; the pseudo-headers read the request line. */
function requestHeader(c: HeaderContext, name: string): string | undefined {
  const r = c.request;
  return r === null ? undefined : (pseudoHeaderValue(r, name) ?? r.headers.get(name));
}

const withPort = (address: string, port: number): string => (address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`);
