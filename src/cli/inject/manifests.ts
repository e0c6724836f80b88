/**
 * Injection over a multi-document YAML stream of Kubernetes manifests, as `istioctl kube-inject`
 * does it: every pod template (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet,
 * ReplicationController, Job, CronJob, and the items of a `kind: List`) gets the sidecar; every
 * other document passes through.
 *
 * Contract: a document that is not changed is copied byte for byte, so a second injection
 * (which finds `sidecar.istio.io/status` and changes nothing) returns its input unchanged. A
 * changed document is printed again by the `yaml` library from its syntax tree: comments,
 * key order, quoting and flow style are kept; block sequences keep the document's indentation.
 */
import { isMap, isScalar, isSeq, LineCounter, parseAllDocuments, visit, type Document, type Node, type YAMLMap, type YAMLSeq } from 'yaml';
import { SkiffError } from '../../core/errors.js';
import { ANNOTATION, InvalidAnnotation } from './annotations.js';
import { appHealthPath, appProbersEnv, namedPorts, PROBE_KINDS, ProbeProblem, rewriteProbe, shouldRewriteProbes, type Prober, type ProbeRewrite } from './app-probes.js';
import { injectionDecision } from './policy.js';
import { CONFIG_VOLUME, INIT_CONTAINER, SIDECAR_CONTAINER, sidecarTemplate, type SidecarOptions } from './sidecar-template.js';

export interface InjectResult {
  readonly output: string;
  /** Pod templates injected. */
  readonly injected: number;
}

