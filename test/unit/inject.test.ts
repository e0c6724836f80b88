/**
 * `skiff inject` as a transform: manifests in, manifests out. What Istio's injector adds (and
 * where), which pods it leaves alone, how annotations steer the capture flags, and the output
 * contract: unchanged documents byte for byte, so injecting twice changes nothing.
 */
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { SkiffError } from '../../src/core/errors.js';
import { injectManifests } from '../../src/cli/inject/manifests.js';
// The proxy's reader of ISTIO_KUBE_APP_PROBERS: what the injector writes must parse.
import { parseAppProbers } from '../../src/admin/app-probes.js';
import type { SidecarOptions } from '../../src/cli/inject/sidecar-template.js';

// Manifests are loosely typed data.
type Obj = Record<string, any>;

const inject = (text: string, options?: SidecarOptions): string => injectManifests(text, 'in.yaml', options).output;

/** Every document as plain data. */
function docs(text: string): Obj[] {
  return parseAllDocuments(text).map((d) => d.toJS() as Obj);
}

function injectError(text: string): SkiffError {
  try {
    injectManifests(text, 'in.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(SkiffError);
    return err as SkiffError;
  }
  throw new Error('expected injection to fail');
}

const POD_SPEC = `      containers:
      - name: app
        image: example/app:1
        ports:
        - containerPort: 8080
`;

/** A workload of `kind` with one container, its pod template annotated and labelled as given. */
function workload(kind: string, options: { annotations?: string; labels?: string; extraSpec?: string; name?: string } = {}): string {
  const meta = ['    metadata:', `      labels: {app: app${options.labels ?? ''}}`];
  if (options.annotations !== undefined) meta.push('      annotations:', ...options.annotations.split('\n').map((l) => `        ${l}`));
  const template = `  template:\n${meta.join('\n')}\n    spec:\n${options.extraSpec ?? ''}${POD_SPEC}`;
  return `apiVersion: apps/v1\nkind: ${kind}\nmetadata:\n  name: ${options.name ?? 'app'}\nspec:\n  selector:\n    matchLabels: {app: app}\n${template}`;
}

/** The pod template (or Pod) of an object, as plain data. */
function podOf(obj: Obj): { metadata: Obj; spec: Obj } {
  switch (obj['kind']) {
    case 'Pod':
      return obj as { metadata: Obj; spec: Obj };
    case 'CronJob':
      return obj['spec']['jobTemplate']['spec']['template'];
    default:
      return obj['spec']['template'];
  }
}

const names = (list: Obj[] | undefined): string[] => (list ?? []).map((c) => c['name'] as string);

/** The istio-iptables args after "iptables". */
function captureArgsOf(text: string): string[] {
  const init = podOf(docs(inject(text))[0]!).spec['initContainers'][0];
  expect(init.args[0]).toBe('iptables');
  return init.args.slice(1);
}

const DEFAULT_CAPTURE = ['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020'];

describe('inject: what is added', () => {
  it('adds istio-init first, istio-proxy last, the config volume and the status annotation, as Istio does', () => {
    const [out] = docs(inject(workload('Deployment', { name: 'reviews-v1' })));
    const pod = podOf(out!);
    expect(names(pod.spec['initContainers'])).toEqual(['istio-init']);
    expect(names(pod.spec['containers'])).toEqual(['app', 'istio-proxy']);
    expect(pod.spec['volumes']).toEqual([{ name: 'skiff-config', configMap: { name: 'skiff-mesh' } }]);
    expect(pod.metadata['labels']).toEqual({ app: 'app' });
    expect(pod.metadata['annotations']).toEqual({
      'kubectl.kubernetes.io/default-container': 'app',
      'kubectl.kubernetes.io/default-logs-container': 'app',
      // Metrics merging: the proxy's own metrics are scraped even when the app has none.
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': '15020',
      'prometheus.io/path': '/stats/prometheus',
      'sidecar.istio.io/status': '{"initContainers":["istio-init"],"containers":["istio-proxy"],"volumes":["skiff-config"],"imagePullSecrets":null,"revision":"default"}',
    });
    expect(pod.spec['initContainers'][0]).toEqual({
      name: 'istio-init',
      image: 'localhost/skiff:latest',
      imagePullPolicy: 'IfNotPresent',
      args: ['iptables', ...DEFAULT_CAPTURE],
      resources: { requests: { cpu: '10m', memory: '10Mi' }, limits: { cpu: '2000m', memory: '1024Mi' } },
      securityContext: {
        allowPrivilegeEscalation: false,
        privileged: false,
        capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
        readOnlyRootFilesystem: false,
        runAsGroup: 0,
        runAsNonRoot: false,
        runAsUser: 0,
      },
    });
    const field = (name: string, fieldPath: string): Obj => ({ name, valueFrom: { fieldRef: { fieldPath } } });
    expect(pod.spec['containers'][1]).toEqual({
      name: 'istio-proxy',
      image: 'localhost/skiff:latest',
      imagePullPolicy: 'IfNotPresent',
      args: ['run', '--mode', 'sidecar', '-c', '/etc/skiff/config', '--concurrency', '2'],
      ports: [
        { containerPort: 15090, name: 'http-envoy-prom', protocol: 'TCP' },
        { containerPort: 15021, name: 'status-port', protocol: 'TCP' },
        { containerPort: 15020, name: 'http-monitoring', protocol: 'TCP' },
      ],
      env: [
        field('POD_NAME', 'metadata.name'),
        field('POD_NAMESPACE', 'metadata.namespace'),
        field('INSTANCE_IP', 'status.podIP'),
        field('SERVICE_ACCOUNT', 'spec.serviceAccountName'),
        { name: 'ISTIO_META_WORKLOAD_NAME', value: 'reviews-v1' },
      ],
      resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '2000m', memory: '1024Mi' } },
      readinessProbe: { httpGet: { path: '/healthz/ready', port: 15021 }, initialDelaySeconds: 0, periodSeconds: 15, timeoutSeconds: 3, failureThreshold: 4 },
      securityContext: {
        allowPrivilegeEscalation: false,
        privileged: false,
        capabilities: { drop: ['ALL'] },
        readOnlyRootFilesystem: true,
        runAsGroup: 1337,
        runAsNonRoot: true,
        runAsUser: 1337,
      },
      volumeMounts: [{ name: 'skiff-config', mountPath: '/etc/skiff/config', readOnly: true }],
    });
  });

  it('puts istio-init before the pod\'s own init containers and keeps its volumes, after which the config volume goes', () => {
    const extraSpec = `      initContainers:
      - name: migrate
        image: example/migrate:1
      volumes:
      - name: tmp
        emptyDir: {}
`;
    const pod = podOf(docs(inject(workload('Deployment', { extraSpec })))[0]!);
    expect(names(pod.spec['initContainers'])).toEqual(['istio-init', 'migrate']);
    expect(names(pod.spec['volumes'])).toEqual(['tmp', 'skiff-config']);
  });

  it('--image and --config-map choose the image of both containers and the ConfigMap', () => {
    const pod = podOf(docs(inject(workload('Deployment'), { image: 'registry.example/skiff:0.1.0', configMap: 'mesh-a' }))[0]!);
    expect(pod.spec['initContainers'][0].image).toBe('registry.example/skiff:0.1.0');
    expect(pod.spec['containers'][1].image).toBe('registry.example/skiff:0.1.0');
    expect(pod.spec['volumes']).toEqual([{ name: 'skiff-config', configMap: { name: 'mesh-a' } }]);
  });

  it('honours the proxyImage, resource and readiness-probe annotations as Istio does', () => {
    const annotations = [
      'sidecar.istio.io/proxyImage: example/skiff:dev',
      'sidecar.istio.io/proxyCPU: 50m',
      'sidecar.istio.io/proxyMemoryLimit: 256Mi',
      'readiness.status.sidecar.istio.io/periodSeconds: "5"',
      'readiness.status.sidecar.istio.io/failureThreshold: "30"',
      'readiness.status.sidecar.istio.io/initialDelaySeconds: "1"',
    ].join('\n');
    const pod = podOf(docs(inject(workload('Deployment', { annotations })))[0]!);
    const proxy = pod.spec['containers'][1];
    expect(proxy.image).toBe('example/skiff:dev');
    expect(pod.spec['initContainers'][0].image).toBe('example/skiff:dev');
    // Once any resource annotation is set, only the annotated values are used (Istio's template).
    expect(proxy.resources).toEqual({ requests: { cpu: '50m' }, limits: { memory: '256Mi' } });
    expect(proxy.readinessProbe).toEqual({ httpGet: { path: '/healthz/ready', port: 15021 }, initialDelaySeconds: 1, periodSeconds: 5, timeoutSeconds: 3, failureThreshold: 30 });
  });

  it('creates the template metadata and annotations when the pod has none', () => {
    const text = `apiVersion: v1
kind: Pod
metadata:
  name: bare
spec:
  containers:
  - {name: app, image: example/app:1}
`;
    const out = inject(text);
    const [pod] = docs(out);
    expect(Object.keys(pod!['metadata'])).toEqual(['name', 'annotations']);
    expect(pod!['metadata']['annotations']['sidecar.istio.io/status']).toContain('"istio-proxy"');
    expect(names(pod!['spec']['containers'])).toEqual(['app', 'istio-proxy']);
    expect(Object.keys(pod!['spec'])).toEqual(['initContainers', 'containers', 'volumes']);

    const template = `apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: app, image: example/app:1}
`;
    const job = docs(inject(template))[0]!;
    expect(Object.keys(job['spec']['template'])).toEqual(['metadata', 'spec']);
    expect(job['spec']['template']['metadata']['annotations']['sidecar.istio.io/status']).toBeDefined();
  });

  it('keeps kubectl default-container annotations the pod already has', () => {
    const pod = podOf(docs(inject(workload('Deployment', { annotations: 'kubectl.kubernetes.io/default-container: other' })))[0]!);
    expect(pod.metadata['annotations']['kubectl.kubernetes.io/default-container']).toBe('other');
    expect(pod.metadata['annotations']['kubectl.kubernetes.io/default-logs-container']).toBe('app');
  });
});

