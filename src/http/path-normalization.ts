/**
 * Istio's default path normalization (meshConfig.pathNormalization BASE, Envoy's
 * `normalize_path`): percent-encoded unreserved characters are decoded and `.`/`..` segments
 * removed (RFC 3986 §6.2.2 and §5.2.4), so that policies and routes see the path the
 * application will act on. A fragment is dropped; the query string is left as it is. Other escapes (`%2F` included)
 * stay encoded, as in Envoy's default.
 */

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

function decodeUnreserved(path: string): string {
  if (!path.includes('%')) return path;
  return path.replace(/%([0-9A-Fa-f]{2})/g, (escape, hex: string) => {
    const c = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(c) ? c : escape.toUpperCase();
  });
}

/** RFC 3986 remove_dot_segments on an absolute path. */
function removeDotSegments(path: string): string {
  const out: string[] = [];
  const segments = path.split('/');
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i]!;
    const last = i === segments.length - 1;
    if (s === '.') {
      if (last) out.push('');
    } else if (s === '..') {
      out.pop();
      if (last) out.push('');
    } else {
      out.push(s);
    }
  }
  return '/' + out.join('/');
}

/** The normalized form of a request path (with its query), or undefined when it is not an absolute path. */
export function normalizePath(target: string): string | undefined {
  // A fragment is never part of the request (Envoy strips it before anything else looks).
  const hash = target.indexOf('#');
  const pathWithQuery = hash < 0 ? target : target.slice(0, hash);
  const q = pathWithQuery.indexOf('?');
  const path = q < 0 ? pathWithQuery : pathWithQuery.slice(0, q);
  if (!path.startsWith('/')) return undefined;
  const decoded = decodeUnreserved(path);
  const normalized = decoded.includes('/.') ? removeDotSegments(decoded) : decoded;
  return q < 0 ? normalized : normalized + pathWithQuery.slice(q);
}