/** Where each injectable kind keeps its pod (its `metadata` and `spec`); a Pod is one itself. */
const POD_PATHS: ReadonlyMap<string, readonly string[]> = new Map<string, readonly string[]>([
  ['Pod', []],
  ...['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'ReplicationController', 'Job'].map((k): [string, string[]] => [k, ['spec', 'template']]),
  ['CronJob', ['spec', 'jobTemplate', 'spec', 'template']],
]);

/** Throws SkiffError CONFIG_INVALID (`file:line:col: ...`) on a YAML error or an invalid annotation. */
export function injectManifests(text: string, fileName: string, options: SidecarOptions = {}): InjectResult {
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  docs.forEach((doc, i) => {
    const e = doc.errors[0];
    if (e === undefined) return;
    const pos = lines.linePos(e.pos[0]);
    throw new SkiffError('CONFIG_INVALID', `${fileName}:${pos.line}:${pos.col}: document ${i + 1}: (yaml): ${e.message.split('\n')[0]!.trim()}`);
  });

  let output = '';
  let injected = 0;
  // Each document owns the text from the end of the one before to its own end (comments before
  // a `---` belong to the document after it), so the pieces put back together are the input.
  let from = 0;
  for (const doc of docs) {
    const to = doc.range[2];
    const n = injectObject(doc.contents, { doc, lines, fileName, options, resource: undefined }, []);
    output += n === 0 ? text.slice(from, to) : doc.toString({ indentSeq: indentsSequences(doc, text), lineWidth: 0, flowCollectionPadding: false });
    injected += n;
    from = to;
  }
  output += text.slice(from);
  return { output, injected };
}

interface Context {
  readonly doc: Document;
  readonly lines: LineCounter;
  readonly fileName: string;
  readonly options: SidecarOptions;
  /** `Kind/name` of the object being injected, for messages. */
  readonly resource: string | undefined;
}

type Path = readonly (string | number)[];

/** A pod's `metadata` and `spec`, and the map that holds them (a Pod, or a workload's template). */
interface PodTemplate {
  readonly owner: YAMLMap;
  readonly path: Path;
  readonly meta: YAMLMap | undefined;
  readonly spec: YAMLMap;
}

/** Injects `node` if it is an object with a pod template; returns how many templates. */
function injectObject(node: unknown, ctx: Context, path: Path): number {
  if (!isMap(node)) return 0;
  const kind = scalarText(node.get('kind', true));
  // Anything else passes through unread, however unusual its shape.
  if (kind === undefined || (kind !== 'List' && !POD_PATHS.has(kind))) return 0;
  const metadata = mapAt(node, 'metadata', ctx, path);
  const name = scalarText(metadata?.get('name', true));
  const namespace = scalarText(metadata?.get('namespace', true));
  const here: Context = { ...ctx, resource: `${kind}/${name ?? '(unnamed)'}` };
  if (kind === 'List') {
    const items = seqAt(node, 'items', here, path);
    let n = 0;
    items?.items.forEach((item, i) => {
      n += injectObject(item, ctx, [...path, 'items', i]);
    });
    return n;
  }
  const owner = podOwner(node, POD_PATHS.get(kind)!, here, path);
  if (owner === undefined) return 0;
  const spec = mapAt(owner.map, 'spec', here, owner.path);
  if (spec === undefined) return 0;
  const pod = { owner: owner.map, path: owner.path, meta: mapAt(owner.map, 'metadata', here, owner.path), spec };
  return injectPod(pod, { name, namespace }, here) ? 1 : 0;
}

/** The map holding the pod's metadata and spec: the Pod itself, or a workload's template. */
function podOwner(node: YAMLMap, keys: readonly string[], ctx: Context, path: Path): { map: YAMLMap; path: Path } | undefined {
  let map: YAMLMap | undefined = node;
  let at: Path = path;
  for (const key of keys) {
    map = mapAt(map, key, ctx, at);
    if (map === undefined) return undefined;
    at = [...at, key];
  }
  return { map, path: at };
}

/**
 * Injects one pod (`owner` holds its `metadata` and `spec`). Returns false, changing nothing,
 * when policy says no or the pod has no containers list.
 */
function injectPod(pod: PodTemplate, workload: { name: string | undefined; namespace: string | undefined }, ctx: Context): boolean {
  const { owner, meta, spec, path } = pod;
  const metaPath = [...path, 'metadata'];
  const specPath = [...path, 'spec'];
  const annotationsNode = meta === undefined ? undefined : mapAt(meta, 'annotations', ctx, metaPath);
  const annotations = stringMap(annotationsNode);
  const labels = stringMap(meta === undefined ? undefined : mapAt(meta, 'labels', ctx, metaPath));
  const decision = injectionDecision({
    annotations,
    labels,
    namespace: scalarText(meta?.get('namespace', true)) ?? workload.namespace,
    hostNetwork: spec.get('hostNetwork') === true,
  });
  if (!decision.inject) return false;
  const containers = seqAt(spec, 'containers', ctx, specPath);
  if (containers === undefined) return false;
  const initContainers = seqAt(spec, 'initContainers', ctx, specPath);
  const volumes = seqAt(spec, 'volumes', ctx, specPath);
  const appContainers = namesOf(containers);
  refuseClash(containers, SIDECAR_CONTAINER, 'containers', ctx, specPath);
  if (initContainers !== undefined) refuseClash(initContainers, INIT_CONTAINER, 'initContainers', ctx, specPath);
  if (volumes !== undefined) refuseClash(volumes, CONFIG_VOLUME, 'volumes', ctx, specPath);
  // Istio's allContainers: init containers (native sidecars may have probes) and containers.
  const probes = shouldRewriteProbes(annotations)
    ? [...planProbeRewrites(initContainers, ctx, [...specPath, 'initContainers']), ...planProbeRewrites(containers, ctx, [...specPath, 'containers'])]
    : [];
  const probers = new Map<string, Prober>(probes.map((p) => [p.rewrite.httpGet.path, p.rewrite.prober]));

  let injection;
  try {
    injection = sidecarTemplate({ annotations, workloadName: workload.name, appContainers, appProbers: appProbersEnv(probers) }, ctx.options);
  } catch (err) {
    if (!(err instanceof InvalidAnnotation)) throw err;
    const node = annotationsNode?.get(err.annotation, true) as Node | undefined;
    throw problem(ctx, node ?? annotationsNode, `${fieldPath([...metaPath, 'annotations'])}[${err.annotation}]`, err.message);
  }

  const { doc } = ctx;
  for (const p of probes) applyProbeRewrite(doc, p);
  if (injection.initContainers.length > 0) {
    const seq = initContainers ?? ensure(doc, spec, 'initContainers', doc.createNode([]) as YAMLSeq, 'containers');
    seq.items.unshift(...injection.initContainers.map((c) => doc.createNode(c)));
  }
  const sidecar = doc.createNode(injection.sidecar);
  if (injection.sidecarFirst) containers.items.unshift(sidecar);
  else containers.items.push(sidecar);
  const volumeSeq = volumes ?? ensure(doc, spec, 'volumes', doc.createNode([]) as YAMLSeq);
  volumeSeq.items.push(...injection.volumes.map((v) => doc.createNode(v)));

  const metaMap = meta ?? ensure(doc, owner, 'metadata', doc.createNode({}) as YAMLMap, 'spec');
  const annotationMap = annotationsNode ?? ensure(doc, metaMap, 'annotations', doc.createNode({}) as YAMLMap);
  for (const k of injection.removeAnnotations) annotationMap.delete(k);
  for (const [k, v] of Object.entries(injection.setIfAbsent)) if (annotations[k] === undefined) annotationMap.set(k, v);
  for (const [k, v] of Object.entries(injection.annotations)) annotationMap.set(k, v);
  return true;
}

// === probe rewrite ===

interface PlannedRewrite {
  /** The probe's map (e.g. a container's `livenessProbe`). */
  readonly probe: YAMLMap;
  readonly rewrite: ProbeRewrite;
}

/**
 * The probes of `seq`'s containers that get rewritten, read before anything changes so that a
 * bad probe fails the pod as a whole. Containers without a name are left alone.
 */
function planProbeRewrites(seq: YAMLSeq | undefined, ctx: Context, path: Path): PlannedRewrite[] {
  const out: PlannedRewrite[] = [];
  seq?.items.forEach((item, i) => {
    if (!isMap(item)) return;
    const name = scalarText(item.get('name', true));
    if (name === undefined || name === SIDECAR_CONTAINER) return;
    const at = [...path, i];
    const portsNode = item.get('ports', true);
    const ports = namedPorts(isSeq(portsNode) ? portsNode.toJS(ctx.doc) : undefined);
    for (const kind of PROBE_KINDS) {
      const probe = mapAt(item, kind, ctx, at);
      if (probe === undefined) continue;
      let rewrite: ProbeRewrite | undefined;
      try {
        rewrite = rewriteProbe(probe.toJS(ctx.doc) as Record<string, unknown>, appHealthPath(name, kind), ports);
      } catch (err) {
        if (!(err instanceof ProbeProblem)) throw err;
        const node = probe.getIn(err.field, true) as Node | undefined;
        throw problem(ctx, node ?? probe, fieldPath([...at, kind, ...err.field]), err.message);
      }
      if (rewrite !== undefined) out.push({ probe, rewrite });
    }
  });
  return out;
}

/** Puts the new `httpGet` where the probe's action was, in its style and with its comments; other fields stay. */
function applyProbeRewrite(doc: Document, { probe, rewrite }: PlannedRewrite): void {
  const i = probe.items.findIndex((p) => scalarText(p.key) === rewrite.action);
  const old = probe.items[i]!.value;
  const node = doc.createNode(rewrite.httpGet) as YAMLMap;
  if (isMap(old)) {
    node.flow = old.flow ?? false;
    node.comment = old.comment;
    node.commentBefore = old.commentBefore;
  }
  if (rewrite.action === 'httpGet') probe.items[i]!.value = node;
  else probe.items[i] = doc.createPair('httpGet', node);
}

// === YAML helpers ===

function scalarText(node: unknown): string | undefined {
  if (!isScalar(node) || node.value === null || node.value === undefined) return undefined;
  return String(node.value);
}

function isNull(node: unknown): boolean {
  return node === undefined || node === null || (isScalar(node) && (node.value === null || node.value === undefined));
}

/** The map at `key`, undefined when absent or null; a problem when it is something else. */
function mapAt(parent: YAMLMap, key: string, ctx: Context, path: Path): YAMLMap | undefined {
  const node = parent.get(key, true);
  if (isNull(node)) return undefined;
  if (!isMap(node)) throw problem(ctx, node as Node, fieldPath([...path, key]), 'expected a map');
  return node;
}

/** The sequence at `key`, undefined when absent or null; a problem when it is something else. */
function seqAt(parent: YAMLMap, key: string, ctx: Context, path: Path): YAMLSeq | undefined {
  const node = parent.get(key, true);
  if (isNull(node)) return undefined;
  if (!isSeq(node)) throw problem(ctx, node as Node, fieldPath([...path, key]), 'expected a list');
  return node;
}

/** A map of scalars as strings (annotation and label values); other entries are skipped. */
function stringMap(map: YAMLMap | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of map?.items ?? []) {
    const k = scalarText(pair.key);
    const v = isScalar(pair.value) ? (pair.value.value === null ? '' : String(pair.value.value)) : undefined;
    if (k !== undefined && v !== undefined) out[k] = v;
  }
  return out;
}

