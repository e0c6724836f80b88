/**
 * The access log: Istio's accessLogFile / accessLogEncoding / accessLogFormat. Finished records
 * are formatted with a format compiled once, and the lines are buffered and written in batches
 * (every `flushIntervalMs`, or soon after `flushBytes` are waiting), so the data path pays for
 * a format and an array push, never for I/O.
 *
 * Backpressure: lines wait in memory while the destination is busy. Once more than
 * `maxBufferedBytes` wait (here and in the stream's own buffer), new lines are dropped and
 * counted (`dropped`) instead of growing memory without bound. A write error never throws into
 * the caller: it is counted, its lines are counted as dropped, and the first one is reported to
 * `onError`; after a stream error every later line is dropped.
 */
import { createWriteStream } from 'node:fs';
import type { Writable } from 'node:stream';
import type { StreamInfo } from '../http/stream.js';
import type { AccessLogSettings } from '../model/telemetry.js';
import type { TcpSessionInfo } from '../tcp/tcp-proxy.js';
import {
  compileJsonFormat,
  compileTextFormat,
  ISTIO_DEFAULT_JSON_FORMAT,
  ISTIO_DEFAULT_TEXT_FORMAT,
  type AccessLogFormatter,
  type JsonFormatFields,
} from './access-log-format.js';

export interface AccessLogOptions {
  /** How long a line may wait in the buffer (default 1000 ms). */
  readonly flushIntervalMs?: number;
  /** A write starts (on the next turn) once this much is buffered (default 64 KiB). */
  readonly flushBytes?: number;
  /** Above this much waiting (buffer + stream), new lines are dropped (default 4 MiB). */
  readonly maxBufferedBytes?: number;
  /** The first write error (later ones are only counted). */
  readonly onError?: (error: Error) => void;
  /** A configuration Istio tolerates but ignores, e.g. a JSON format that is not a JSON object. */
  readonly onWarning?: (message: string) => void;
}

/**
 * The formatter for `settings`, as Istio builds it: TEXT uses the format string verbatim (no
 * newline is added, as in Envoy) or Istio's default; JSON parses the format as a JSON object and,
 * like Istio, falls back to the default fields (with a warning) when it is not one.
 */
export function accessLogFormatter(settings: AccessLogSettings, onWarning?: (message: string) => void): AccessLogFormatter {
  if (settings.encoding === 'TEXT') return compileTextFormat(settings.format === '' ? ISTIO_DEFAULT_TEXT_FORMAT : settings.format);
  if (settings.format === '') return compileJsonFormat(ISTIO_DEFAULT_JSON_FORMAT);
  let parsed: unknown;
  try {
    parsed = JSON.parse(settings.format);
  } catch (err) {
    onWarning?.(`access log JSON format is not valid JSON (${(err as Error).message}); using Istio's default fields`);
    return compileJsonFormat(ISTIO_DEFAULT_JSON_FORMAT);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed) || Object.keys(parsed).length === 0) {
    onWarning?.("access log JSON format is not a non-empty JSON object; using Istio's default fields");
    return compileJsonFormat(ISTIO_DEFAULT_JSON_FORMAT);
  }
  return compileJsonFormat(parsed as JsonFormatFields);
}

const DEFAULT_FLUSH_INTERVAL_MS = 1000;
const DEFAULT_FLUSH_BYTES = 64 * 1024;
const DEFAULT_MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

/** One access-log destination with its compiled format; see the module comment for the contract. */
export class AccessLog {
  readonly #format: AccessLogFormatter;
  readonly #out: Writable;
  /** The stream is ours to end (a file), not the process's (stdout, stderr). */
  readonly #owned: boolean;
  readonly #flushIntervalMs: number;
  readonly #flushBytes: number;
  readonly #maxBufferedBytes: number;
  readonly #onError: ((error: Error) => void) | undefined;

  /**
   * Lines not yet handed to the stream. Invariant: `#bufferedBytes` is their total string length
   * (UTF-16 units, which is bytes for the ASCII that log lines almost always are).
   */
  #lines: string[] = [];
  #bufferedBytes = 0;
  /** Writes handed to the stream whose callback has not run yet. */
  #inFlight = 0;
  /** The stream refused more (write() returned false) until its 'drain'. */
  #blocked = false;
  /** The stream failed; every line from now on is dropped. */
  #broken = false;
  #closed = false;
  #closing: Promise<void> | null = null;
  #reported = false;
  #dropped = 0;
  #errors = 0;
  #timer: NodeJS.Timeout | null = null;
  #immediate: NodeJS.Immediate | null = null;
  #waiters: Array<() => void> = [];

  /** The access log for `settings`, or null when it is off (`file: ''`). Throws on a bad format. */
  static open(settings: AccessLogSettings, options: AccessLogOptions = {}): AccessLog | null {
    return settings.file === '' ? null : new AccessLog(settings, options);
  }

