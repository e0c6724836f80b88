/**
 * "Pods" on one machine for end-to-end tests: each pod is a network namespace with its own
 * /etc/netns/<ns>/hosts, joined to the others through a bridge that lives in a namespace of its
 * own (nothing is changed in the host's namespace). Commands run inside a pod through
 * `ip netns exec`, optionally as another uid (the proxy's 1337). Needs root and iproute2.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';

/** Why this machine cannot run namespace tests, or undefined when it can. */
export function netnsUnavailable(tools: readonly string[] = []): string | undefined {
  if (process.platform !== 'linux') return 'needs Linux network namespaces';
  if (process.getuid?.() !== 0) return 'needs root (network namespaces and iptables)';
  if (spawnSync('ip', ['netns', 'list']).status !== 0) return 'needs iproute2 (ip netns)';
  for (const t of tools) if (spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0) return `needs ${t}`;
  return undefined;
}

export interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface PodProcess {
  readonly child: ChildProcess;
  output(): string;
  /** Resolves once `pattern` appears on stdout or stderr; rejects on exit or after the deadline. */
  waitFor(pattern: RegExp, deadlineMs?: number): Promise<void>;
}

function sh(cmd: string, args: readonly string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.stdout}`);
}

export class PodNetwork {
  readonly #id = randomBytes(3).toString('hex');
  readonly #lan = `skiff-${this.#id}-lan`;
  readonly #pods = new Map<string, { ns: string; ip: string }>();
  readonly #processes: ChildProcess[] = [];

  /** Creates the bridge namespace; call `destroy` when done, even after a failure. */
  constructor(
    readonly subnet = '10.100.0',
    readonly subnet6 = 'fd00:100::',
  ) {
    sh('ip', ['netns', 'add', this.#lan]);
    sh('ip', ['-n', this.#lan, 'link', 'add', 'br0', 'type', 'bridge']);
    sh('ip', ['-n', this.#lan, 'link', 'set', 'br0', 'up']);
  }

  /**
   * A pod with addresses `<subnet>.<host>` and `<subnet6><host>` and an /etc/hosts naming
   * `hosts` (name → address).
   */
  addPod(name: string, host: number, hosts: Readonly<Record<string, string>>): string {
    const ns = `skiff-${this.#id}-${name}`;
    const ip = `${this.subnet}.${host}`;
    const peer = `v${this.#id}${this.#pods.size}`;
    sh('ip', ['netns', 'add', ns]);
    this.#pods.set(name, { ns, ip });
    sh('ip', ['-n', this.#lan, 'link', 'add', peer, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    sh('ip', ['-n', this.#lan, 'link', 'set', peer, 'master', 'br0', 'up']);
    sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    sh('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    sh('ip', ['-n', ns, 'addr', 'add', `${this.subnet6}${host}/64`, 'dev', 'eth0', 'nodad']);
    sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    // Service VIPs are outside the pod subnet: a default route makes them routable, so that the
    // capture rules (not the routing table) decide where their packets go.
    sh('ip', ['-n', ns, 'route', 'add', 'default', 'dev', 'eth0']);
    mkdirSync(`/etc/netns/${ns}`, { recursive: true });
    const lines = ['127.0.0.1 localhost', `${ip} ${name}`, ...Object.entries(hosts).map(([h, a]) => `${a} ${h}`)];
    writeFileSync(`/etc/netns/${ns}/hosts`, lines.join('\n') + '\n');
    return ip;
  }

  #ns(pod: string): string {
    const p = this.#pods.get(pod);
    if (p === undefined) throw new Error(`no pod ${pod}`);
    return p.ns;
  }

  #argv(pod: string, cmd: string, args: readonly string[], uid?: number): string[] {
    const asUser = uid === undefined ? [] : ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups'];
    return ['netns', 'exec', this.#ns(pod), ...asUser, cmd, ...args];
  }

  /** Runs a command in the pod to completion (at most `timeoutMs`). */
  exec(pod: string, cmd: string, args: readonly string[], options: { uid?: number; timeoutMs?: number } = {}): Promise<Run> {
    return new Promise((resolve) => {
      execFile('ip', this.#argv(pod, cmd, args, options.uid), { timeout: options.timeoutMs ?? 15_000 }, (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
        resolve({ code, stdout, stderr });
      });
    });
  }

  /** Starts a long-running command in the pod; `destroy` kills it. */
  start(pod: string, cmd: string, args: readonly string[], options: { uid?: number; env?: Record<string, string> } = {}): PodProcess {
    const child = spawn('ip', this.#argv(pod, cmd, args, options.uid), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
    this.#processes.push(child);
    let out = '';
    const waiters = new Set<() => void>();
    const append = (s: string): void => {
      out += s;
      for (const w of [...waiters]) w();
    };
    child.stdout!.setEncoding('utf8').on('data', append);
    child.stderr!.setEncoding('utf8').on('data', append);
    return {
      child,
      output: () => out,
      waitFor: (pattern, deadlineMs = 15_000) =>
        new Promise<void>((resolve, reject) => {
          const check = (): void => {
            if (pattern.test(out)) {
              cleanup();
              resolve();
            }
          };
          const onExit = (): void => {
            cleanup();
            reject(new Error(`${cmd} exited before ${pattern}:\n${out}`));
          };
          const timer = setTimeout(() => {
            cleanup();
            reject(new Error(`no ${pattern} within ${deadlineMs} ms from ${cmd}:\n${out}`));
          }, deadlineMs);
          const cleanup = (): void => {
            clearTimeout(timer);
            waiters.delete(check);
            child.off('exit', onExit);
          };
          waiters.add(check);
          child.once('exit', onExit);
          check();
        }),
    };
  }

  /** Kills every started process, then deletes the namespaces and their /etc/netns entries. */
  async destroy(): Promise<void> {
    await Promise.all(
      this.#processes.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            c.once('exit', () => resolve());
            c.kill('SIGKILL');
          }),
      ),
    );
    for (const { ns } of this.#pods.values()) {
      spawnSync('ip', ['netns', 'del', ns]);
      rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    }
    spawnSync('ip', ['netns', 'del', this.#lan]);
  }
}
