/**
 * `skiff iptables` against the real iptables, in a fresh network namespace: install, install
 * again, clean, clean again, TPROXY routing, IPv6, a failing install rolled back. Runs the built
 * CLI (dist/cli/main.js) inside the namespace; `npm test` builds first,
 * run `npm run build` before running this file alone. Needs root, iptables and `ip netns`.
 */
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseIptablesFlags } from '../../src/cli/iptables/flags.js';
import { buildRules, type Rule } from '../../src/cli/iptables/rules.js';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

/** Why this machine cannot run these tests, or undefined when it can. */
function missing(): string | undefined {
  if (process.platform !== 'linux') return 'Linux only';
  if (process.getuid?.() !== 0) return 'needs root';
  if (spawnSync('iptables', ['--version']).status !== 0) return 'needs the iptables binary';
  if (spawnSync('ip', ['netns', 'list']).status !== 0) return 'needs ip netns (iproute2)';
  return undefined;
}
const SKIP = missing();

const ISTIO_13_ARGS = ['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-x', '', '-b', '*', '-d', '15020'];

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

describe.skipIf(SKIP !== undefined)(`skiff iptables in a network namespace${SKIP === undefined ? '' : ` (skipped: ${SKIP})`}`, () => {
  const ns = `skiff-ipt-${randomBytes(4).toString('hex')}`;

  /** Runs a command inside the namespace (never outside it). */
  const inNs = (file: string, args: readonly string[]): Promise<Run> =>
    new Promise((resolve) => {
      execFile('ip', ['netns', 'exec', ns, file, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
        resolve({ code, stdout, stderr });
      });
    });

  /** The built `skiff iptables ARGS`, inside the namespace. */
  const skiffIptables = (args: readonly string[]): Promise<Run> => inNs(process.execPath, [CLI, 'iptables', ...args]);

  const save = async (tool: 'iptables-save' | 'ip6tables-save', table?: string): Promise<string> => {
    const r = await inNs(tool, table === undefined ? [] : ['-t', table]);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout;
  };
  /** The `-A` lines of a save, in order. */
  const ruleLines = (saved: string): string[] => saved.split('\n').filter((l) => l.startsWith('-A '));
  const istioChains = (saved: string): string[] => saved.split('\n').filter((l) => /^:ISTIO_/.test(l));

  /** Every rule skiff means to install is present, checked by iptables itself (-C) rather than by text. */
  const expectInstalled = async (tool: 'iptables' | 'ip6tables', rules: readonly Rule[]): Promise<void> => {
    for (const r of rules) {
      const check = await inNs(tool, ['-t', r.table, '-C', r.chain, ...r.args]);
      expect(check.code, `${tool} -t ${r.table} ${r.line}: ${check.stderr}`).toBe(0);
    }
  };

  beforeAll(() => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first`);
    const add = spawnSync('ip', ['netns', 'add', ns], { encoding: 'utf8' });
    if (add.status !== 0) throw new Error(`ip netns add ${ns}: ${add.stderr}`);
  });

  afterAll(() => {
    spawnSync('ip', ['netns', 'del', ns]);
  });

  it('installs the Istio 1.3 init-container rules, unchanged args', async () => {
    const r = await skiffIptables(ISTIO_13_ARGS);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/installed 16 IPv4 rules \(REDIRECT/);
    const nat = await save('iptables-save', 'nat');
    expect(istioChains(nat).map((l) => l.split(' ')[0])).toEqual([':ISTIO_INBOUND', ':ISTIO_IN_REDIRECT', ':ISTIO_OUTPUT', ':ISTIO_REDIRECT']);
    const expected = buildRules(parseIptablesFlags(ISTIO_13_ARGS)).ipv4.rules;
    expect(ruleLines(nat)).toHaveLength(expected.length);
    await expectInstalled('iptables', expected);
    // Order within ISTIO_INBOUND: the tunnel port, then -d's exclusion, then the catch-all.
    expect(ruleLines(nat).filter((l) => l.startsWith('-A ISTIO_INBOUND '))).toEqual([
      expect.stringMatching(/--dport 15008 -j RETURN$/),
      expect.stringMatching(/--dport 15020 -j RETURN$/),
      '-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT',
    ]);
    expect(ruleLines(nat).at(-2)).toBe('-A ISTIO_OUTPUT -j ISTIO_REDIRECT');
  });

  it('installing again replaces the rules instead of adding a second copy', async () => {
    const before = ruleLines(await save('iptables-save'));
    const r = await skiffIptables(ISTIO_13_ARGS);
    expect(r.code, r.stderr).toBe(0);
    expect(ruleLines(await save('iptables-save'))).toEqual(before);
  });

  it('--clean removes every ISTIO_ chain and jump; cleaning again, or with nothing installed, succeeds', async () => {
    for (const message of [/removed 6 ISTIO_\* chains and rules/, /nothing to remove/]) {
      const r = await skiffIptables(['--clean']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(message);
      const all = await save('iptables-save');
      expect(all).not.toContain('ISTIO_');
      expect(ruleLines(all)).toEqual([]);
    }
  });

  it('--dry-run prints the rules and changes nothing', async () => {
    const r = await skiffIptables([...ISTIO_13_ARGS, '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('# IPv4: iptables-restore --noflush\n* nat\n-N ISTIO_INBOUND\n');
    expect(r.stdout).toContain('-A ISTIO_OUTPUT -j ISTIO_REDIRECT\nCOMMIT\n');
    expect(await save('iptables-save')).not.toContain('ISTIO_');
  });

  it('TPROXY: mangle rules, policy routing, no duplicates on reinstall, and a clean that removes all of it', async () => {
    const args = ['-m', 'TPROXY', '-b', '*', '-d', '15020', '-c', 'eth9', '-i', '*'];
    for (let i = 0; i < 2; i++) {
      const r = await skiffIptables(args);
      expect(r.code, r.stderr).toBe(0);
    }
    const rules = buildRules(parseIptablesFlags(args)).ipv4.rules;
    const all = await save('iptables-save');
    expect(ruleLines(all)).toHaveLength(rules.length);
    await expectInstalled('iptables', rules);
    expect(istioChains(await save('iptables-save', 'mangle')).map((l) => l.split(' ')[0])).toEqual([':ISTIO_DIVERT', ':ISTIO_INBOUND', ':ISTIO_TPROXY']);
    const ipRules = (await inNs('ip', ['rule'])).stdout;
    expect(ipRules.match(/fwmark 0x539 lookup 133/g)).toHaveLength(1);
    expect((await inNs('ip', ['route', 'show', 'table', '133'])).stdout).toContain('local default dev lo');

    const r = await skiffIptables(['--clean', ...args]);
    expect(r.code, r.stderr).toBe(0);
    expect(ruleLines(await save('iptables-save'))).toEqual([]);
    expect((await inNs('ip', ['rule'])).stdout).not.toContain('lookup 133');
  });

  it('a failing install exits 1 with the command, its exit code and stderr, and leaves nothing behind', async () => {
    const r = await skiffIptables([...ISTIO_13_ARGS, '-u', 'no-such-user-skiff']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('skiff: iptables: `iptables-restore --noflush` failed (exit 2):');
    expect(r.stderr).toContain('no-such-user-skiff');
    expect(r.stderr).toMatch(/\(input line \d+: -A ISTIO_OUTPUT .*no-such-user-skiff/);
    expect(await save('iptables-save')).not.toContain('ISTIO_');
  });

  it('a bad flag is a USAGE error naming the flag, before anything runs', async () => {
    const r = await skiffIptables(['-x', '*']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('skiff: iptables: -x (--istio-service-exclude-cidr): invalid value "*"');
  });

  it('IPv6: a pod whose only usable address is IPv6 also gets ip6tables rules and the ::6 address', async () => {
    const up = await inNs('ip', ['link', 'set', 'lo', 'up']);
    expect(up.code, up.stderr).toBe(0);
    const addr = await inNs('ip', ['-6', 'addr', 'add', 'fd00::5/128', 'dev', 'lo']);
    expect(addr.code, addr.stderr).toBe(0);

    const r = await skiffIptables(ISTIO_13_ARGS);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/installed 16 IPv4 and 16 IPv6 rules/);
    const rules = buildRules(parseIptablesFlags(ISTIO_13_ARGS));
    await expectInstalled('iptables', rules.ipv4.rules);
    await expectInstalled('ip6tables', rules.ipv6.rules);
    expect(ruleLines(await save('ip6tables-save', 'nat'))).toHaveLength(rules.ipv6.rules.length);
    expect((await inNs('ip', ['-6', 'addr', 'show', 'dev', 'lo'])).stdout).toContain('inet6 ::6/128');

    const again = await skiffIptables(ISTIO_13_ARGS);
    expect(again.code, again.stderr).toBe(0);
    expect(ruleLines(await save('ip6tables-save', 'nat'))).toHaveLength(rules.ipv6.rules.length);

    const cleaned = await skiffIptables(['--clean']);
    expect(cleaned.code, cleaned.stderr).toBe(0);
    expect(await save('ip6tables-save')).not.toContain('ISTIO_');
    expect(await save('iptables-save')).not.toContain('ISTIO_');
  });
});