  /** Opens `settings.file` (appending; created if missing). Throws on a bad format. */
  constructor(settings: AccessLogSettings, options: AccessLogOptions = {}) {
    this.#format = accessLogFormatter(settings, options.onWarning);
    this.#flushIntervalMs = options.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS;
    this.#flushBytes = options.flushBytes ?? DEFAULT_FLUSH_BYTES;
    this.#maxBufferedBytes = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
    this.#onError = options.onError;
    if (settings.file === '/dev/stdout' || settings.file === '/dev/stderr') {
      this.#out = settings.file === '/dev/stdout' ? process.stdout : process.stderr;
      this.#owned = false;
    } else {
      this.#out = createWriteStream(settings.file, { flags: 'a' });
      this.#owned = true;
    }
    this.#out.on('error', this.#onStreamError);
  }

  /** Lines not written because the destination was too slow, had failed, or the log was closed. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Write and format errors seen (the first one went to `onError`). */
  get errors(): number {
    return this.#errors;
  }

  /** Logs a finished HTTP request. Never throws and never waits. */
  logRequest(info: StreamInfo): void {
    this.#log(info);
  }

  /** Logs a finished TCP connection. Never throws and never waits. */
  logTcp(info: TcpSessionInfo): void {
    this.#log(info);
  }

  /** Resolves once every line logged so far has been written (or dropped, if the stream failed). */
  flush(): Promise<void> {
    this.#write();
    if (this.#idle()) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /**
   * Writes what was logged before the call, then closes the file (stdout is left open). Lines
   * logged afterwards are dropped. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    await this.flush();
    this.#clearTimers();
    const out = this.#out;
    if (this.#owned && !this.#broken && !out.destroyed) {
      await new Promise<void>((resolve) => {
        out.once('close', resolve);
        out.end();
      });
    }
    // A file stream keeps the listener (a late error must not crash the process); stdout is shared.
    if (!this.#owned) out.removeListener('error', this.#onStreamError);
  }

  #log(record: StreamInfo | TcpSessionInfo): void {
    if (this.#closed || this.#broken) {
      this.#dropped++;
      return;
    }
    let line: string;
    try {
      line = this.#format(record);
    } catch (err) {
      this.#dropped++;
      this.#fail(err as Error);
      return;
    }
    if (this.#bufferedBytes + this.#out.writableLength + line.length > this.#maxBufferedBytes) {
      this.#dropped++;
      return;
    }
    this.#lines.push(line);
    this.#bufferedBytes += line.length;
    if (this.#bufferedBytes >= this.#flushBytes) {
      this.#immediate ??= setImmediate(this.#onImmediate);
    } else if (this.#timer === null) {
      this.#timer = setTimeout(this.#onTimer, this.#flushIntervalMs);
      this.#timer.unref();
    }
  }

  /** Hands every buffered line to the stream in one write, unless it asked to wait. */
  #write(): void {
    if (this.#lines.length === 0 || this.#blocked || this.#broken) return;
    this.#clearTimers();
    const lines = this.#lines;
    const count = lines.length;
    const data = count === 1 ? lines[0]! : lines.join('');
    this.#lines = [];
    this.#bufferedBytes = 0;
    this.#inFlight++;
    const ok = this.#out.write(data, (err) => this.#written(count, err ?? null));
    if (!ok) {
      this.#blocked = true;
      this.#out.once('drain', this.#onDrain);
    }
  }

  /** A write's callback. A failed write also emits 'error' on the stream, which reports it. */
  #written(count: number, err: Error | null): void {
    this.#inFlight--;
    if (err !== null) this.#dropped += count;
    this.#settle();
  }

  readonly #onDrain = (): void => {
    this.#blocked = false;
    this.#write();
    this.#settle();
  };

  readonly #onTimer = (): void => {
    this.#timer = null;
    this.#write();
  };

  readonly #onImmediate = (): void => {
    this.#immediate = null;
    this.#write();
  };

  readonly #onStreamError = (err: Error): void => {
    this.#broken = true;
    this.#dropped += this.#lines.length;
    this.#lines = [];
    this.#bufferedBytes = 0;
    this.#clearTimers();
    this.#fail(err);
    this.#settle();
  };

  #fail(err: Error): void {
    this.#errors++;
    if (this.#reported) return;
    this.#reported = true;
    try {
      this.#onError?.(err);
    } catch {
      // A failing reporter must not reach the data path either.
    }
  }

  #idle(): boolean {
    return this.#broken || (this.#inFlight === 0 && this.#lines.length === 0);
  }

  #settle(): void {
    if (this.#waiters.length === 0 || !this.#idle()) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const resolve of waiters) resolve();
  }

  #clearTimers(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    if (this.#immediate !== null) clearImmediate(this.#immediate);
    this.#timer = null;
    this.#immediate = null;
  }
}