describe('inject: which objects', () => {
  const kinds = ['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'ReplicationController', 'Job'];
  it.each(kinds)('injects the pod template of a %s (spec.template)', (kind) => {
    const [out] = docs(inject(workload(kind, { name: `my-${kind.toLowerCase()}` })));
    const pod = podOf(out!);
    expect(names(pod.spec['containers'])).toEqual(['app', 'istio-proxy']);
    expect(names(pod.spec['initContainers'])).toEqual(['istio-init']);
    expect(pod.spec['containers'][1].env.at(-1)).toEqual({ name: 'ISTIO_META_WORKLOAD_NAME', value: `my-${kind.toLowerCase()}` });
  });

  it('injects a CronJob (spec.jobTemplate.spec.template) and a bare Pod', () => {
    const cron = `apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - {name: job, image: example/job:1}
`;
    const pod = `apiVersion: v1
kind: Pod
metadata:
  name: solo
  labels: {app: solo}
spec:
  containers:
  - {name: solo, image: example/solo:1}
`;
    const [c, p] = docs(inject(`${cron}---\n${pod}`));
    expect(names(podOf(c!).spec['containers'])).toEqual(['job', 'istio-proxy']);
    expect(podOf(c!).spec['containers'][1].env.at(-1)).toEqual({ name: 'ISTIO_META_WORKLOAD_NAME', value: 'nightly' });
    expect(names(podOf(p!).spec['containers'])).toEqual(['solo', 'istio-proxy']);
    expect(podOf(p!).metadata['annotations']['sidecar.istio.io/status']).toBeDefined();
  });

  it('injects the items of a kind: List, nested Lists too, leaving other items as they are', () => {
    const text = `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: app}
  spec:
    ports: [{port: 80}]
- ${workload('Deployment', { name: 'first' }).replace(/\n/g, '\n  ').trimEnd()}
- apiVersion: v1
  kind: List
  items:
  - ${workload('StatefulSet', { name: 'second' }).replace(/\n/g, '\n    ').trimEnd()}
`;
    const result = injectManifests(text, 'in.yaml');
    expect(result.injected).toBe(2);
    const [list] = docs(result.output);
    expect(list!['items'][0]).toEqual({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'app' }, spec: { ports: [{ port: 80 }] } });
    expect(names(podOf(list!['items'][1]).spec['containers'])).toEqual(['app', 'istio-proxy']);
    expect(names(podOf(list!['items'][2]['items'][0]).spec['containers'])).toEqual(['app', 'istio-proxy']);
    expect(inject(result.output)).toBe(result.output);
  });

  it('passes every other kind through byte for byte', () => {
    const text = `# services first
apiVersion: v1
kind: Service
metadata: {name: app}   # odd spacing kept
spec:
    ports:
        -   port: 80
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: app
spec:
  hosts: [app]
  http:
  - route:
    - destination: {host: app}
---
apiVersion: v1
kind: ConfigMap
metadata: not a map, but not ours to check
---
just: a map without kind
---
- a
- sequence
---
plain scalar
`;
    const result = injectManifests(text, 'in.yaml');
    expect(result).toEqual({ output: text, injected: 0 });
  });
});

