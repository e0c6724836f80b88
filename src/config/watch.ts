/**
 * Watches a config file or folder and calls back, debounced, after changes settle. Editors often
 * save by writing a temporary file and renaming it; watching the containing folder sees both.
 */
import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';

export interface ConfigWatcher {
  close(): void;
}

export async function watchConfig(path: string, onChange: () => void, debounceMs = 100): Promise<ConfigWatcher> {
  const absolute = resolve(path);
  const isDir = (await stat(absolute)).isDirectory();
  const dir = isDir ? absolute : dirname(absolute);
  const fileName = isDir ? undefined : basename(absolute);
  let timer: NodeJS.Timeout | null = null;
  const trigger = (_event: string, name: string | Buffer | null): void => {
    // Watching a single file means watching its folder: skip its neighbours.
    if (fileName !== undefined && name !== null && basename(name.toString()) !== fileName) return;
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      onChange();
    }, debounceMs);
  };
  const watcher: FSWatcher = watch(dir, { recursive: isDir, persistent: false }, trigger);
  watcher.on('error', () => {
    /* the folder went away; the next reload reports the read error */
  });
  return {
    close() {
      if (timer !== null) clearTimeout(timer);
      watcher.close();
    },
  };
}
