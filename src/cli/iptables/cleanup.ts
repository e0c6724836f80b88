/**
 * Removing what `skiff iptables` (or istio-iptables) installed, planned from `iptables-save`
 * output: every jump to an ISTIO_* chain, the chains themselves, and the built-in-chain rules the
 * given flags would add. Pure: the caller runs the tools.
 */
import type { IpFamily, IptablesConfig } from './flags.js';
import { BUILT_IN_CHAINS, familyRules, jumpTarget } from './rules.js';

/** Tables in which cleanup looks for ISTIO_* chains (raw holds Istio's DNS-capture chains). */
const CLEAN_TABLES = ['mangle', 'nat', 'raw'] as const;

export interface CleanupPlan {
  /**
   * Input for `iptables-restore --noflush` (empty when there is nothing to do): deletes every
   * jump to an ISTIO_* chain from another chain, then flushes and deletes the ISTIO_* chains.
   */
  readonly restore: string;
  /**
   * The builtInRuleDeletes whose chain holds rules other than jumps to ISTIO_* (in an empty chain
   * there is nothing to delete). Run each until it fails: a rule added twice is there twice.
   */
  readonly deletes: readonly (readonly string[])[];
}

interface SavedTable {
  readonly chains: readonly string[];
  /** `-A CHAIN …` lines, verbatim. */
  readonly rules: readonly { readonly chain: string; readonly line: string }[];
}

/**
 * `iptables` argument lists (`-t TABLE -D CHAIN …`) deleting each rule that `config` puts straight
 * into a built-in chain without jumping to an ISTIO_* chain (interface exclusions, TPROXY marks),
 * in either interception mode, once each.
 */
export function builtInRuleDeletes(config: IptablesConfig, family: IpFamily): (readonly string[])[] {
  const deletes = new Map<string, readonly string[]>();
  for (const mode of ['REDIRECT', 'TPROXY'] as const) {
    for (const r of familyRules({ ...config, mode }, family).rules) {
      if (!BUILT_IN_CHAINS.has(r.chain) || jumpTarget(r.args)?.startsWith('ISTIO_')) continue;
      const args = ['-t', r.table, '-D', r.chain, ...r.args];
      deletes.set(args.join(' '), args);
    }
  }
  return [...deletes.values()];
}

/** Splits `iptables-save` output into tables. */
export function parseSave(text: string): Map<string, SavedTable> {
  const tables = new Map<string, { chains: string[]; rules: { chain: string; line: string }[] }>();
  let current: { chains: string[]; rules: { chain: string; line: string }[] } | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) {
      current = { chains: [], rules: [] };
      tables.set(line.slice(1).trim(), current);
    } else if (current === undefined || line === '' || line.startsWith('#') || line === 'COMMIT') {
      continue;
    } else if (line.startsWith(':')) {
      current.chains.push(line.slice(1).split(/\s+/)[0]!);
    } else if (line.startsWith('-A ')) {
      current.rules.push({ chain: line.split(/\s+/)[1]!, line });
    }
  }
  return tables;
}

/** The words of an iptables-save rule, keeping quoted strings (comments) whole. */
function words(line: string): string[] {
  return line.match(/"(?:[^"\\]|\\.)*"|\S+/g) ?? [];
}

function jumpsToIstio(line: string): boolean {
  const w = words(line);
  return w.some((word, i) => (word === '-j' || word === '-g') && w[i + 1]?.startsWith('ISTIO_') === true);
}

/**
 * What removes skiff's rules for one family, given that family's current `iptables-save` output.
 * Idempotent: with nothing installed, the plan is empty.
 */
export function planCleanup(config: IptablesConfig, family: IpFamily, saved: string): CleanupPlan {
  const tables = parseSave(saved);
  let restore = '';
  for (const name of CLEAN_TABLES) {
    const table = tables.get(name);
    if (table === undefined) continue;
    const ours = table.chains.filter((c) => c.startsWith('ISTIO_'));
    const jumps = table.rules.filter((r) => !r.chain.startsWith('ISTIO_') && jumpsToIstio(r.line));
    if (ours.length === 0 && jumps.length === 0) continue;
    restore += `* ${name}\n`;
    for (const j of jumps) restore += `-D ${j.line.slice(3)}\n`;
    for (const c of ours) restore += `-F ${c}\n`;
    for (const c of ours) restore += `-X ${c}\n`;
    restore += 'COMMIT\n';
  }

  // Built-in chains that hold something besides jumps to ISTIO_*: only there can a rule of ours remain.
  const busy = new Set<string>();
  for (const [name, table] of tables) {
    for (const r of table.rules) if (BUILT_IN_CHAINS.has(r.chain) && !jumpsToIstio(r.line)) busy.add(`${name}/${r.chain}`);
  }
  const deletes = builtInRuleDeletes(config, family).filter((args) => busy.has(`${args[1]}/${args[3]}`));
  return { restore, deletes };
}
