/** `skiff validate -c PATH`: one line per problem; exit 1 when any is an error. */
import { formatDiagnostic } from '../config/diagnostics.js';
import { loadConfig } from '../config/load.js';
import { SkiffError } from '../core/errors.js';
import { telemetrySettingsProblems } from '../lifecycle/telemetry.js';
import { parse } from './args.js';

export async function validateCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { config: { type: 'string', short: 'c' } });
  if (values.config === undefined) throw new SkiffError('USAGE', 'validate needs --config <file|dir>');
  const result = await loadConfig(values.config);
  for (const d of result.diagnostics) process.stdout.write(formatDiagnostic(d) + '\n');
  if (result.model === undefined) return 1;
  // What only compiling shows (the access log format): the proxy would refuse it too.
  const problems = telemetrySettingsProblems(result.model.mesh);
  for (const p of problems) process.stdout.write(`${values.config}: ${p}\n`);
  if (problems.length > 0) return 1;
  const n = result.files.length;
  process.stderr.write(`${values.config}: valid (${n} file${n === 1 ? '' : 's'})\n`);
  return 0;
}
