/**
 * `skiff route-check --config ROUTES --tests TESTS [--details]`: Envoy's router_check_tool.
 *
 * ROUTES is an Envoy RouteConfiguration (YAML or JSON), or Istio YAML (a file or folder of
 * VirtualServices, ServiceEntries, …) evaluated through skiff's own translation. TESTS is the
 * tool's test file (`tests: [{test_name, input, validate}]`), read as YAML so JSON with a
 * trailing comma is accepted as upstream does.
 *
 * Output, as the tool: with --details every test name, and under a failing one
 * `expected: [E], actual: [A], test type: FIELD`; without it only failing tests. Exit 1 when any
 * test fails or either file has problems (one line each: `file: field.path: message`).
 */
import { readFile, stat } from 'node:fs/promises';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { formatDiagnostic } from '../config/diagnostics.js';
import { loadConfig } from '../config/load.js';
import { SkiffError } from '../core/errors.js';
import { modelRouteChecker, runRouteCheck, runRouteCheckWith, type RouteCheckReport, type TestResult } from '../lifecycle/route-check.js';
import { parse } from './args.js';

async function readYaml(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new SkiffError('CONFIG_READ', `cannot read ${what} ${path}: ${(err as Error).message}`);
  }
  try {
    return parseYaml(text);
  } catch (err) {
    throw new SkiffError('CONFIG_READ', `${path}: not YAML or JSON: ${(err as Error).message}`);
  }
}

/** Istio YAML: a folder, or a file whose documents carry an Istio/skiff apiVersion. */
async function isIstioConfig(path: string): Promise<boolean> {
  try {
    if ((await stat(path)).isDirectory()) return true;
    const docs = parseAllDocuments(await readFile(path, 'utf8'));
    const list = Array.isArray(docs) ? docs : [docs];
    return list.some((d) => {
      const js: unknown = d.toJS();
      return typeof js === 'object' && js !== null && typeof (js as { apiVersion?: unknown }).apiVersion === 'string';
    });
  } catch {
    return false;
  }
}

export async function routeCheckCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    config: { type: 'string', short: 'c' },
    tests: { type: 'string', short: 't' },
    details: { type: 'boolean', short: 'd' },
  });
  if (values.config === undefined || values.tests === undefined) {
    throw new SkiffError('USAGE', 'route-check needs --config <routes.yaml|istio dir> and --tests <tests.json>');
  }
  const details = values.details === true;
  const testsDoc = await readYaml(values.tests, 'tests');
  let report: RouteCheckReport;
  let istio = false;
  if (await isIstioConfig(values.config)) {
    const loaded = await loadConfig(values.config);
    for (const d of loaded.diagnostics) process.stdout.write(formatDiagnostic(d) + '\n');
    if (loaded.model === undefined) return 1;
    istio = true;
    report = runRouteCheckWith(modelRouteChecker(loaded.model), testsDoc);
  } else {
    report = runRouteCheck(await readYaml(values.config, 'route config'), testsDoc);
  }
  for (const p of report.problems) {
    const file = p.source === 'config' ? values.config : values.tests;
    process.stdout.write(`${file}: ${p.path === '' ? '(root)' : p.path}: ${p.message}\n`);
  }
  if (report.problems.length > 0 && report.results.length === 0) return 1;
  let failed = 0;
  for (const r of report.results) {
    const ok = r.failures.length === 0;
    if (!ok) failed++;
    if (details || !ok) process.stdout.write(`${r.name}${details ? '' : ' FAILED'}\n`);
    // Istio: which VirtualService rule (the route name) and destination the request gets.
    if (details && istio) process.stdout.write(`  ${describe(r)}\n`);
    for (const f of r.failures) process.stdout.write(`expected: [${f.expected}], actual: [${f.actual}], test type: ${f.field}\n`);
  }
  const total = report.results.length;
  process.stderr.write(`${values.tests}: ${total - failed}/${total} tests passed\n`);
  return failed > 0 || report.problems.length > 0 ? 1 : 0;
}

function describe(r: TestResult): string {
  const o = r.outcome;
  if (r.routeName === undefined) return o.pathRedirect === '' ? 'no route (404 NR)' : `redirect ${o.codeRedirect} ${o.pathRedirect}`;
  const head = `route "${r.routeName}"${o.virtualHostName === '' ? '' : ` in virtual host ${o.virtualHostName}`}`;
  if (o.clusterName !== '') return `${head} -> cluster ${o.clusterName}`;
  return `${head} -> ${o.codeRedirect}${o.pathRedirect === '' ? '' : ` ${o.pathRedirect}`}`;
}
