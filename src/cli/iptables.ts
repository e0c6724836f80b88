/**
 * `skiff iptables [istio-iptables flags]`: installs the traffic-capture rules that Istio's
 * `istio-iptables` init container installs, or removes them (`--clean`), or prints them
 * (`--dry-run`). The rules themselves come from iptables/ (flags, rules, cleanup); this file runs the tools.
 *
 * Apply = clean, then `iptables-restore --noflush` (and `ip6tables-restore` when IPv6 rules are
 * wanted), so applying twice leaves one copy of every rule. IPv6 rules are wanted when
 * istio-iptables would want them (see wantsIpv6: the pod's first usable address is IPv6, or any
 * is with --dual-stack / ISTIO_AGENT_DUAL_STACK=true); then ip6tables-restore must exist.
 * Cleaning covers IPv6 too whenever ip6tables-save is installed and works.
 *
 * Contract: 0 on success; 1 with `skiff: iptables: …` on stderr (the failing command, its exit
 * code and its stderr) when a tool fails; flag errors are thrown as SkiffError('USAGE').
 * If installing fails halfway, what was installed is removed again.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { delimiter, join } from 'node:path';
import { createLogger, type Logger } from '../core/logger.js';
import { builtInRuleDeletes, planCleanup } from './iptables/cleanup.js';
import { parseIptablesFlags, wantsIpv6, type IpFamily, type IptablesConfig } from './iptables/flags.js';
import { buildRules, type FamilyRules } from './iptables/rules.js';

/** A tool failed; the message says which, how, and what it printed. */
export class IptablesCommandError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IptablesCommandError';
  }
}

export async function runIptablesCommand(argv: string[]): Promise<number> {
  const config = parseIptablesFlags(argv, process.env);
  const addresses = Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((a) => a.address));
  const ipv6 = wantsIpv6(addresses, config.dualStack);
  const log = createLogger({ scope: 'skiff.iptables' });
  if (config.dryRun) {
    process.stdout.write(config.clean ? describeCleanup(config) : describeRules(config, ipv6));
    return 0;
  }
  try {
    if (config.clean) {
      const removed = await clean(config, log, ipv6);
      log.info(removed === 0 ? 'nothing to remove' : `removed ${removed} ISTIO_* chains and rules`);
    } else {
      await apply(config, log, ipv6);
    }
    return 0;
  } catch (err) {
    if (!(err instanceof IptablesCommandError)) throw err;
    process.stderr.write(`skiff: iptables: ${err.message}\n`);
    return 1;
  }
}

// === dry run ===

function describeRules(config: IptablesConfig, ipv6: boolean): string {
  const rules = buildRules(config);
  let out = `# IPv4: iptables-restore --noflush\n${rules.ipv4.restore}`;
  out += ipv6
    ? `# IPv6: ip6tables-restore --noflush\n${rules.ipv6.restore}`
    : '# IPv6: not installed (the first usable address is IPv4 or there is none; --dual-stack installs IPv6 rules whenever an IPv6 address exists)\n';
  return out;
}

function describeCleanup(config: IptablesConfig): string {
  let out = '# --clean, for IPv4 and IPv6: delete every jump to an ISTIO_* chain and every ISTIO_* chain (nat, mangle, raw),\n';
  out += '# then, where present, these rules:\n';
  for (const family of [4, 6] as const) {
    for (const args of builtInRuleDeletes(config, family)) out += `${tool(family, 'iptables')} ${args.join(' ')}\n`;
  }
  return out;
}

// === apply and clean ===

async function apply(config: IptablesConfig, log: Logger, ipv6: boolean): Promise<void> {
  if (config.mode === 'TPROXY') {
    log.warn('-m TPROXY: the rules are installed as istio-iptables would, but skiff serves REDIRECT capture only; inbound connections will be closed');
  }
  const rules = buildRules(config);
  if (ipv6 && !onPath(tool(6, 'iptables-restore'))) {
    throw new IptablesCommandError('the pod has an IPv6 address but ip6tables-restore is not installed');
  }
  await clean(config, log, ipv6);
  const families: FamilyRules[] = ipv6 ? [rules.ipv4, rules.ipv6] : [rules.ipv4];
  try {
    for (const f of families) {
      log.info(`${tool(f.family, 'iptables-restore')} --noflush with:\n${f.restore.trimEnd()}`);
      await must(tool(f.family, 'iptables-restore'), ['--noflush'], f.restore);
    }
    if (ipv6) await ipAdd(['-6', 'addr', 'add', '::6/128', 'dev', 'lo']);
    if (config.mode === 'TPROXY' && (config.inboundPorts === '*' || config.inboundPorts.length > 0)) {
      for (const f of families) await tproxyRoutes(config, f.family, 'add');
    }
  } catch (err) {
    // Do not leave half the capture in place: a pod with inbound but no outbound capture misbehaves quietly.
    await clean(config, log, ipv6).catch(() => undefined);
    throw err;
  }
  const counts = families.map((f) => `${f.rules.length} IPv${f.family}`).join(' and ');
  log.info(`installed ${counts} rules (${config.mode}, outbound to :${config.proxyPort}, inbound to :${config.inboundCapturePort})`);
}

