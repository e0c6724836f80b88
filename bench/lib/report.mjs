/**
 * The benchmark report: one row per figure, a column per target, skiff's ratio to HAProxy's
 * figure in the same run, and the budget line (reference/performance.md) with whether it is met.
 * Rendered as a terminal table, Markdown, JSON and an SVG chart.
 */

const TARGETS = ['direct', 'haproxy', 'nginx', 'skiff'];

const fmt = (v, digits) => (v === undefined || v === null || Number.isNaN(v) ? '–' : typeof v === 'number' ? v.toFixed(digits) : String(v));

/**
 * Builds the rows. `r` holds the scenario results; missing peers leave cells empty.
 * `budget.check(skiff, haproxy)` returns true/false, or undefined when it cannot be judged.
 */
export function buildRows(r) {
  const rows = [];
  const add = (id, figure, unit, values, digits, budget) => {
    const skiff = values.skiff;
    const haproxy = values.haproxy;
    const ratio = Number.isFinite(skiff) && Number.isFinite(haproxy) && haproxy !== 0 ? skiff / haproxy : NaN;
    const met = budget?.check === undefined ? undefined : budget.check(skiff, haproxy);
    rows.push({ id, figure, unit, values, digits, ratio, budget: budget?.text ?? '', met });
  };
  const p1 = r.throughput;
  if (p1) {
    const v = (k) => Object.fromEntries(TARGETS.map((t) => [t, p1[t]?.[k]]));
    add('P1', 'throughput (wrk -c32, tiny response)', 'req/s', v('rps'), 0, {
      text: '≥ 0.8 × HAProxy',
      check: (s, h) => (Number.isFinite(h) ? s >= 0.8 * h : undefined),
    });
    add('P1', 'p50 latency at full load', 'ms', v('p50Ms'), 2);
    add('P1', 'p99 latency at full load', 'ms', v('p99Ms'), 2);
    add('P1', 'proxy CPU per request at full load', 'µs', v('cpuUsPerRequest'), 1);
  }
  const p2 = r.latency;
  if (p2) {
    const v = (k) => Object.fromEntries(TARGETS.map((t) => [t, p2[t]?.[k]]));
    add('P2', 'p50 at 1000 req/s (1 kB bodies, 16 conns)', 'ms', v('p50Ms'), 3);
    add('P2', 'p90 at 1000 req/s', 'ms', v('p90Ms'), 3);
    add('P2', 'p99 at 1000 req/s', 'ms', v('p99Ms'), 3);
    add('P2', 'p99.9 at 1000 req/s', 'ms', v('p999Ms'), 3);
    add('P2', 'p50 added over direct', 'ms', v('addedP50Ms'), 3, {
      text: "≤ HAProxy's added p50",
      check: (s, h) => (Number.isFinite(h) ? s <= h : undefined),
    });
    add('P2', 'p99 added over direct', 'ms', v('addedP99Ms'), 3, { text: '≤ 0.15 ms', check: (s) => s <= 0.15 });
    add('P2', 'failed requests at 1000 req/s', '', v('errors'), 0, { text: '0', check: (s) => s === 0 });
    add('P3', 'proxy CPU at 1000 req/s', 'vCPU', v('vcpu'), 3, { text: '≤ 0.06 vCPU (with mTLS + metrics)', check: (s) => s <= 0.06 });
    if (r.idleRssMb !== undefined) add('P4', 'skiff RSS after start, idle', 'MB', { skiff: r.idleRssMb }, 1);
    add('P4', 'proxy RSS at 1000 req/s', 'MB', v('rssMb'), 1, { text: '≤ 48 MB (with mTLS)', check: (s) => s <= 48 });
    add('P4', 'proxy peak RSS over the run', 'MB', v('peakRssMb'), 1);
  }
  const p5 = r.startup;
  if (p5) {
    add('P5', 'start to first proxied 200', 'ms', { haproxy: p5.haproxy?.firstMs, nginx: p5.nginx?.firstMs, skiff: p5.skiff.firstMs }, 0);
    add('P5', 'start to ready (/healthz/ready)', 'ms', { skiff: p5.skiff.readyMs }, 0, { text: '≤ 300 ms', check: (s) => s <= 300 });
  }
  const p6 = r.configScale;
  if (p6) {
    const n = p6.services;
    add('P6', `load + compile ${n} services (VS+DR+SE)`, 'ms', { skiff: p6.loadMs + p6.compileMs }, 0, { text: '≤ 1000 ms', check: (s) => s <= 1000 });
    add('P6', `route match at ${n} hosts`, 'ns', { skiff: p6.matchNs }, 0, { text: '≤ 1000 ns', check: (s) => s <= 1000 });
    add('P6', `RSS added by ${n} services`, 'MB', { skiff: p6.skiff.rssDeltaMb }, 1, { text: '≤ 20 MB', check: (s) => s <= 20 });
    add('P6', `start to first 200 with ${n} services`, 'ms', { haproxy: p6.haproxy?.startMs, skiff: p6.skiff.firstMs }, 0);
    add('P6', `RSS with ${n} services`, 'MB', { haproxy: p6.haproxy?.rssMb, skiff: p6.skiff.rssMb }, 1);
  }
  const p7 = r.reloads;
  if (p7) {
    const v = (k) => Object.fromEntries(TARGETS.map((t) => [t, p7[t]?.[k]]));
    add('P7', 'failed requests during 20 reloads (wrk)', '', v('failures'), 0, { text: '0', check: (s) => s === 0 });
    add('P7', 'reloads applied', '', v('reloadsApplied'), 0);
  }
  if (r.http2) h2loadRows(add, 'P8', r.http2, `HTTP/2 throughput, h2load -c4 -m100 (skiff → upstream: ${r.http2.skiffUpstreamProtocol})`);
  if (r.grpc) {
    const p9 = r.grpc;
    h2loadRows(add, 'P9', p9, `gRPC unary throughput, ${p9.payloadBytes} B echo (skiff → upstream: ${p9.skiffUpstreamProtocol})`);
    const v = Object.fromEntries(TARGETS.map((t) => [t, p9[t]?.grpcStatus]));
    add('P9', 'grpc-status of check calls (grpc-js, h2load request)', '', v, 0, { text: '0', check: (s) => s === 0 });
  }
  return rows;
}

