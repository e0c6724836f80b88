/**
 * Envoy's substitution commands in added header values (`%DOWNSTREAM_REMOTE_ADDRESS%`,
 * `%REQ(x-user)%`, `%%` for a percent sign), parsed once at config time. Values Istio passes
 * through from VirtualService headers and xDS route configurations alike.
 *
 * A `%` that starts no known command is an error (Envoy rejects the config too), so `100%`
 * must be written `100%%`.
 */

export type HeaderOperator =
  | 'DOWNSTREAM_REMOTE_ADDRESS'
  | 'DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT'
  | 'DOWNSTREAM_REMOTE_PORT'
  | 'DOWNSTREAM_DIRECT_REMOTE_ADDRESS'
  | 'DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT'
  | 'DOWNSTREAM_LOCAL_ADDRESS'
  | 'DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT'
  | 'DOWNSTREAM_LOCAL_PORT'
  | 'PROTOCOL'
  | 'HOSTNAME'
  | 'REQ';

const OPERATORS: ReadonlySet<string> = new Set<HeaderOperator>([
  'DOWNSTREAM_REMOTE_ADDRESS',
  'DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT',
  'DOWNSTREAM_REMOTE_PORT',
  'DOWNSTREAM_DIRECT_REMOTE_ADDRESS',
  'DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT',
  'DOWNSTREAM_LOCAL_ADDRESS',
  'DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT',
  'DOWNSTREAM_LOCAL_PORT',
  'PROTOCOL',
  'HOSTNAME',
  'REQ',
]);

export type HeaderFormatPart =
  | string
  | { readonly op: Exclude<HeaderOperator, 'REQ'> }
  /** `%REQ(name)%` or `%REQ(name?alternative)%`: the first present, lowercase; `:authority` style names allowed. */
  | { readonly op: 'REQ'; readonly names: readonly string[] };

const COMMAND = /%([A-Z][A-Z0-9_]*)(?:\(([^)]*)\))?(:\d+)?%/y;

/** The value as literal text and commands, or the first problem. Plain values are one string part. */
export function parseHeaderFormat(value: string): { readonly parts: readonly HeaderFormatPart[] } | { readonly error: string } {
  if (!value.includes('%')) return { parts: [value] };
  const parts: HeaderFormatPart[] = [];
  let text = '';
  let i = 0;
  while (i < value.length) {
    const c = value[i]!;
    if (c !== '%') {
      text += c;
      i++;
      continue;
    }
    if (value[i + 1] === '%') {
      text += '%';
      i += 2;
      continue;
    }
    COMMAND.lastIndex = i;
    const m = COMMAND.exec(value);
    if (m === null) return { error: `the "%" at position ${i} starts no command (write "%%" for a percent sign)` };
    const op = m[1]!;
    if (!OPERATORS.has(op)) return { error: `%${op}% is not supported in header values` };
    if (m[3] !== undefined) return { error: `%${op}…${m[3]}%: truncating a value to a length is not supported` };
    if (text !== '') parts.push(text);
    text = '';
    if (op === 'REQ') {
      const names = (m[2] ?? '').split('?').map((n) => n.trim().toLowerCase());
      if (names.some((n) => n === '') || names.length > 2) return { error: '%REQ(…)% needs a header name, or two separated by "?"' };
      parts.push({ op: 'REQ', names });
    } else {
      if (m[2] !== undefined) return { error: `%${op}% takes no argument` };
      parts.push({ op: op as Exclude<HeaderOperator, 'REQ'> });
    }
    i += m[0].length;
  }
  if (text !== '') parts.push(text);
  return { parts };
}
