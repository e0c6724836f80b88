/**
 * Running the built CLI to completion with optional stdin: exit code, output and wall time.
 * `npm test` builds first; run `npm run build` before running a file alone.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));

export interface CommandRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Wall time from spawn to exit, in ms. */
  readonly elapsedMs: number;
}

/** Runs `skiff <args>` (dist/cli/main.js) to completion. */
export function runSkiff(args: readonly string[], options: { stdin?: string; cwd?: string; deadlineMs?: number } = {}): Promise<CommandRun> {
  const cli = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run "npm run build" first`);
  const started = performance.now();
  const child = spawn(process.execPath, [cli, ...args], {
    cwd: options.cwd ?? REPO,
    stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  if (options.stdin !== undefined) child.stdin!.end(options.stdin);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`skiff ${args.join(' ')} did not exit within ${options.deadlineMs ?? 20_000} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, options.deadlineMs ?? 20_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, elapsedMs: performance.now() - started });
    });
  });
}
