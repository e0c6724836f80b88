/**
 * Reading config from disk: one file, or every .yaml/.yml/.json file under a folder (recursively,
 * in a stable order, skipping hidden entries).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
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

async function listConfigFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out: string[] = [];
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const full = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await listConfigFiles(full)));
    else if (e.isFile() && isConfigFileName(e.name)) out.push(full);
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
  for (const f of files) {
    try {
      out.push({ name: displayName(f), absolutePath: f, text: await readFile(f, 'utf8') });
    } catch (err) {
      throw new SkiffError('CONFIG_READ', `cannot read config file ${f}: ${(err as Error).message}`, { cause: err });
    }
  }
  return out;
}