describe('inject: multi-document output', () => {
  const SERVICE = `# The app's service.
apiVersion: v1
kind: Service
metadata: {name: app}
spec:
  ports:
  - {port: 80, targetPort: 8080}   # spacing as written
`;
  const text = `${SERVICE}---
# The app itself: injected.
${workload('Deployment')}---
${SERVICE}`;

  it('keeps separators, comments and untouched documents exactly, and yields valid YAML', () => {
    const out = inject(text);
    expect(out.startsWith(`${SERVICE}---\n# The app itself: injected.\napiVersion: apps/v1\n`)).toBe(true);
    expect(out.endsWith(`---\n${SERVICE}`)).toBe(true);
    const parsed = parseAllDocuments(out);
    expect(parsed.map((d) => d.errors)).toEqual([[], [], []]);
    expect(parsed.map((d) => (d.toJS() as Obj)['kind'])).toEqual(['Service', 'Deployment', 'Service']);
  });

  it('is idempotent: injecting the output again returns it byte for byte', () => {
    const once = inject(text);
    expect(once).not.toBe(text);
    expect(injectManifests(once, 'in.yaml')).toEqual({ output: once, injected: 0 });
    const held = inject(workload('Deployment', { annotations: 'sidecar.istio.io/holdApplicationUntilProxyStarts: "true"' }));
    expect(inject(held)).toBe(held);
  });

  it('keeps the indentation of block sequences a changed document uses', () => {
    const indented = `apiVersion: v1
kind: Pod
metadata:
  name: indented
spec:
  containers:
    - name: app
      image: example/app:1
      args:
        - --port=8080
`;
    const out = inject(indented);
    expect(out).toContain('  containers:\n    - name: app\n      image: example/app:1\n      args:\n        - --port=8080\n');
    expect(out).toContain('    - name: istio-proxy\n');
    expect(inject(workload('Deployment'))).toContain('      containers:\n      - name: app\n');
  });

  it('reads stdin-like input with no trailing newline and empty documents', () => {
    expect(inject('')).toBe('');
    expect(inject('---\n---\n')).toBe('---\n---\n');
    const out = inject(workload('Deployment').trimEnd());
    expect(docs(out).length).toBe(1);
    expect(names(podOf(docs(out)[0]!).spec['containers'])).toEqual(['app', 'istio-proxy']);
  });
});

