/**
 * `skiff inject -f FILE [-o OUT] [--image IMAGE] [--config-map NAME]`: `istioctl kube-inject`
 * for skiff. Reads Kubernetes manifests (`-f -` reads stdin), adds the `istio-init` and
 * `istio-proxy` containers to every pod template, and writes the result to stdout or OUT.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { SkiffError } from '../core/errors.js';
import { parse } from './args.js';

export const INJECT_OPTIONS = {
  filename: { type: 'string', short: 'f' },
  output: { type: 'string', short: 'o' },
  image: { type: 'string' },
  'config-map': { type: 'string' },
} as const;

/** A DNS-1123 subdomain, the rule for a ConfigMap's name. */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export async function injectCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, INJECT_OPTIONS);
  const file = values.filename;
  if (file === undefined || file === '') throw new SkiffError('USAGE', 'inject needs --filename <file> (-f - reads stdin)');
  const image = values.image;
  if (image !== undefined && (image === '' || /\s/.test(image))) throw new SkiffError('USAGE', `--image must be an image reference, got "${image}"`);
  const configMap = values['config-map'];
  if (configMap !== undefined && (configMap.length > 253 || !DNS_SUBDOMAIN.test(configMap))) {
    throw new SkiffError('USAGE', `--config-map must be a ConfigMap name (lowercase letters, digits, "-" and "."), got "${configMap}"`);
  }

  const text = file === '-' ? await readStdin() : await readInput(file);
  // The YAML library is loaded only for this command, not on every start of the proxy.
  const { injectManifests } = await import('./inject/manifests.js');
  const { output } = injectManifests(text, file === '-' ? '<stdin>' : file, {
    ...(image !== undefined && { image }),
    ...(configMap !== undefined && { configMap }),
  });

  if (values.output === undefined || values.output === '-') {
    process.stdout.write(output);
  } else {
    try {
      await writeFile(values.output, output);
    } catch (err) {
      throw new SkiffError('USAGE', `cannot write --output ${values.output}: ${(err as Error).message}`, { cause: err });
    }
  }
  return 0;
}

async function readInput(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new SkiffError('CONFIG_READ', `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
