/**
 * SO_ORIGINAL_DST through koffi against the real kernel: in a network namespace with REDIRECT
 * rules for one IPv4 and one IPv6 address, a listener reads where each connection was going
 * before the redirect; a connection to the listener itself reports its own address. Needs root,
 * iproute2, iptables and ip6tables; elsewhere it is skipped with the reason.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt } from '../helpers/cli.js';
import { netnsUnavailable, PodNetwork, type PodProcess } from '../helpers/netns.js';

const SKIP = netnsUnavailable(['iptables', 'ip6tables', 'curl']);
const APPS = fileURLToPath(new URL('./apps.mjs', import.meta.url));
const PORT = '15001';

describe.skipIf(SKIP !== undefined)(`original destination of redirected connections${SKIP === undefined ? '' : ` (skipped: ${SKIP})`}`, () => {
  let net: PodNetwork;
  let listener: PodProcess;

  beforeAll(async () => {
    assertBuilt();
    net = new PodNetwork('10.101.0', 'fd00:101::');
    net.addPod('p', 2, {});
    const setup: Array<[string, string[]]> = [
      ['ip', ['-6', 'addr', 'add', 'fd00:5::2/64', 'dev', 'eth0', 'nodad']],
      ['ip', ['-6', 'route', 'add', 'default', 'dev', 'eth0']],
      ['iptables', ['-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-d', '10.1.2.3', '-j', 'REDIRECT', '--to-ports', PORT]],
      ['ip6tables', ['-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-d', 'fd00:9::5', '-j', 'REDIRECT', '--to-ports', PORT]],
    ];
    for (const [cmd, args] of setup) {
      const r = await net.exec('p', cmd, args);
      expect(r.code, `${cmd} ${args.join(' ')}: ${r.stderr}`).toBe(0);
    }
    listener = net.start('p', process.execPath, [APPS, 'original-dst', PORT]);
    await listener.waitFor(/listening/);
  });

  afterAll(async () => {
    await net?.destroy();
  });

  const connectAndRead = async (url: string): Promise<unknown> => {
    const before = listener.output().length;
    await net.exec('p', 'curl', ['-s', '--max-time', '2', url]);
    const line = listener.output().slice(before).split('\n').find((l) => l.startsWith('{'));
    return line === undefined ? undefined : JSON.parse(line);
  };

  it('IPv4: the address and port the client dialled', async () => {
    expect(await connectAndRead('http://10.1.2.3:9080/')).toEqual({ destination: { address: '10.1.2.3', port: 9080 }, redirected: true });
  });

  it('IPv6: the address and port the client dialled', async () => {
    expect(await connectAndRead('http://[fd00:9::5]:9443/')).toEqual({ destination: { address: 'fd00:9::5', port: 9443 }, redirected: true });
  });

  it('a connection that was not redirected reports the listener itself', async () => {
    expect(await connectAndRead(`http://127.0.0.1:${PORT}/`)).toEqual({ destination: { address: '127.0.0.1', port: Number(PORT) }, redirected: false });
  });
});
