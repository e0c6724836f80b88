/**
 * Multi-document YAML (and JSON, which YAML reads too) with source positions. Each document keeps
 * its syntax tree so a field path can be mapped back to a line and column.
 */
import { isMap, isPair, isScalar, isSeq, LineCounter, parseAllDocuments, type Document, type Node } from 'yaml';
import type { Path } from './schema.js';
import type { SourceFile } from './files.js';

export interface ParsedDocument {
  readonly file: SourceFile;
  /** 1-based index of the document within its file. */
  readonly index: number;
  /** The document as plain data (null for an empty document). */
  readonly value: unknown;
  /** Line and column (1-based) of the node at `path`, or of its nearest existing ancestor. */
  locate(path: Path, atKey?: boolean): { line: number; col: number };
}

export interface SyntaxProblem {
  readonly file: SourceFile;
  readonly index: number;
  readonly line: number;
  readonly col: number;
  readonly message: string;
}

export function parseDocuments(file: SourceFile): { documents: ParsedDocument[]; problems: SyntaxProblem[] } {
  const lines = new LineCounter();
  const docs = parseAllDocuments(file.text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const documents: ParsedDocument[] = [];
  const problems: SyntaxProblem[] = [];
  const list = Array.isArray(docs) ? docs : [];
  list.forEach((doc, i) => {
    const index = i + 1;
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        const pos = lines.linePos(e.pos[0]);
        problems.push({ file, index, line: pos.line, col: pos.col, message: firstLine(e.message) });
      }
      return;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 1000 });
    } catch (err) {
      problems.push({ file, index, line: 1, col: 1, message: (err as Error).message });
      return;
    }
    if (value === null || value === undefined) return;
    documents.push({ file, index, value, locate: (path, atKey) => locate(doc, lines, path, atKey ?? false) });
  });
  return { documents, problems };
}

function firstLine(message: string): string {
  return message.split('\n')[0]!.trim();
}

function locate(doc: Document, lines: LineCounter, path: Path, atKey: boolean): { line: number; col: number } {
  let node: unknown = doc.contents;
  let offset = rangeStart(node) ?? 0;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i]!;
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
      if (pair === undefined) break;
      if (last && atKey) {
        offset = rangeStart(pair.key) ?? offset;
        break;
      }
      node = pair.value;
      offset = rangeStart(node) ?? rangeStart(pair.key) ?? offset;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg];
      if (item === undefined) break;
      node = item;
      offset = rangeStart(node) ?? offset;
    } else {
      break;
    }
  }
  const pos = lines.linePos(offset);
  return { line: pos.line, col: pos.col };
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as Node | null | undefined)?.range;
  return range ? range[0] : undefined;
}
