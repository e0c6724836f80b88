/**
 * Where a proxy's configuration comes from: files of Istio YAML (watched) or an xDS stream. The
 * proxy loads the current config at start and again whenever the source says it changed;
 * reloads are serialised by the proxy, so a source only has to say "load again".
 */
import { loadConfigIsolated } from './isolated-load.js';
import type { LoadResult } from './load.js';
import { watchConfig } from './watch.js';

export interface ConfigSource {
  /** The current config. The first call waits until there is one (xDS: the first accepted, warm snapshot). */
  load(): Promise<LoadResult>;
  /** Calls `onChange` whenever a new config may be available. */
  watch(onChange: () => void): Promise<{ close(): void }>;
  /** Stops the source (an xDS stream); files need nothing. */
  close?(): void;
}

/** A file or folder of Istio YAML, loaded off the main thread and watched for edits. */
export function fileConfigSource(path: string): ConfigSource {
  return {
    load: () => loadConfigIsolated(path),
    watch: (onChange) => watchConfig(path, onChange),
  };
}