/** The rows of an h2load scenario (P8, P9): throughput, latency, CPU, failures, skiff ÷ direct. */
function h2loadRows(add, id, p, title) {
  const v = (k) => Object.fromEntries(TARGETS.map((t) => [t, p[t]?.[k]]));
  add(id, title, 'req/s', v('rps'), 0);
  add(id, 'p50 time for request at full load', 'ms', v('p50Ms'), 2);
  add(id, 'p99 time for request at full load', 'ms', v('p99Ms'), 2);
  add(id, 'proxy CPU per request at full load', 'µs', v('cpuUsPerRequest'), 1);
  add(id, 'failed requests (non-2xx, stream errors)', '', v('failures'), 0, { text: '0', check: (s) => s === 0 });
  add(id, 'throughput, skiff ÷ direct', '×', { skiff: p.skiff?.vsDirect }, 2);
}

function cellsOf(row) {
  return [
    row.id,
    row.unit ? `${row.figure} (${row.unit})` : row.figure,
    ...TARGETS.map((t) => fmt(row.values[t], row.digits)),
    fmt(row.ratio, 2),
    row.budget,
    row.met === undefined ? (row.budget ? 'n/a' : '') : row.met ? 'met' : 'NOT met',
  ];
}

const HEADER = ['', 'figure', 'direct', 'HAProxy', 'nginx', 'skiff', 'skiff ÷ HAProxy', 'budget', ''];

export function markdownTable(rows) {
  const lines = [`| ${HEADER.join(' | ')} |`, `|${HEADER.map((_, i) => (i >= 2 && i <= 6 ? '---:' : '---')).join('|')}|`];
  for (const row of rows) lines.push(`| ${cellsOf(row).join(' | ')} |`);
  return lines.join('\n');
}

export function terminalTable(rows) {
  const table = [HEADER, ...rows.map(cellsOf)];
  const widths = HEADER.map((_, i) => Math.max(...table.map((r) => String(r[i]).length)));
  return table
    .map((r, ri) => {
      const line = r.map((c, i) => (i >= 2 && i <= 6 ? String(c).padStart(widths[i]) : String(c).padEnd(widths[i]))).join('  ');
      return ri === 0 ? `${line}\n${widths.map((w) => '─'.repeat(w)).join('  ')}` : line;
    })
    .join('\n');
}

// === SVG ===

