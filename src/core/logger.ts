/**
 * A small leveled logger writing one line per event to stderr (or a sink given by tests).
 * Text format: `2026-01-01T00:00:00.000Z info  scope: message`; JSON format (Istio's
 * --log_as_json): `{"time":"…","level":"info","scope":"…","msg":"…"}`. The level can change at
 * runtime (admin `/logging?level=`) and applies to every child logger. Logging is never on the
 * request path.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'off';
export type LogFormat = 'text' | 'json';

export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'off'];

const RANK: Readonly<Record<LogLevel, number>> = { debug: 10, info: 20, warn: 30, error: 40, off: 100 };

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  child(scope: string): Logger;
  /** The current level, shared by this logger, its parent and its children. */
  readonly level: LogLevel;
  setLevel(level: LogLevel): void;
}

export type LogSink = (line: string) => void;

const stderrSink: LogSink = (line) => process.stderr.write(line + '\n');

export function isLogLevel(value: string): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

export function createLogger(options: { level?: LogLevel; sink?: LogSink; scope?: string; format?: LogFormat } = {}): Logger {
  const shared = { level: options.level ?? 'info' };
  const sink = options.sink ?? stderrSink;
  const json = options.format === 'json';
  const make = (scope: string): Logger => {
    const emit = (level: LogLevel, message: string): void => {
      if (RANK[level] < RANK[shared.level]) return;
      const time = new Date().toISOString();
      sink(json ? JSON.stringify({ time, level, scope, msg: message }) : `${time} ${level.padEnd(5)} ${scope}: ${message}`);
    };
    return {
      debug: (m) => emit('debug', m),
      info: (m) => emit('info', m),
      warn: (m) => emit('warn', m),
      error: (m) => emit('error', m),
      child: (s) => make(`${scope}.${s}`),
      get level() {
        return shared.level;
      },
      setLevel: (level) => void (shared.level = level),
    };
  };
  return make(options.scope ?? 'skiff');
}

/** A logger that drops everything, whatever level is set on it; for embedding and tests that do not inspect logs. */
export const silentLogger: Logger = { ...createLogger({ level: 'off' }), setLevel: () => undefined };
