/**
 * Multi-document YAML (and JSON, which YAML reads too), mapped back to source positions.
 *
 * Two parsers, for speed: js-yaml reads the documents (over ten times faster than `yaml` on a
 * thousand-service mesh), and `yaml`, which keeps a syntax tree with offsets, is loaded and run
 * on a file only when something in it must be located: a syntax error, or a diagnostic about a
 * field. Both read YAML 1.2 with the core schema and split documents the same way, so document N
 * is the same in both. A file with aliases, or that js-yaml refuses, goes to `yaml` directly:
 * it reports every error with its position and bounds alias expansion.
 */
import { createRequire } from 'node:module';
import { CORE_SCHEMA, loadAll } from 'js-yaml';
import type { Document, LineCounter, Node } from 'yaml';
import type { Path } from './schema.js';
import type { SourceFile } from './files.js';

export interface ParsedDocument {
  readonly file: SourceFile;
  /** 1-based index of the document within its file. */
  readonly index: number;
  /** The document as plain data. */
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

type YamlLib = typeof import('yaml');
let yamlLib: YamlLib | undefined;

/** The `yaml` package, loaded on first use (most loads never need it). */
function yaml(): YamlLib {
  yamlLib ??= createRequire(import.meta.url)('yaml') as YamlLib;
  return yamlLib;
}

interface PositionedFile {
  readonly docs: Document[];
  readonly lines: LineCounter;
}

function parseWithPositions(file: SourceFile): PositionedFile {
  const lib = yaml();
  const lines = new lib.LineCounter();
  const docs = lib.parseAllDocuments(file.text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  return { docs: Array.isArray(docs) ? docs : [], lines };
}

export function parseDocuments(file: SourceFile): { documents: ParsedDocument[]; problems: SyntaxProblem[] } {
  let values: unknown[] | undefined;
  try {
    // Aliases are refused here (maxAliases 0): expanded naively they can grow exponentially.
    values = loadAll(file.text, { schema: CORE_SCHEMA, maxAliases: 0, filename: file.name });
  } catch {
    values = undefined;
  }
  if (values === undefined) return parsePrecisely(file);
  let positioned: PositionedFile | undefined;
  const documents: ParsedDocument[] = [];
  values.forEach((value, i) => {
    if (value === null || value === undefined) return;
    documents.push({
      file,
      index: i + 1,
      value,
      locate(path, atKey) {
        positioned ??= parseWithPositions(file);
        const doc = positioned.docs[i];
        return doc === undefined ? { line: 1, col: 1 } : locate(doc, positioned.lines, path, atKey ?? false);
      },
    });
  });
  return { documents, problems: [] };
}

/** The slow path: every syntax error with its position, aliases expanded with a bound. */
function parsePrecisely(file: SourceFile): { documents: ParsedDocument[]; problems: SyntaxProblem[] } {
  const { docs, lines } = parseWithPositions(file);
  const documents: ParsedDocument[] = [];
  const problems: SyntaxProblem[] = [];
  docs.forEach((doc, i) => {
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
  const { isMap, isPair, isScalar, isSeq } = yaml();
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