const COLORS = { direct: '#9aa5b1', haproxy: '#3b7dd8', nginx: '#2f9e6e', skiff: '#e8590c' };
const NAMES = { direct: 'direct', haproxy: 'HAProxy', nginx: 'nginx', skiff: 'skiff' };
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** One horizontal bar panel: a bar per target, the value and (for skiff) the ratio to HAProxy. */
function barPanel(y, title, unit, values, digits, note) {
  const present = TARGETS.filter((t) => Number.isFinite(values[t]));
  const max = Math.max(...present.map((t) => values[t]), 1e-9);
  const x0 = 130;
  const width = 560;
  let out = `<text x="20" y="${y + 18}" class="title">${esc(title)}</text>`;
  if (note) out += `<text x="880" y="${y + 18}" class="note" text-anchor="end">${esc(note)}</text>`;
  present.forEach((t, i) => {
    const by = y + 30 + i * 26;
    const w = Math.max(2, (values[t] / max) * width);
    out += `<text x="${x0 - 8}" y="${by + 14}" class="label" text-anchor="end">${NAMES[t]}</text>`;
    out += `<rect x="${x0}" y="${by}" width="${w.toFixed(1)}" height="18" rx="3" fill="${COLORS[t]}"/>`;
    let text = `${fmt(values[t], digits)} ${unit}`;
    if (t === 'skiff' && Number.isFinite(values.haproxy) && values.haproxy !== 0) text += `  (${(values.skiff / values.haproxy).toFixed(2)} × HAProxy)`;
    out += `<text x="${x0 + w + 6}" y="${by + 14}" class="value">${esc(text)}</text>`;
  });
  return { svg: out, height: 40 + present.length * 26 };
}

export function svgChart(results, rows, meta) {
  const parts = [];
  let y = 70;
  const panel = (...args) => {
    const p = barPanel(y, ...args);
    parts.push(p.svg);
    y += p.height + 12;
  };
  const pick = (obj, key) => Object.fromEntries(TARGETS.map((t) => [t, obj?.[t]?.[key]]));
  if (results.throughput) panel('P1 · throughput, wrk -c32, tiny response (higher is better)', 'req/s', pick(results.throughput, 'rps'), 0);
  if (results.latency) {
    panel('P2 · p50 latency at 1000 req/s, 1 kB bodies (lower is better)', 'ms', pick(results.latency, 'p50Ms'), 3);
    panel('P2 · p99 latency at 1000 req/s (lower is better)', 'ms', pick(results.latency, 'p99Ms'), 3);
    panel('P3 · proxy CPU at 1000 req/s (lower is better)', 'vCPU', pick(results.latency, 'vcpu'), 3);
    panel('P4 · proxy RSS at 1000 req/s (lower is better)', 'MB', pick(results.latency, 'rssMb'), 1);
  }
  if (results.http2) panel('P8 · HTTP/2 throughput, h2load -c4 -m100 (higher is better)', 'req/s', pick(results.http2, 'rps'), 0);
  if (results.grpc) panel('P9 · gRPC unary throughput, h2load -c4 -m100 (higher is better)', 'req/s', pick(results.grpc, 'rps'), 0);
  // Budget scorecard.
  const budgeted = rows.filter((r) => r.budget !== '');
  parts.push(`<text x="20" y="${y + 18}" class="title">Budget (reference/performance.md), skiff</text>`);
  y += 30;
  for (const r of budgeted) {
    const mark = r.met === undefined ? '·' : r.met ? '✓' : '✗';
    const color = r.met === undefined ? '#777' : r.met ? '#2f9e6e' : '#d6336c';
    parts.push(
      `<text x="30" y="${y + 14}" class="mark" fill="${color}">${mark}</text>` +
        `<text x="52" y="${y + 14}" class="label">${esc(`${r.id} ${r.figure}`)}</text>` +
        `<text x="560" y="${y + 14}" class="value">${esc(`${fmt(r.values.skiff, r.digits)} ${r.unit}`)}</text>` +
        `<text x="700" y="${y + 14}" class="note">${esc(r.budget)}</text>`,
    );
    y += 22;
  }
  const height = y + 20;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="900" height="${height}" viewBox="0 0 900 ${height}" font-family="system-ui, -apple-system, Segoe UI, sans-serif">
<style>.h1{font-size:20px;font-weight:600}.sub{font-size:12px;fill:#555}.title{font-size:14px;font-weight:600}.label{font-size:12px;fill:#333}.value{font-size:12px;fill:#111}.note{font-size:11px;fill:#666}.mark{font-size:14px;font-weight:700}</style>
<rect width="100%" height="100%" fill="#fff"/>
<text x="20" y="30" class="h1">skiff benchmark · ${esc(meta.date)}</text>
<text x="20" y="50" class="sub">${esc(`${meta.machine} · ${meta.command} · upstream: ${meta.upstream}`)}</text>
${parts.join('\n')}
</svg>
`;
}