function namesOf(seq: YAMLSeq): string[] {
  return seq.items.flatMap((item) => {
    const name = isMap(item) ? scalarText(item.get('name', true)) : undefined;
    return name === undefined ? [] : [name];
  });
}

function refuseClash(seq: YAMLSeq, name: string, key: string, ctx: Context, path: Path): void {
  const i = seq.items.findIndex((item) => isMap(item) && scalarText(item.get('name', true)) === name);
  if (i < 0) return;
  throw problem(ctx, seq.items[i] as Node, fieldPath([...path, key, i, 'name']), `"${name}" is already taken, but the pod has no ${ANNOTATION.status} annotation; rename it or remove it before injecting`);
}

/**
 * Sets `key` to `node` (replacing a null value in place), or adds it before `before` when that
 * key exists, else at the end.
 */
function ensure<T extends YAMLMap | YAMLSeq>(doc: Document, parent: YAMLMap, key: string, node: T, before?: string): T {
  if (parent.has(key)) {
    parent.set(key, node);
    return node;
  }
  const pair = doc.createPair(key, node);
  const at = before === undefined ? -1 : parent.items.findIndex((p) => scalarText(p.key) === before);
  if (at < 0) parent.items.push(pair);
  else parent.items.splice(at, 0, pair);
  return node;
}

/** `spec.template.spec.containers[1].name`, as `skiff validate` prints field paths. */
function fieldPath(path: Path): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

function problem(ctx: Context, node: Node | undefined | null, field: string, message: string): SkiffError {
  const offset = node?.range?.[0] ?? 0;
  const pos = ctx.lines.linePos(offset);
  return new SkiffError('CONFIG_INVALID', `${ctx.fileName}:${pos.line}:${pos.col}: ${ctx.resource ?? 'document'}: ${field}: ${message}`);
}

/**
 * Whether the document's block sequences sit deeper than their keys (`key:\n  - a`), judged by
 * the first one read from the source (nodes added by injection have no source range).
 */
function indentsSequences(doc: Document, text: string): boolean {
  let found: boolean | undefined;
  visit(doc, {
    Pair(_, pair) {
      const key = pair.key as Node | null;
      const value = pair.value as Node | null;
      if (isSeq(value) && !value.flow && value.items.length > 0 && key?.range && value.range) {
        found = column(text, value.range[0]) > column(text, key.range[0]);
        return visit.BREAK;
      }
      return undefined;
    },
  });
  return found ?? false;
}

function column(text: string, offset: number): number {
  return offset - (text.lastIndexOf('\n', offset - 1) + 1);
}