describe('inject: which pods are left alone', () => {
  const unchanged = (text: string): void => {
    expect(injectManifests(text, 'in.yaml')).toEqual({ output: text, injected: 0 });
  };

  it('sidecar.istio.io/inject: "false" as a pod-template annotation or label opts out', () => {
    unchanged(workload('Deployment', { annotations: 'sidecar.istio.io/inject: "false"' }));
    unchanged(workload('Deployment', { labels: ', sidecar.istio.io/inject: "false"' }));
    // Istio: anything but y/yes/true/on (or empty) opts out.
    unchanged(workload('Deployment', { annotations: 'sidecar.istio.io/inject: "off"' }));
    unchanged(workload('Deployment', { annotations: 'sidecar.istio.io/inject: disabled' }));
    unchanged(`apiVersion: v1
kind: Pod
metadata:
  name: p
  annotations: {sidecar.istio.io/inject: "false"}
spec:
  containers: [{name: app, image: example/app:1}]
`);
  });

  it('the label wins over the annotation, and "true" or an unquoted boolean injects', () => {
    expect(injectManifests(workload('Deployment', { annotations: 'sidecar.istio.io/inject: "false"', labels: ', sidecar.istio.io/inject: "true"' }), 'in.yaml').injected).toBe(1);
    unchanged(workload('Deployment', { annotations: 'sidecar.istio.io/inject: "true"', labels: ', sidecar.istio.io/inject: "false"' }));
    expect(injectManifests(workload('Deployment', { annotations: 'sidecar.istio.io/inject: true' }), 'in.yaml').injected).toBe(1);
    expect(injectManifests(workload('Deployment', { annotations: 'sidecar.istio.io/inject: "Yes"' }), 'in.yaml').injected).toBe(1);
  });

  it('an opt-out on the Deployment\'s own metadata does not count: Istio reads the pod template', () => {
    const text = workload('Deployment').replace('metadata:\n  name: app\n', 'metadata:\n  name: app\n  annotations: {sidecar.istio.io/inject: "false"}\n');
    expect(injectManifests(text, 'in.yaml').injected).toBe(1);
  });

  it('skips host-network pods and Kubernetes system namespaces', () => {
    unchanged(workload('DaemonSet', { extraSpec: '      hostNetwork: true\n' }));
    unchanged(workload('Deployment').replace('  name: app\n', '  name: app\n  namespace: kube-system\n'));
    expect(injectManifests(workload('DaemonSet', { extraSpec: '      hostNetwork: false\n' }), 'in.yaml').injected).toBe(1);
  });

  it('skips a pod that is already injected, and a workload without a pod spec', () => {
    unchanged(workload('Deployment', { annotations: `sidecar.istio.io/status: '{"containers":["istio-proxy"]}'` }));
    unchanged('apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: 1}\n');
    unchanged('apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n');
  });
});

