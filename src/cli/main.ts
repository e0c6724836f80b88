#!/usr/bin/env node
/** The `skiff` command: dispatches to one module per subcommand. */
import { readFileSync } from 'node:fs';
import { SkiffError } from '../core/errors.js';
import { demoCommand } from './demo.js';
import { runCommand } from './run.js';
import { validateCommand } from './validate.js';

const USAGE = `skiff — a TypeScript sidecar proxy for Istio-style meshes

Usage:
  skiff run -c <file|dir> [flags]     run the proxy with Istio YAML config
  skiff validate -c <file|dir>        check config; one line per problem, exit 1 on errors
  skiff demo                          start sample services and the proxy with an example mesh
  skiff --version | --help

Run flags:
  -c, --config <file|dir>   VirtualService, DestinationRule, ServiceEntry and MeshConfig YAML
  --outbound-port <n>       outbound listener (default 15001, on 127.0.0.1)
  --admin-port <n>          admin server (default 15000, on 127.0.0.1)
  --readiness-port <n>      readiness server, GET /healthz/ready (default 15021)
  --inbound-port, --status-port, --stats-port <n>   reserved for sidecar mode
  --log-level <level>       debug | info | warn | error | off (default info)
  --drain-time-s <n>        on SIGTERM/SIGINT, wait up to n seconds for busy connections (default 5)

Demo flags:
  --outbound-port, --admin-port, --readiness-port <n>   as for run (the sample services use 19080-19085)
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE);
      return 0;
    case '-v':
    case '--version':
    case 'version':
      process.stdout.write(`skiff ${version()}\n`);
      return 0;
    case 'run':
      return runCommand(rest);
    case 'validate':
      return validateCommand(rest);
    case 'demo':
      return demoCommand(rest);
    default:
      throw new SkiffError('USAGE', `unknown command "${command}"`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof SkiffError) {
      process.stderr.write(`skiff: ${err.message}\n`);
      if (err.code === 'USAGE') process.stderr.write('run "skiff --help" for usage\n');
    } else {
      process.stderr.write(`skiff: unexpected error: ${(err as Error).stack ?? String(err)}\n`);
    }
    process.exitCode = 1;
  },
);
