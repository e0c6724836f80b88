/**
 * Worker-thread entry for loading a large config (see isolated-load.ts): turns the source files
 * it is given into a LoadResult and posts it back. All parsing garbage dies with the worker.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { SourceFile } from './files.js';
import { loadFromSources } from './load.js';

const sources = (workerData as { sources: SourceFile[] }).sources;
parentPort!.postMessage(loadFromSources(sources));