describe('inject: capture flags from annotations', () => {
  it('passes Istio\'s defaults when no annotation is set', () => {
    expect(captureArgsOf(workload('Deployment'))).toEqual(DEFAULT_CAPTURE);
  });

  it('maps each traffic.sidecar.istio.io annotation to its istio-iptables flag', () => {
    const annotations = [
      'traffic.sidecar.istio.io/includeOutboundIPRanges: "10.0.0.0/8,172.16.0.0/12"',
      'traffic.sidecar.istio.io/excludeOutboundIPRanges: 10.96.0.1/32',
      'traffic.sidecar.istio.io/includeInboundPorts: "9080,9090"',
      'traffic.sidecar.istio.io/excludeInboundPorts: "8081"',
      'traffic.sidecar.istio.io/includeOutboundPorts: "5432"',
      'traffic.sidecar.istio.io/excludeOutboundPorts: "3306,6379"',
    ].join('\n');
    expect(captureArgsOf(workload('Deployment', { annotations }))).toEqual([
      '-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT',
      '-i', '10.0.0.0/8,172.16.0.0/12',
      '-x', '10.96.0.1/32',
      '-b', '9080,9090',
      '-d', '15090,15021,8081,15020',
      '-q', '5432',
      '-o', '3306,6379',
    ]);
  });

  it('-d appends the status port to the user\'s exclusions unless listed, as excludeInboundPort does', () => {
    const d = (value: string): string => {
      const args = captureArgsOf(workload('Deployment', { annotations: `traffic.sidecar.istio.io/excludeInboundPorts: "${value}"` }));
      return args[args.indexOf('-d') + 1]!;
    };
    expect(d('')).toBe('15090,15021,15020');
    expect(d('15020')).toBe('15090,15021,15020');
    expect(d('8080,15020')).toBe('15090,15021,8080,15020');
    expect(d(' 8080, ,9090')).toBe('15090,15021,8080,9090,15020');
  });

  it('an empty includeInboundPorts disables inbound capture; an empty -o is still passed when annotated', () => {
    const args = captureArgsOf(workload('Deployment', { annotations: 'traffic.sidecar.istio.io/includeInboundPorts: ""\ntraffic.sidecar.istio.io/excludeOutboundPorts: ""' }));
    expect(args.slice(12)).toEqual(['-b', '', '-d', '15090,15021,15020', '-o', '']);
  });

  it('interceptionMode NONE injects the proxy without the init container; TPROXY is refused', () => {
    const out = docs(inject(workload('Deployment', { annotations: 'sidecar.istio.io/interceptionMode: NONE' })))[0]!;
    const pod = podOf(out);
    expect(pod.spec['initContainers']).toBeUndefined();
    expect(names(pod.spec['containers'])).toEqual(['app', 'istio-proxy']);
    expect(JSON.parse(pod.metadata['annotations']['sidecar.istio.io/status'])).toMatchObject({ initContainers: null, containers: ['istio-proxy'] });
    expect(injectError(workload('Deployment', { annotations: 'sidecar.istio.io/interceptionMode: TPROXY' })).message).toBe(
      'in.yaml:12:44: Deployment/app: spec.template.metadata.annotations[sidecar.istio.io/interceptionMode]: TPROXY interception is not supported by skiff yet; use REDIRECT',
    );
  });

  it('refuses values Istio would refuse, at the annotation\'s position', () => {
    const cases: [string, string][] = [
      ['traffic.sidecar.istio.io/includeOutboundIPRanges: "10.0.0.0/8,10.1.2.3"', 'in.yaml:12:59: Deployment/app: spec.template.metadata.annotations[traffic.sidecar.istio.io/includeOutboundIPRanges]: invalid CIDR "10.1.2.3" in "10.0.0.0/8,10.1.2.3": expected a comma-separated list of CIDRs such as 10.0.0.0/8 or "*"'],
      ['traffic.sidecar.istio.io/excludeOutboundIPRanges: "*"', 'in.yaml:12:59: Deployment/app: spec.template.metadata.annotations[traffic.sidecar.istio.io/excludeOutboundIPRanges]: invalid CIDR "*" in "*": expected a comma-separated list of CIDRs such as 10.0.0.0/8'],
      ['traffic.sidecar.istio.io/excludeInboundPorts: "80,http"', 'in.yaml:12:55: Deployment/app: spec.template.metadata.annotations[traffic.sidecar.istio.io/excludeInboundPorts]: invalid port "http" in "80,http": expected a comma-separated list of ports (0-65535)'],
      ['traffic.sidecar.istio.io/excludeOutboundPorts: "70000"', 'in.yaml:12:56: Deployment/app: spec.template.metadata.annotations[traffic.sidecar.istio.io/excludeOutboundPorts]: invalid port "70000" in "70000": expected a comma-separated list of ports (0-65535)'],
      ['readiness.status.sidecar.istio.io/periodSeconds: soon', 'in.yaml:12:58: Deployment/app: spec.template.metadata.annotations[readiness.status.sidecar.istio.io/periodSeconds]: "soon" is not a non-negative integer'],
    ];
    for (const [annotation, message] of cases) expect(injectError(workload('Deployment', { annotations: annotation })).message).toBe(message);
    expect(captureArgsOf(workload('Deployment', { annotations: 'traffic.sidecar.istio.io/excludeOutboundIPRanges: "fd00::/8,10.0.0.0/8"' }))).toContain('fd00::/8,10.0.0.0/8');
  });
});

describe('inject: holdApplicationUntilProxyStarts', () => {
  const held = (annotations: string): Obj => podOf(docs(inject(workload('Deployment', { annotations })))[0]!);

  it('puts the sidecar first with a postStart `skiff wait`, from the annotation or proxy.istio.io/config', () => {
    for (const annotations of [
      'sidecar.istio.io/holdApplicationUntilProxyStarts: "true"',
      'proxy.istio.io/config: |\n  holdApplicationUntilProxyStarts: true',
      `proxy.istio.io/config: '{ "holdApplicationUntilProxyStarts": true }'`,
    ]) {
      const pod = held(annotations);
      expect(names(pod['spec']['containers'])).toEqual(['istio-proxy', 'app']);
      expect(pod['spec']['containers'][0].lifecycle).toEqual({ postStart: { exec: { command: ['skiff', 'wait'] } } });
      // kubectl logs and exec still default to the app.
      expect(pod['metadata']['annotations']['kubectl.kubernetes.io/default-container']).toBe('app');
    }
  });

  it('without it (or set to false) the sidecar is appended and has no hook', () => {
    for (const annotations of ['sidecar.istio.io/holdApplicationUntilProxyStarts: "false"', 'proxy.istio.io/config: "holdApplicationUntilProxyStarts: false"', 'proxy.istio.io/config: "concurrency: 2"']) {
      const pod = held(annotations);
      expect(names(pod['spec']['containers'])).toEqual(['app', 'istio-proxy']);
      expect(pod['spec']['containers'][1].lifecycle).toBeUndefined();
    }
  });

  it('the sidecar.istio.io annotation wins over proxy.istio.io/config; invalid values are errors', () => {
    const pod = held('sidecar.istio.io/holdApplicationUntilProxyStarts: "false"\nproxy.istio.io/config: "holdApplicationUntilProxyStarts: true"');
    expect(names(pod['spec']['containers'])).toEqual(['app', 'istio-proxy']);
    expect(injectError(workload('Deployment', { annotations: 'proxy.istio.io/config: "holdApplicationUntilProxyStarts: sure"' })).message).toBe(
      'in.yaml:12:32: Deployment/app: spec.template.metadata.annotations[proxy.istio.io/config]: holdApplicationUntilProxyStarts must be true or false, got "sure"',
    );
    expect(injectError(workload('Deployment', { annotations: 'sidecar.istio.io/holdApplicationUntilProxyStarts: "1"' })).message).toMatch(
      /^in\.yaml:12:59: .*\[sidecar\.istio\.io\/holdApplicationUntilProxyStarts\]: "1" is not "true" or "false"$/,
    );
  });
});

