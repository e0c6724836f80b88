/**
 * `skiff wait` against real HTTP servers on port 0, run as a process (dist/cli/wait.js; main.js
 * dispatch aside): exit 0 once the URL answers 200, exit 1 with the last error once the timeout
 * passes. `npm test` builds first; run `npm run build` before running this file alone.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SkiffError } from '../../src/core/errors.js';
import { waitCommand } from '../../src/cli/wait.js';
import { runSkiff } from '../helpers/command.js';
import { closedPort } from '../helpers/ports.js';

const servers: Server[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
});

/** A readiness endpoint; `answer(n)` handles the n-th request (1-based). */
async function readiness(answer: (n: number, res: ServerResponse) => void, port = 0): Promise<{ url: string; requests: () => number }> {
  let n = 0;
  const server = createServer((req, res) => {
    n++;
    expect(req.method).toBe('GET');
    expect(req.url).toBe('/healthz/ready');
    answer(n, res);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/healthz/ready`, requests: () => n };
}

const wait = (args: readonly string[]) => runSkiff(['wait', ...args]);

describe('skiff wait', () => {
  it('polls until the URL answers 200, then exits 0', async () => {
    const ready = await readiness((n, res) => {
      res.statusCode = n <= 3 ? 503 : 200;
      res.end(n <= 3 ? 'config not received' : 'ready');
    });
    const run = await wait(['--url', ready.url, '--periodMillis', '50', '--timeoutSeconds', '10']);
    expect(run.code).toBe(0);
    expect(ready.requests()).toBe(4);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe(`skiff: waiting for the proxy to be ready at ${ready.url} (timeout: 10 seconds)...\nskiff: the proxy is ready\n`);
  });

  it('exits 1 at the timeout when the URL never answers 200, naming the last error', async () => {
    const never = await readiness((_n, res) => {
      res.statusCode = 503;
      res.end();
    });
    const run = await wait(['--url', never.url, '--period-millis', '100', '--timeout-seconds', '1']);
    expect(run.code).toBe(1);
    expect(run.elapsedMs).toBeGreaterThanOrEqual(1000);
    expect(run.elapsedMs).toBeLessThan(5000);
    // One check per period for a second: at most 10, fewer when the machine is busy.
    expect(never.requests()).toBeGreaterThanOrEqual(5);
    expect(never.requests()).toBeLessThanOrEqual(10);
    expect(run.stderr).toMatch(new RegExp(`skiff: timeout waiting for the proxy to become ready at ${escape(never.url)} after 1 seconds \\(\\d+ checks\\)\\. Last error: HTTP status code 503\\n$`));
  });

  it('with nothing listening keeps polling, and succeeds once the server comes up', async () => {
    const port = await closedPort();
    const url = `http://127.0.0.1:${port}/healthz/ready`;
    const run = wait(['--url', url, '--periodMillis', '50', '--timeoutSeconds', '10']);
    await new Promise((resolve) => setTimeout(resolve, 600));
    const late = await readiness((_n, res) => res.end('ready'), port);
    const done = await run;
    expect(done.code).toBe(0);
    expect(late.requests()).toBe(1);
    expect(done.elapsedMs).toBeGreaterThan(600);
  });

  it('with nothing listening until the timeout, exits 1 with the connection error', async () => {
    const port = await closedPort();
    const run = await wait(['--url', `http://127.0.0.1:${port}/healthz/ready`, '--periodMillis', '50', '--timeoutSeconds', '1']);
    expect(run.code).toBe(1);
    expect(run.elapsedMs).toBeGreaterThanOrEqual(1000);
    expect(run.elapsedMs).toBeLessThan(5000);
    expect(run.stderr).toMatch(/Last error: connect ECONNREFUSED 127\.0\.0\.1:\d+\n$/);
  });

  it('a server that does not answer within --requestTimeoutMillis counts as not ready', async () => {
    const hanging = await readiness(() => {
      /* never answers */
    });
    const run = await wait(['--url', hanging.url, '--periodMillis', '50', '--requestTimeoutMillis', '100', '--timeoutSeconds', '1']);
    expect(run.code).toBe(1);
    expect(run.elapsedMs).toBeLessThan(5000);
    expect(hanging.requests()).toBeGreaterThanOrEqual(3);
    expect(run.stderr).toMatch(/Last error: no response within 100 ms\n$/);
  });

  it('refuses bad flags as usage errors (Istio spellings and kebab-case aliases)', async () => {
    const usage = async (args: string[]): Promise<string> => {
      const err = await waitCommand(args).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(SkiffError);
      expect((err as SkiffError).code).toBe('USAGE');
      return (err as SkiffError).message;
    };
    expect(await usage(['--timeoutSeconds', 'soon'])).toBe('--timeoutSeconds must be an integer of 0 or more, got "soon"');
    expect(await usage(['--period-millis', '0'])).toBe('--period-millis must be an integer of 1 or more, got "0"');
    expect(await usage(['--periodMillis', '5', '--period-millis', '5'])).toBe('--periodMillis and --period-millis are the same flag; give one');
    expect(await usage(['--url', 'localhost:15021'])).toBe('--url must be an http:// or https:// URL, got "localhost:15021"');
    expect(await usage(['--timeout', '5'])).toMatch(/^Unknown option '--timeout'/);
    const run = await wait(['--requestTimeoutMillis=-1']);
    expect(run).toMatchObject({ code: 1, stdout: '', stderr: 'skiff: --requestTimeoutMillis must be an integer of 0 or more, got "-1"\nrun "skiff --help" for usage\n' });
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
