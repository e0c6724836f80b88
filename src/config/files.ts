/**
 * Reading config from disk: one file, or every .yaml/.yml/.json file under a folder (recursively,
 * in a stable order, skipping hidden entries, following symbolic links, each real file once).
 */
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { SkiffError } from '../core/errors.js';

export interface SourceFile {
  /** Path as shown to users: relative to the working directory when that is shorter. */
  readonly name: string;
  readonly absolutePath: string;
  readonly text: string;
}

const CONFIG_EXTENSIONS = /\.(ya?ml|json)$/i;

export function isConfigFileName(name: string): boolean {
  return CONFIG_EXTENSIONS.test(name) && !name.startsWith('.');
}

function displayName(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel !== '' && !rel.startsWith('..') && rel.length < path.length ? rel : path;
}

/**
 * Symbolic links are followed: a Kubernetes ConfigMap volume shows its files as links into a
 * hidden `..data` folder. `seen` holds the real paths of the folders on the current walk, so a
 * link back up the tree is not followed twice.
 */
async function listConfigFiles(dir: string, seen: ReadonlySet<string> = new Set()): Promise<string[]> {
  const real = await realpath(dir);
  if (seen.has(real)) return [];
  const inside = new Set(seen).add(real);
  const entries = await readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out: string[] = [];
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const full = join(dir, e.name);
    let isDirectory = e.isDirectory();
    let isFile = e.isFile();
    if (e.isSymbolicLink()) {
      const target = await stat(full).catch(() => undefined);
      if (target === undefined) continue; // a dangling link
      isDirectory = target.isDirectory();
      isFile = target.isFile();
    }
    if (isDirectory) out.push(...(await listConfigFiles(full, inside)));
    else if (isFile && isConfigFileName(e.name)) out.push(full);
  }
  return out;
}

/** Reads the config at `path` (file or folder). Throws SkiffError CONFIG_READ if it cannot. */
export async function readConfigSources(path: string): Promise<SourceFile[]> {
  let info;
  try {
    info = await stat(path);
  } catch (err) {
    throw new SkiffError('CONFIG_READ', `cannot read config ${path}: ${(err as Error).message}`, { cause: err });
  }
  const files = info.isDirectory() ? await listConfigFiles(path) : [path];
  const out: SourceFile[] = [];
  const read = new Set<string>();
  for (const f of files) {
    // A file reachable through several links is read once, under the first name found.
    const real = await realpath(f).catch(() => f);
    if (read.has(real)) continue;
    read.add(real);
    try {
      out.push({ name: displayName(f), absolutePath: f, text: await readFile(f, 'utf8') });
    } catch (err) {
      throw new SkiffError('CONFIG_READ', `cannot read config file ${f}: ${(err as Error).message}`, { cause: err });
    }
  }
  return out;
}
