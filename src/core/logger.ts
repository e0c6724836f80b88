/**
 * A small leveled logger writing one line per event to stderr (or a sink given by tests).
 * Format: `2026-01-01T00:00:00.000Z info  scope: message`. Logging is never on the request path.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'off';

const RANK: Readonly<Record<LogLevel, number>> = { debug: 10, info: 20, warn: 30, error: 40, off: 100 };

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  child(scope: string): Logger;
}

export type LogSink = (line: string) => void;

const stderrSink: LogSink = (line) => process.stderr.write(line + '\n');

export function createLogger(options: { level?: LogLevel; sink?: LogSink; scope?: string } = {}): Logger {
  const threshold = RANK[options.level ?? 'info'];
  const sink = options.sink ?? stderrSink;
  const make = (scope: string): Logger => {
    const emit = (level: LogLevel, message: string): void => {
      if (RANK[level] < threshold) return;
      sink(`${new Date().toISOString()} ${level.padEnd(5)} ${scope}: ${message}`);
    };
    return {
      debug: (m) => emit('debug', m),
      info: (m) => emit('info', m),
      warn: (m) => emit('warn', m),
      error: (m) => emit('error', m),
      child: (s) => make(`${scope}.${s}`),
    };
  };
  return make(options.scope ?? 'skiff');
}

/** A logger that drops everything; for embedding and tests that do not inspect logs. */
export const silentLogger: Logger = createLogger({ level: 'off' });