/**
 * Removes what skiff or istio-iptables installed, for IPv4 and (when the tools work) IPv6.
 * Returns how many chains and rules it removed.
 */
async function clean(config: IptablesConfig, log: Logger, ipv6: boolean): Promise<number> {
  let removed = await cleanFamily(config, 4, log);
  if (!onPath(tool(6, 'iptables-save'))) return removed;
  try {
    removed += await cleanFamily(config, 6, log);
  } catch (err) {
    // No IPv6 in this kernel and none wanted: nothing to clean.
    if (ipv6) throw err;
  }
  return removed;
}

async function cleanFamily(config: IptablesConfig, family: IpFamily, log: Logger): Promise<number> {
  const saved = await must(tool(family, 'iptables-save'), []);
  const plan = planCleanup(config, family, saved.stdout);
  // One per -D and per -X line: the jumps and the chains.
  let removed = plan.restore.split('\n').filter((l) => l.startsWith('-D ') || l.startsWith('-X ')).length;
  if (plan.restore !== '') {
    log.debug(`${tool(family, 'iptables-restore')} --noflush with:\n${plan.restore.trimEnd()}`);
    await must(tool(family, 'iptables-restore'), ['--noflush'], plan.restore);
  }
  for (const args of plan.deletes) {
    // Each -D removes one copy; stop at the first failure (no such rule left).
    for (let i = 0; i < 64 && (await run(tool(family, 'iptables'), args)).code === 0; i++) removed++;
  }
  if (config.mode === 'TPROXY') await tproxyRoutes(config, family, 'del');
  return removed;
}

/** The policy routing TPROXY needs: marked packets are delivered locally (istio-iptables' ConfigureRoutes). */
async function tproxyRoutes(config: IptablesConfig, family: IpFamily, op: 'add' | 'del'): Promise<void> {
  const f = family === 4 ? 'inet' : 'inet6';
  const rule = ['-f', f, 'rule', op, 'fwmark', config.tproxyMark, 'lookup', config.tproxyRouteTable];
  const route = ['-f', f, 'route', op, 'local', family === 4 ? '0.0.0.0/0' : '::/0', 'dev', 'lo', 'table', config.tproxyRouteTable];
  if (op === 'add') {
    await ipAdd(rule);
    await ipAdd(route);
    return;
  }
  if (!onPath('ip')) return;
  for (let i = 0; i < 64; i++) if ((await run('ip', rule)).code !== 0) break;
  await run('ip', route);
}

/** `ip … add`, where "File exists" (or, for addresses, "already assigned") means it is already done. */
async function ipAdd(args: readonly string[]): Promise<void> {
  const r = await run('ip', args);
  if (r.code !== 0 && !/File exists|already assigned/i.test(r.stderr)) throw failure('ip', args, r);
}

// === running tools ===

function tool(family: IpFamily, name: 'iptables' | 'iptables-save' | 'iptables-restore'): string {
  return family === 4 ? name : name.replace(/^iptables/, 'ip6tables');
}

interface Result {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const TOOL_TIMEOUT_MS = 30_000;

/** Runs a tool to completion. A missing tool is an IptablesCommandError; a failing one is a non-zero code. */
function run(file: string, args: readonly string[], input?: string): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: TOOL_TIMEOUT_MS });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', (err: NodeJS.ErrnoException) => {
      reject(new IptablesCommandError(err.code === 'ENOENT' ? `${file} not found: install iptables (and iproute2)` : `${file}: ${err.message}`));
    });
    child.on('close', (code, signal) => resolve({ code: code ?? (signal !== null ? 128 : 1), stdout, stderr }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
  });
}

async function must(file: string, args: readonly string[], input?: string): Promise<Result> {
  const r = await run(file, args, input);
  if (r.code !== 0) throw failure(file, args, r, input);
  return r;
}

function failure(file: string, args: readonly string[], r: Result, input?: string): IptablesCommandError {
  let detail = r.stderr.trim() || r.stdout.trim() || '(no output)';
  // iptables-restore names the input line it rejected; show that line.
  const line = /line:? (\d+)/.exec(detail)?.[1];
  const text = line === undefined ? undefined : input?.split('\n')[Number(line) - 1];
  if (text !== undefined && text !== '') detail += `\n(input line ${line}: ${text})`;
  return new IptablesCommandError(`\`${[file, ...args].join(' ')}\` failed (exit ${r.code}): ${detail}`);
}

function onPath(name: string): boolean {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, name), fsConstants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}
