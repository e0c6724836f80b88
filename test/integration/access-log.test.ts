/** The access log writing to a real file: batching, order, close, backpressure drops, errors. */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HeaderMap } from '../../src/http/headers.js';
import { StreamInfo } from '../../src/http/stream.js';
import type { AccessLogSettings } from '../../src/model/telemetry.js';
import { TcpSessionInfo } from '../../src/tcp/tcp-proxy.js';
import { AccessLog, type AccessLogOptions } from '../../src/telemetry/access-log.js';
import { connection, getRequest } from '../helpers/records.js';

let dir: string;
let path: string;
const open: AccessLog[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'skiff-access-log-'));
  path = join(dir, 'access.log');
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((log) => log.close()));
  await rm(dir, { recursive: true, force: true });
});

function openLog(settings: Partial<AccessLogSettings>, options: AccessLogOptions = {}): AccessLog {
  const log = AccessLog.open({ file: path, encoding: 'TEXT', format: '%REQ(X-REQUEST-ID)% %RESPONSE_CODE%\n', ...settings }, options);
  if (log === null) throw new Error('access log is off');
  open.push(log);
  return log;
}

function request(id: string, code = 200): StreamInfo {
  const info = new StreamInfo(connection());
  info.request = getRequest('/', 'svc', new HeaderMap(['x-request-id'], [id]));
  info.responseCode = code;
  info.endMs = info.startMs + 1;
  return info;
}

/** The file's lines; none while the stream has not created it yet. */
async function lines(): Promise<string[]> {
  const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return '';
    throw err;
  });
  return text === '' ? [] : text.slice(0, -1).split('\n');
}

async function eventually(check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('condition not met in 2s');
}

describe('AccessLog', () => {
  it('is off for an empty file setting', () => {
    expect(AccessLog.open({ file: '', encoding: 'TEXT', format: '' })).toBeNull();
  });

  it('writes many lines in order, HTTP and TCP alike, once flushed', async () => {
    const log = openLog({ format: '%REQ(X-REQUEST-ID)% %RESPONSE_CODE% %UPSTREAM_CLUSTER%\n' }, { flushIntervalMs: 60_000 });
    for (let i = 0; i < 5000; i++) log.logRequest(request(`r${i}`));
    const tcp = new TcpSessionInfo('10.0.0.9', '10.96.0.20', 3306, 'outbound|3306||mysql');
    tcp.endMs = tcp.startMs + 1;
    log.logTcp(tcp);
    await log.flush();
    const got = await lines();
    expect(got).toHaveLength(5001);
    expect(got.slice(0, 5000)).toEqual(Array.from({ length: 5000 }, (_, i) => `r${i} 200 -`));
    expect(got[5000]).toBe('- 0 outbound|3306||mysql');
    expect(log.dropped).toBe(0);
  });

  it('appends to an existing file', async () => {
    await writeFile(path, 'earlier line\n');
    const log = openLog({});
    log.logRequest(request('a'));
    await log.flush();
    expect(await lines()).toEqual(['earlier line', 'a 200']);
  });

  it('flushes on its timer without being asked', async () => {
    const log = openLog({}, { flushIntervalMs: 20 });
    log.logRequest(request('timer'));
    await eventually(async () => (await lines()).length === 1);
    expect(await lines()).toEqual(['timer 200']);
  });

  it('writes soon once the buffer passes flushBytes', async () => {
    const log = openLog({}, { flushIntervalMs: 60_000, flushBytes: 64 });
    for (let i = 0; i < 20; i++) log.logRequest(request(`id-${i}`));
    await eventually(async () => (await lines()).length === 20);
  });

  it('close writes what was logged, closes the file and drops later lines', async () => {
    const log = openLog({}, { flushIntervalMs: 60_000 });
    for (let i = 0; i < 3; i++) log.logRequest(request(`c${i}`, 503));
    await log.close();
    expect(await lines()).toEqual(['c0 503', 'c1 503', 'c2 503']);
    log.logRequest(request('late'));
    expect(log.dropped).toBe(1);
    await log.close();
    expect(await lines()).toHaveLength(3);
  });

  it('drops and counts lines beyond the buffer bound instead of growing', async () => {
    // Each line is "dNN 200\n" (8 characters); 40 characters hold five of them.
    const log = openLog({}, { flushIntervalMs: 60_000, flushBytes: 1 << 20, maxBufferedBytes: 40 });
    for (let i = 10; i < 30; i++) log.logRequest(request(`d${i}`));
    expect(log.dropped).toBe(15);
    await log.flush();
    expect(await lines()).toEqual(['d10 200', 'd11 200', 'd12 200', 'd13 200', 'd14 200']);
    // Written lines free the bound again.
    log.logRequest(request('d30'));
    await log.flush();
    expect((await lines()).at(-1)).toBe('d30 200');
    expect(log.dropped).toBe(15);
  });

  it('reports a write error once, never throws into the caller, and drops from then on', async () => {
    path = join(dir, 'missing-dir', 'access.log');
    const errors: Error[] = [];
    const log = openLog({}, { onError: (err) => errors.push(err) });
    log.logRequest(request('lost'));
    await eventually(async () => errors.length > 0);
    await log.flush();
    expect(() => log.logRequest(request('after'))).not.toThrow();
    expect(errors).toHaveLength(1);
    expect((errors[0] as NodeJS.ErrnoException).code).toBe('ENOENT');
    expect(log.dropped).toBe(2);
    await log.close();
  });

  it('writes JSON lines in the JSON encoding', async () => {
    const log = openLog({ encoding: 'JSON', format: '{"id":"%REQ(X-REQUEST-ID)%","code":"%RESPONSE_CODE%"}' });
    log.logRequest(request('j1', 201));
    await log.flush();
    expect((await lines()).map((l) => JSON.parse(l))).toEqual([{ code: 201, id: 'j1' }]);
  });

  it("falls back to Istio's default JSON fields, with a warning, for a format that is not a JSON object", async () => {
    const warnings: string[] = [];
    const log = openLog({ encoding: 'JSON', format: '{systemTime: %START_TIME%}' }, { onWarning: (m) => warnings.push(m) });
    log.logRequest(request('fallback'));
    await log.flush();
    expect(warnings).toHaveLength(1);
    expect(JSON.parse((await lines())[0]!)).toMatchObject({ request_id: 'fallback', response_code: 200, method: 'GET' });
  });

  it('refuses a TEXT format with an unknown operator when opened', () => {
    expect(() => openLog({ format: '%NOT_AN_OPERATOR%\n' })).toThrow(/unknown operator %NOT_AN_OPERATOR% at column 1/);
  });
});
