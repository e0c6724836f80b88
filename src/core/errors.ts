/**
 * Errors with stable codes. A code names what happened so a log line, a test or an operator can
 * act on it without parsing the message; messages are for people and may change.
 */
export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'CONFIG_READ'
  | 'REGEX_UNSUPPORTED'
  | 'DURATION_INVALID'
  | 'LISTEN_FAILED'
  | 'USAGE';

export class SkiffError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SkiffError';
    this.code = code;
  }
}