/** A bare Pod named web: `containers` are list items at column 2, `annotations` lines at column 4. */
function webPod(containers: string, annotations?: string): string {
  const meta = annotations === undefined ? '' : `  annotations:\n${annotations.split('\n').map((l) => `    ${l}`).join('\n')}\n`;
  return `apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n${meta}spec:\n  containers:\n${containers}`;
}

/** The injected Pod, and its sidecar's env as a name-to-value map. */
function injectedPod(text: string): { pod: Obj; env: Record<string, string | undefined> } {
  const pod = docs(inject(text))[0]!;
  const proxy = (pod['spec']['containers'] as Obj[]).find((c) => c['name'] === 'istio-proxy')!;
  return { pod, env: Object.fromEntries((proxy['env'] as Obj[]).map((e) => [e['name'], e['value']])) };
}

const APP = `  - name: app
    image: example/app:1
    ports:
    - {name: http, containerPort: 8080}
    - {name: admin, containerPort: 9901}
`;

describe('inject: application probes (Istio\'s rewriteAppHTTPProbe)', () => {
  it('points an httpGet probe at the status port, keeps its other fields, and hands the original to the proxy', () => {
    const text = webPod(`${APP}    livenessProbe:
      httpGet:
        path: /healthz
        port: 8080
        scheme: HTTPS
        host: 127.0.0.1
        httpHeaders:
        - {name: X-Probe, value: live}
      initialDelaySeconds: 3
      periodSeconds: 5
      timeoutSeconds: 2
      failureThreshold: 6
`);
    const { pod, env } = injectedPod(text);
    expect(pod['spec']['containers'][0].livenessProbe).toEqual({
      httpGet: { path: '/app-health/app/livez', port: 15020, scheme: 'HTTP' },
      initialDelaySeconds: 3,
      periodSeconds: 5,
      timeoutSeconds: 2,
      failureThreshold: 6,
    });
    // The whole action as Istio keeps it (host, scheme, headers), in Go's field order.
    expect(env['ISTIO_KUBE_APP_PROBERS']).toBe(
      '{"/app-health/app/livez":{"httpGet":{"path":"/healthz","port":8080,"host":"127.0.0.1","scheme":"HTTPS","httpHeaders":[{"name":"X-Probe","value":"live"}]},"timeoutSeconds":2}}',
    );
    // What the proxy's status server makes of it.
    expect(parseAppProbers(env['ISTIO_KUBE_APP_PROBERS']!).get('/app-health/app/livez')).toEqual({
      kind: 'http', host: '127.0.0.1', port: 8080, path: '/healthz', https: true, headers: [['X-Probe', 'live']], timeoutMs: 2000,
    });
  });

  it('resolves a named port against the container\'s own ports', () => {
    const { pod, env } = injectedPod(webPod(`${APP}    readinessProbe:\n      httpGet: {path: /ready, port: admin}\n`));
    expect(pod['spec']['containers'][0].readinessProbe).toEqual({ httpGet: { path: '/app-health/app/readyz', port: 15020, scheme: 'HTTP' } });
    expect(env['ISTIO_KUBE_APP_PROBERS']).toBe('{"/app-health/app/readyz":{"httpGet":{"path":"/ready","port":9901}}}');
  });

  it('an unknown port name is an error at the probe\'s port, naming the ports the container has', () => {
    expect(injectError(webPod(`${APP}    readinessProbe:\n      httpGet: {path: /ready, port: metrics}\n`)).message).toBe(
      'in.yaml:13:37: Pod/web: spec.containers[0].readinessProbe.httpGet.port: no port named "metrics" in the container\'s ports (it names "http", "admin")',
    );
    const bare = webPod('  - name: app\n    image: example/app:1\n    startupProbe:\n      tcpSocket:\n        port: db\n');
    expect(injectError(bare).message).toBe('in.yaml:11:15: Pod/web: spec.containers[0].startupProbe.tcpSocket.port: no port named "db" in the container\'s ports (it names none)');
    expect(injectError(webPod(`${APP}    livenessProbe:\n      httpGet: {port: 70000}\n`)).message).toMatch(/: spec\.containers\[0\]\.livenessProbe\.httpGet\.port: 70000 is not a port number \(1-65535\)$/);
  });

  it('turns a tcpSocket probe into an httpGet on the status port, so the proxy checks the app\'s port', () => {
    const { pod, env } = injectedPod(webPod(`${APP}    readinessProbe:\n      tcpSocket: {port: http}\n      periodSeconds: 10\n`));
    expect(pod['spec']['containers'][0].readinessProbe).toEqual({ httpGet: { path: '/app-health/app/readyz', port: 15020, scheme: 'HTTP' }, periodSeconds: 10 });
    expect(env['ISTIO_KUBE_APP_PROBERS']).toBe('{"/app-health/app/readyz":{"tcpSocket":{"port":8080}}}');
    expect(parseAppProbers(env['ISTIO_KUBE_APP_PROBERS']!).get('/app-health/app/readyz')).toEqual({ kind: 'tcp', host: undefined, port: 8080, timeoutMs: 1000 });
  });

  it('rewrites startup probes and every container\'s, keyed in sorted order; exec and gRPC probes stay', () => {
    const text = webPod(`${APP}    startupProbe:
      httpGet: {path: /started, port: 8080}
      failureThreshold: 30
    livenessProbe:
      exec: {command: [cat, /tmp/healthy]}
  - name: cache
    image: example/cache:1
    readinessProbe:
      grpc: {port: 6379}
    livenessProbe:
      tcpSocket: {port: 6379}
`);
    const { pod, env } = injectedPod(text);
    const [app, cache] = pod['spec']['containers'] as Obj[];
    expect(app!['startupProbe']).toEqual({ httpGet: { path: '/app-health/app/startupz', port: 15020, scheme: 'HTTP' }, failureThreshold: 30 });
    expect(app!['livenessProbe']).toEqual({ exec: { command: ['cat', '/tmp/healthy'] } });
    expect(cache!['readinessProbe']).toEqual({ grpc: { port: 6379 } });
    expect(cache!['livenessProbe']).toEqual({ httpGet: { path: '/app-health/cache/livez', port: 15020, scheme: 'HTTP' } });
    expect(env['ISTIO_KUBE_APP_PROBERS']).toBe('{"/app-health/app/startupz":{"httpGet":{"path":"/started","port":8080}},"/app-health/cache/livez":{"tcpSocket":{"port":6379}}}');
    expect([...parseAppProbers(env['ISTIO_KUBE_APP_PROBERS']!).keys()]).toEqual(['/app-health/app/startupz', '/app-health/cache/livez']);
  });

  it('rewrites the probes of native-sidecar init containers too, but not the sidecar\'s own', () => {
    const text = webPod(APP).replace('spec:\n', 'spec:\n  initContainers:\n  - name: log-shipper\n    image: example/ship:1\n    restartPolicy: Always\n    readinessProbe:\n      httpGet: {path: /ok, port: 2020}\n');
    const { pod, env } = injectedPod(text);
    expect(pod['spec']['initContainers'][1].readinessProbe).toEqual({ httpGet: { path: '/app-health/log-shipper/readyz', port: 15020, scheme: 'HTTP' } });
    expect(env['ISTIO_KUBE_APP_PROBERS']).toBe('{"/app-health/log-shipper/readyz":{"httpGet":{"path":"/ok","port":2020}}}');
    expect(pod['spec']['containers'][1].readinessProbe.httpGet).toEqual({ path: '/healthz/ready', port: 15021 });
  });

  it('sidecar.istio.io/rewriteAppHTTPProbers: "false" leaves every probe alone; a value that is not a boolean keeps the default', () => {
    const probe = `${APP}    livenessProbe:\n      httpGet: {path: /healthz, port: 8080}\n`;
    for (const off of ['sidecar.istio.io/rewriteAppHTTPProbers: "false"', 'sidecar.istio.io/rewriteAppHTTPProbers: false', 'sidecar.istio.io/rewriteAppHTTPProbers: "0"']) {
      const { pod, env } = injectedPod(webPod(probe, off));
      expect(pod['spec']['containers'][0].livenessProbe).toEqual({ httpGet: { path: '/healthz', port: 8080 } });
      expect(env['ISTIO_KUBE_APP_PROBERS']).toBeUndefined();
    }
    const { pod } = injectedPod(webPod(probe, 'sidecar.istio.io/rewriteAppHTTPProbers: "maybe"'));
    expect(pod['spec']['containers'][0].livenessProbe.httpGet.port).toBe(15020);
  });

  it('adds no ISTIO_KUBE_APP_PROBERS when no probe is rewritten', () => {
    const { env } = injectedPod(webPod(APP));
    expect(Object.keys(env)).not.toContain('ISTIO_KUBE_APP_PROBERS');
  });

  it('is idempotent: the output injects to itself, and probes already on the status port are not rewritten again', () => {
    const text = webPod(`${APP}    # checked by the proxy
    livenessProbe:
      httpGet: {path: /healthz, port: http}   # flow style kept
      periodSeconds: 5
    readinessProbe:
      tcpSocket:
        port: 8080
`);
    const once = inject(text);
    expect(once).toContain('    # checked by the proxy\n    livenessProbe:\n      httpGet: {path: /app-health/app/livez, port: 15020, scheme: HTTP} # flow style kept\n      periodSeconds: 5\n');
    expect(inject(once)).toBe(once);
    // Without the status annotation (say, the sidecar was taken out by hand), probes already on
    // the status port are kept as they are: no /app-health path pointing at another.
    const rewritten = webPod(`${APP}    livenessProbe:
      httpGet: {path: /app-health/app/livez, port: 15020, scheme: HTTP}
      periodSeconds: 5
    readinessProbe:
      httpGet: {path: /app-health/app/readyz, port: 15020}
`);
    const { pod, env } = injectedPod(rewritten);
    expect(pod['spec']['containers'][0].livenessProbe).toEqual({ httpGet: { path: '/app-health/app/livez', port: 15020, scheme: 'HTTP' }, periodSeconds: 5 });
    expect(pod['spec']['containers'][0].readinessProbe).toEqual({ httpGet: { path: '/app-health/app/readyz', port: 15020 } });
    expect(env['ISTIO_KUBE_APP_PROBERS']).toBeUndefined();
  });
});

