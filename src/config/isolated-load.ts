/**
 * Loading config without holding the main thread or its heap. A thousand-service mesh takes
 * hundreds of milliseconds to parse and leaves tens of megabytes of garbage: done in the main
 * thread that would stall every request during a reload, and V8 keeps the grown heap for good.
 * Large configs are therefore loaded in a worker thread, whose heap is freed when it exits; only
 * the model comes back (structured clone). Small configs load in-process: a worker's start-up
 * (about 100 ms) would cost more than it saves.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { DirectResponseAction, Model, RouteConfig } from '../model/index.js';
import { readConfigSources, type SourceFile } from './files.js';
import { loadFromSources, type LoadResult } from './load.js';

/** Configs larger than this (total bytes of YAML/JSON) are loaded in a worker thread. */
export const WORKER_THRESHOLD_BYTES = 256 * 1024;

const WORKER_ENTRY = new URL('./load-worker.js', import.meta.url);

/**
 * Reads and loads `path` (file or folder): in-process when small, in a worker thread when large.
 * Throws SkiffError CONFIG_READ if the config cannot be read.
 */
export async function loadConfigIsolated(path: string): Promise<LoadResult> {
  const sources = await readConfigSources(path);
  const size = sources.reduce((n, s) => n + s.text.length, 0);
  // The worker entry exists as JavaScript only in the built package (not when tests run the
  // TypeScript sources directly).
  if (size <= WORKER_THRESHOLD_BYTES || !existsSync(fileURLToPath(WORKER_ENTRY))) return loadFromSources(sources);
  return loadInWorker(sources);
}

/** Loads the given sources in a worker thread. */
export function loadInWorker(sources: readonly SourceFile[]): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER_ENTRY, { workerData: { sources } });
    let settled = false;
    worker.once('message', (result: LoadResult) => {
      settled = true;
      resolve(revive(result));
      void worker.terminate();
    });
    worker.once('error', (err) => {
      settled = true;
      reject(err);
    });
    worker.once('exit', (code) => {
      if (!settled) reject(new Error(`config loader worker exited with code ${code}`));
    });
  });
}

/** Structured clone turns Buffers into Uint8Arrays: make direct-response bodies Buffers again. */
function revive(result: LoadResult): LoadResult {
  if (result.model === undefined) return result;
  const reviveConfig = (rc: RouteConfig): RouteConfig => ({
    ...rc,
    virtualHosts: rc.virtualHosts.map((vh) => ({
      ...vh,
      routes: vh.routes.map((r) => {
        if (r.action.kind !== 'direct' || r.action.body === undefined) return r;
        const body = r.action.body as Uint8Array;
        const action: DirectResponseAction = { ...r.action, body: Buffer.from(body.buffer, body.byteOffset, body.byteLength) };
        return { ...r, action };
      }),
    })),
  });
  const model: Model = {
    ...result.model,
    routeConfigs: result.model.routeConfigs.map(reviveConfig),
    fallbackRouteConfig: reviveConfig(result.model.fallbackRouteConfig),
  };
  return { ...result, model };
}
