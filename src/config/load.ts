/**
 * Loading a config path end to end: files → YAML documents → Istio resources → model. Returns
 * the model only when there is no error; diagnostics (errors and warnings) always.
 */
import type { Model } from '../model/index.js';
import type { Diagnostic } from './diagnostics.js';
import { sortDiagnostics } from './diagnostics.js';
import { parseDocuments, type ParsedDocument } from './documents.js';
import { readConfigSources, type SourceFile } from './files.js';
import { recogniseResources } from './istio/resources.js';
import { translate } from './istio/translate.js';

export interface LoadResult {
  /** Undefined when any diagnostic is an error. */
  readonly model: Model | undefined;
  readonly diagnostics: readonly Diagnostic[];
  readonly files: readonly string[];
}

export function loadFromSources(sources: readonly SourceFile[]): LoadResult {
  const diagnostics: Diagnostic[] = [];
  const documents: ParsedDocument[] = [];
  for (const file of sources) {
    const parsed = parseDocuments(file);
    documents.push(...parsed.documents);
    for (const p of parsed.problems) {
      diagnostics.push({
        file: p.file.name,
        line: p.line,
        col: p.col,
        resource: `document ${p.index}`,
        field: '(yaml)',
        message: p.message,
        severity: 'error',
      });
    }
  }
  const recognised = recogniseResources(documents);
  diagnostics.push(...recognised.diagnostics);
  const translation = translate(recognised.resources);
  diagnostics.push(...translation.diagnostics);
  const sorted = sortDiagnostics(diagnostics);
  const failed = sorted.some((d) => d.severity === 'error');
  return { model: failed ? undefined : translation.model, diagnostics: sorted, files: sources.map((s) => s.name) };
}

/** Reads and loads `path` (a file or a folder). Throws SkiffError CONFIG_READ if it cannot read. */
export async function loadConfig(path: string): Promise<LoadResult> {
  return loadFromSources(await readConfigSources(path));
}