describe('inject: metrics merging (Istio\'s enablePrometheusMerge)', () => {
  const MERGED = { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '15020', 'prometheus.io/path': '/stats/prometheus' };
  const prometheusOf = (annotations: Obj): Obj => Object.fromEntries(Object.entries(annotations).filter(([k]) => k.startsWith('prometheus')));

  it('moves the app\'s scrape settings into ISTIO_PROMETHEUS_ANNOTATIONS and points Prometheus at the proxy', () => {
    const { pod, env } = injectedPod(webPod(APP, 'prometheus.io/scrape: "true"\nprometheus.io/port: "9901"\nprometheus.io/path: /stats'));
    expect(prometheusOf(pod['metadata']['annotations'])).toEqual(MERGED);
    expect(env['ISTIO_PROMETHEUS_ANNOTATIONS']).toBe('{"scrape":"true","path":"/stats","port":"9901"}');
  });

  it('writes the path and port the agent assumes when the pod leaves them out, and replaces every spelling of the annotations', () => {
    const { pod, env } = injectedPod(webPod(APP, 'prometheus.io/scrape: "true"'));
    expect(env['ISTIO_PROMETHEUS_ANNOTATIONS']).toBe('{"scrape":"true","path":"/metrics","port":"80"}');
    expect(prometheusOf(pod['metadata']['annotations'])).toEqual(MERGED);
    // Prometheus reads prometheus.io.port and prometheus-io/path as the same labels; a port without
    // a scrape annotation still means scrape (Istio's getPrometheusScrape).
    const variants = injectedPod(webPod(APP, 'prometheus.io.port: "8080"\nprometheus-io/path: /m'));
    expect(variants.env['ISTIO_PROMETHEUS_ANNOTATIONS']).toBe('{"scrape":"true","path":"/m","port":"8080"}');
    expect(prometheusOf(variants.pod['metadata']['annotations'])).toEqual(MERGED);
  });

  it('adds the three annotations, and no env, to a pod without any, so the proxy\'s own metrics are scraped', () => {
    const { pod, env } = injectedPod(webPod(APP));
    expect(prometheusOf(pod['metadata']['annotations'])).toEqual(MERGED);
    expect(Object.keys(env)).not.toContain('ISTIO_PROMETHEUS_ANNOTATIONS');
  });

  it('leaves the pod alone when scraping or merging is off, or the port is already the status port', () => {
    for (const annotations of [
      'prometheus.io/scrape: "false"\nprometheus.io/port: "8080"',
      'prometheus.istio.io/merge-metrics: "false"\nprometheus.io/scrape: "true"\nprometheus.io/port: "8080"',
      'prometheus.io/scrape: "true"\nprometheus.io/port: "15020"\nprometheus.io/path: /stats/prometheus',
    ]) {
      const before = docs(webPod(APP, annotations))[0]!['metadata']['annotations'];
      const { pod, env } = injectedPod(webPod(APP, annotations));
      expect(prometheusOf(pod['metadata']['annotations'])).toEqual(prometheusOf(before));
      expect(Object.keys(env)).not.toContain('ISTIO_PROMETHEUS_ANNOTATIONS');
    }
  });

  it('refuses a merge-metrics value that is not a boolean (Istio\'s validateBool) and a port that is not a number', () => {
    expect(injectError(webPod(APP, 'prometheus.istio.io/merge-metrics: "no thanks"')).message).toBe(
      'in.yaml:6:40: Pod/web: metadata.annotations[prometheus.istio.io/merge-metrics]: "no thanks" is not "true" or "false"',
    );
    expect(injectError(webPod(APP, 'prometheus.io/scrape: "true"\nprometheus.io/port: metrics')).message).toBe(
      'in.yaml:7:25: Pod/web: metadata.annotations[prometheus.io/port]: "metrics" is not a port number (1-65535): the proxy scrapes the application\'s metrics at that port',
    );
  });

  it('is idempotent: the merged pod injects to itself', () => {
    const once = inject(webPod(APP, 'prometheus.io/scrape: "true"\nprometheus.io/port: "9901"'));
    expect(inject(once)).toBe(once);
  });
});

