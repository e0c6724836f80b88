/**
 * Config problems, located precisely. One diagnostic prints as one line:
 * `file:line:col: Kind/name: field.path: message`.
 */
import type { Path } from './schema.js';

export interface Diagnostic {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  /** `Kind/name`, or `document N` when the document has no usable kind or name. */
  readonly resource: string;
  /** Dotted field path (`spec.http[0].route[1].weight`), or `(document)` for the whole document. */
  readonly field: string;
  readonly message: string;
  readonly severity: 'error' | 'warning';
}

export function formatPath(path: Path): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out === '' ? '(document)' : out;
}

export function formatDiagnostic(d: Diagnostic): string {
  const prefix = d.severity === 'warning' ? 'warning: ' : '';
  return `${d.file}:${d.line}:${d.col}: ${d.resource}: ${d.field}: ${prefix}${d.message}`;
}

/** Errors first, then by file and position, for stable output. */
export function sortDiagnostics(list: readonly Diagnostic[]): Diagnostic[] {
  return [...list].sort(
    (a, b) =>
      (a.severity === b.severity ? 0 : a.severity === 'error' ? -1 : 1) ||
      a.file.localeCompare(b.file) ||
      a.line - b.line ||
      a.col - b.col,
  );
}
