/**
 * Running the built `skiff` CLI (dist/cli/main.js) as a child process: collect its output, wait
 * for a line, send signals, wait for the exit. `npm test` builds first; run `npm run build` before
 * running these files alone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
export const REPO = fileURLToPath(new URL('../../', import.meta.url));

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface CliProcess {
  readonly child: ChildProcess;
  /** Everything written so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the first match of `pattern` on stdout or stderr; rejects on exit or deadline. */
  waitFor(pattern: RegExp, stream?: 'stdout' | 'stderr', deadlineMs?: number): Promise<RegExpExecArray>;
  /** Resolves when the process exits; rejects (and kills it) after the deadline. */
  exited(deadlineMs?: number): Promise<Exit>;
  /** Kills the process if it is still running (cleanup). */
  kill(): void;
}

export function assertBuilt(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first`);
}

export function startCli(args: readonly string[], env: NodeJS.ProcessEnv = process.env): CliProcess {
  assertBuilt();
  const child = spawn(process.execPath, [CLI, ...args], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  const waiters = new Set<() => void>();
  const notify = (): void => {
    for (const w of [...waiters]) w();
  };
  child.stdout!.setEncoding('utf8').on('data', (s: string) => {
    out.stdout += s;
    notify();
  });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    out.stderr += s;
    notify();
  });
  let exit: Exit | null = null;
  const exitPromise = new Promise<Exit>((resolve) => {
    child.on('close', (code, signal) => {
      exit = { code, signal };
      notify();
      resolve(exit);
    });
  });

  return {
    child,
    stdout: () => out.stdout,
    stderr: () => out.stderr,
    waitFor(pattern, stream = 'stderr', deadlineMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const m = pattern.exec(out[stream]);
          if (m !== null) return finish(() => resolve(m));
          if (exit !== null) {
            finish(() => reject(new Error(`exited (${exit!.code ?? exit!.signal}) before ${pattern} on ${stream}\nstdout: ${out.stdout}\nstderr: ${out.stderr}`)));
          }
        };
        const timer = setTimeout(
          () => finish(() => reject(new Error(`no ${pattern} on ${stream} within ${deadlineMs} ms\nstdout: ${out.stdout}\nstderr: ${out.stderr}`))),
          deadlineMs,
        );
        const finish = (then: () => void): void => {
          clearTimeout(timer);
          waiters.delete(check);
          then();
        };
        waiters.add(check);
        check();
      });
    },
    async exited(deadlineMs = 15_000) {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`did not exit within ${deadlineMs} ms\nstdout: ${out.stdout}\nstderr: ${out.stderr}`));
        }, deadlineMs);
      });
      try {
        return await Promise.race([exitPromise, deadline]);
      } finally {
        clearTimeout(timer);
      }
    },
    kill() {
      if (exit === null && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/** Runs the CLI to completion. */
export async function runCli(args: readonly string[], deadlineMs = 15_000): Promise<Exit & { stdout: string; stderr: string }> {
  const p = startCli(args);
  const exit = await p.exited(deadlineMs);
  return { ...exit, stdout: p.stdout(), stderr: p.stderr() };
}

/** Parses the ports from the proxy's `ready:` log line. */
export const READY_LINE = /ready: config version (\d+) .*outbound 127\.0\.0\.1:(\d+), admin 127\.0\.0\.1:(\d+), readiness :(\d+)/;

export async function waitReady(p: CliProcess, deadlineMs?: number): Promise<{ version: number; outbound: number; admin: number; readiness: number }> {
  const m = await p.waitFor(READY_LINE, 'stderr', deadlineMs);
  return { version: Number(m[1]), outbound: Number(m[2]), admin: Number(m[3]), readiness: Number(m[4]) };
}
