/**
 * The dependency rules of DESIGN.md, checked on the source tree: which layer may import which,
 * and no import cycles between files. Type-only imports count: the rules are about design.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

type Layer =
  | 'core' | 'model' | 'config' | 'compile' | 'security' | 'upstream' | 'tcp' | 'http-base'
  | 'http-filters' | 'http-router' | 'http' | 'listener' | 'telemetry' | 'admin' | 'lifecycle' | 'cli';

/** Which layer a file belongs to. http is split: codec/headers/stream are primitives the router uses. */
function layerOf(file: string): Layer {
  const rel = relative(SRC, file).split('/');
  const [top, second] = rel;
  if (top === 'http') {
    if (second === 'router') return 'http-router';
    if (second === 'filters') return 'http-filters';
    if (second === 'codec' || second === 'headers.ts' || second === 'stream.ts' || second === 'trace-context.ts') return 'http-base';
    return 'http';
  }
  return top as Layer;
}

const DATA = ['core', 'model', 'compile'] as const;

/** What each layer may import (itself included). The data path never imports config/. */
const ALLOWED: Record<Layer, readonly Layer[]> = {
  core: ['core'],
  model: ['core', 'model'],
  config: ['core', 'model', 'config'],
  compile: ['core', 'model', 'compile'],
  security: [...DATA, 'security'],
  upstream: [...DATA, 'security', 'upstream'],
  tcp: [...DATA, 'upstream', 'security', 'tcp'],
  'http-base': [...DATA, 'http-base'],
  'http-filters': [...DATA, 'http-base', 'http-filters'],
  'http-router': [...DATA, 'http-base', 'upstream', 'tcp', 'security', 'http-router'],
  http: [...DATA, 'http-base', 'http-filters', 'http-router', 'http'],
  listener: [...DATA, 'http-base', 'http', 'tcp', 'security', 'listener'],
  // Telemetry consumes the records the data path hands over (StreamInfo, TcpSessionInfo).
  telemetry: [...DATA, 'http-base', 'tcp', 'telemetry'],
  admin: ['core', 'model', 'admin'],
  lifecycle: [
    'core', 'model', 'config', 'compile', 'security', 'upstream', 'tcp', 'http-base', 'http-filters',
    'http-router', 'http', 'listener', 'telemetry', 'admin', 'lifecycle',
  ],
  // `skiff ca` issues certificates with the security layer's mini CA.
  cli: ['core', 'model', 'config', 'security', 'lifecycle', 'cli'],
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(full);
    return e.name.endsWith('.ts') ? [full] : [];
  });
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]/g;

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1]!;
    if (!spec.startsWith('.')) continue;
    out.push(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
  }
  return out;
}

const files = sourceFiles(SRC);
const graph = new Map(files.map((f) => [f, importsOf(f)]));

describe('architecture', () => {
  it('has source files in every core layer', () => {
    const layers = new Set(files.map(layerOf));
    for (const l of ['core', 'model', 'config', 'compile', 'upstream', 'http-base', 'http-router', 'http', 'listener', 'lifecycle', 'cli']) {
      expect(layers.has(l as Layer), l).toBe(true);
    }
  });

  it('reads the import graph (so the rules below check something)', () => {
    const edges = [...graph.values()].reduce((n, deps) => n + deps.length, 0);
    expect(files.length).toBeGreaterThan(50);
    expect(edges).toBeGreaterThan(150);
  });

  it('resolves every relative import to a source file', () => {
    const missing = [...graph].flatMap(([f, deps]) => deps.filter((d) => !graph.has(d)).map((d) => `${relative(SRC, f)} -> ${relative(SRC, d)}`));
    expect(missing).toEqual([]);
  });

  it('imports only across allowed layers', () => {
    const violations: string[] = [];
    for (const [file, deps] of graph) {
      const from = layerOf(file);
      for (const dep of deps) {
        const to = layerOf(dep);
        if (!ALLOWED[from].includes(to)) violations.push(`${relative(SRC, file)} (${from}) imports ${relative(SRC, dep)} (${to})`);
      }
    }
    expect(violations).toEqual([]);
  });

  it('has no import cycles', () => {
    const state = new Map<string, 'visiting' | 'done'>();
    const cycles: string[] = [];
    const visit = (f: string, stack: string[]): void => {
      const s = state.get(f);
      if (s === 'done') return;
      if (s === 'visiting') {
        cycles.push([...stack.slice(stack.indexOf(f)), f].map((x) => relative(SRC, x)).join(' -> '));
        return;
      }
      state.set(f, 'visiting');
      for (const d of graph.get(f) ?? []) visit(d, [...stack, f]);
      state.set(f, 'done');
    };
    for (const f of files) visit(f, []);
    expect(cycles).toEqual([]);
  });

  it('keeps modules free of work on import (no top-level listen/connect/setInterval)', () => {
    const offenders = files.filter((f) => /^(?:\S.*)?\b(?:setInterval|setTimeout|\.listen|createServer|connect)\(/m.test(topLevelCode(readFileSync(f, 'utf8'))));
    expect(offenders.map((f) => relative(SRC, f))).toEqual([]);
  });
});

/** Lines at column 0 that are statements (not inside function or class bodies). */
function topLevelCode(text: string): string {
  return text
    .split('\n')
    .filter((l) => /^[a-z]/.test(l) && !/^(export |import |const [A-Z_]+ = |function |class |type |interface |abstract |async function )/.test(l))
    .join('\n');
}