describe('inject: errors', () => {
  it('invalid YAML is a CONFIG_INVALID error with file:line:col', () => {
    const text = `${workload('Service')}---\napiVersion: v1\nkind: Pod\nmetadata: {name: b\nspec: {}\n`;
    const err = injectError(text);
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toMatch(/^in\.yaml:\d+:\d+: document 2: \(yaml\): \S/);
    const duplicate = injectError('apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  name: b\n');
    expect(duplicate.message).toBe('in.yaml:5:3: document 1: (yaml): Map keys must be unique');
  });

  it('a pod that already has a container named istio-proxy (without the status annotation) is refused', () => {
    const text = workload('Deployment').replace('      - name: app\n', '      - name: istio-proxy\n        image: docker.io/istio/proxyv2:1.24.0\n      - name: app\n');
    expect(injectError(text).message).toBe(
      'in.yaml:13:9: Deployment/app: spec.template.spec.containers[0].name: "istio-proxy" is already taken, but the pod has no sidecar.istio.io/status annotation; rename it or remove it before injecting',
    );
  });

  it('a field of the wrong shape is named with its path', () => {
    const text = 'apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: p}\n  spec:\n    containers: {name: app}\n';
    expect(injectError(text).message).toBe('in.yaml:8:17: Pod/p: items[0].spec.containers: expected a list');
  });
});
