/** Shared flag parsing for the CLI commands. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { SkiffError } from '../core/errors.js';

export function parse<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: false, strict: true });
  } catch (err) {
    throw new SkiffError('USAGE', (err as Error).message);
  }
}

export function portFlag(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new SkiffError('USAGE', `--${name} must be a port number (0-65535), got "${value}"`);
  return n;
}

export function secondsFlag(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new SkiffError('USAGE', `--${name} must be a number of seconds (0 or more), got "${value}"`);
  return n;
}
