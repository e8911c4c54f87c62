// The page: takes a file, asks the worker (the segpack CLI, see worker.js)
// what `inspect` says, shows it, draws the size of the output against the
// cap and the codec, and packs the file for download. Formatting and the
// plot are here; every number comes from the CLI.

const $ = (id) => document.getElementById(id);

/** Caps the plot weighs, up to the engine limit. */
const SWEEP_CAPS = [10, 100, 1000, 3000, 10000, 30000, 100000];

// ---- the worker, one job at a time, packing before plotting -------------

let worker = startWorker();
const jobs = []; // { message, urgent, resolve, reject, onProgress }
let running = null;
let nextId = 1;

function startWorker() {
  const w = new Worker('worker.js', { type: 'module' });
  w.onmessage = onMessage;
  return w;
}

/** A new file: a plot job still running for the last one is stopped. */
function stopPlotting() {
  if (running && !running.urgent) {
    worker.terminate();
    running.reject(new Superseded());
    running = null;
    worker = startWorker();
  }
}

function job(message, { urgent = false, onProgress } = {}) {
  return new Promise((resolve, reject) => {
    const j = { message: { ...message, id: nextId++ }, urgent, resolve, reject, onProgress };
    if (urgent) jobs.unshift(j);
    else jobs.push(j);
    pump();
  });
}

function pump() {
  if (running || jobs.length === 0) return;
  running = jobs.shift();
  worker.postMessage(running.message);
}

function onMessage({ data }) {
  const j = running;
  if (!j || data.id !== j.message.id) return;
  if (data.progress) {
    j.onProgress?.(data.progress);
    return;
  }
  running = null;
  if (data.error) j.reject(new Error(data.error));
  else j.resolve(data.done);
  pump();
}

/** Drops the plot's jobs that are still waiting (a new file, new options). */
function dropQueued() {
  for (const j of jobs.splice(0)) j.reject(new Superseded());
}
class Superseded extends Error {}

/** `segpack ARGS...` on the loaded file; rejects with the CLI's error line. */
async function segpack(args, options = {}) {
  const done = await job({ args, output: options.output }, options);
  if (done.unknownCalls.length > 0) console.warn('segpack called unsupported WASI functions:', done.unknownCalls);
  if (done.status !== 0) {
    const line = done.stderr.trim().split('\n').filter((l) => l.startsWith('error: ')).pop();
    throw new CliError(line ?? done.stderr.trim());
  }
  return done;
}
class CliError extends Error {}

// ---- formatting, as the CLI's text does it --------------------------------

function group(n) {
  return n.toLocaleString('en-US');
}

function bytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u + 1 < units.length) {
    v /= 1024;
    u += 1;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

/** A table cell showing `text`, with the exact number in `data-value`. */
function cell(field, value, text = group(value)) {
  return el('td', { 'data-field': field, 'data-value': String(value) }, text);
}

// ---- state ----------------------------------------------------------------

let file = null; // { name, size }
let generation = 0; // a new file or new options make older results stale
let packedUrl = null;

function options() {
  const args = ['--max-segments', $('cap').value];
  if ($('zero-filled-imports').checked) args.push('--zero-filled-imports');
  return args;
}

function status(text, progress) {
  $('status').textContent = text;
  const bar = $('progress');
  if (progress) {
    bar.hidden = false;
    bar.max = progress.total || 1;
    bar.value = progress.done;
  } else {
    bar.hidden = true;
  }
}

function showError(message) {
  $('error').textContent = message;
  $('error').hidden = !message;
}

// ---- a file goes in --------------------------------------------------------

async function take(f) {
  generation += 1;
  dropQueued();
  stopPlotting();
  showError('');
  for (const id of ['results', 'packed']) $(id).hidden = true;
  $('pack').disabled = true;
  document.body.dataset.state = 'loading';
  try {
    file = await job({ load: f }, {
      urgent: true,
      onProgress: (p) => status(`reading ${f.name}: ${bytes(p.done)} of ${bytes(p.total)}`, p),
    });
    await inspect();
  } catch (e) {
    if (!(e instanceof Superseded)) fail(e);
  }
}

function fail(e) {
  document.body.dataset.state = 'error';
  status('');
  showError(e instanceof CliError ? e.message : `error: ${e.message}`);
}

async function inspect() {
  const mine = ++generation;
  dropQueued();
  showError('');
  document.body.dataset.state = 'inspecting';
  $('packed').hidden = true;
  const onProgress = (p) => status(`${p.what} ${file.name}: ${Math.round((100 * p.done) / p.total)}%`, p);
  try {
    const input = ['--', file.name];
    status(`inspecting ${file.name}…`);
    const json = await segpack(['inspect', '--json', ...options(), ...input], { urgent: true, onProgress });
    const text = await segpack(['inspect', ...options(), ...input], { urgent: true });
    const svg = await segpack(['inspect', '--svg', ...options(), ...input], { urgent: true });
    if (mine !== generation) return;
    showInspection(JSON.parse(json.stdout), text.stdout);
    $('map').innerHTML = svg.stdout;
    $('results').hidden = false;
    $('pack').disabled = false;
    document.body.dataset.state = 'inspected';
    status(`${file.name}: ${bytes(file.size)}`);
    await sweep(mine);
  } catch (e) {
    if (!(e instanceof Superseded) && mine === generation) fail(e);
  }
}

function showInspection(report, text) {
  $('inspect-text').textContent = text;
  const rows = $('memories').tBodies[0];
  rows.replaceChildren();
  for (const m of report.modules) {
    for (const memory of m.memories.filter((r) => r.segments > 0)) {
      rows.append(
        el(
          'tr',
          { 'data-module': m.path, 'data-memory': String(memory.memory) },
          el('td', {}, m.path || 'module'),
          el('td', {}, `${memory.memory} (${memory.index_type === 'i64' ? '64' : '32'}-bit${memory.imported ? ', imported' : ''})`),
          cell('segments', memory.segments),
          cell('packed_segments', memory.packed_segments),
          cell('data_bytes', memory.data_bytes, bytes(memory.data_bytes)),
          cell('zero_bytes', memory.zero_bytes, bytes(memory.zero_bytes)),
          cell('non_zero_bytes', memory.non_zero_bytes, bytes(memory.non_zero_bytes)),
          cell('segment_bytes', memory.segment_bytes, bytes(memory.segment_bytes)),
          cell('packed_segment_bytes', memory.packed_segment_bytes, bytes(memory.packed_segment_bytes)),
          el('td', {}, memory.packable ? 'yes' : `no: ${memory.not_packable_reason}`),
        ),
      );
    }
  }
  const totals = $('totals');
  totals.replaceChildren(
    el('span', {}, 'data section '),
    el('b', { 'data-field': 'data_bytes_before', 'data-value': String(report.data_bytes_before) }, bytes(report.data_bytes_before)),
    ' → ',
    el('b', { 'data-field': 'data_bytes_after', 'data-value': String(report.data_bytes_after) }, bytes(report.data_bytes_after)),
    ', file ',
    el('b', { 'data-field': 'input_bytes', 'data-value': String(report.input_bytes) }, bytes(report.input_bytes)),
    ' → ',
    el('b', { 'data-field': 'output_bytes', 'data-value': String(report.output_bytes) }, bytes(report.output_bytes)),
  );
  if (report.at_engine_limit) {
    totals.append(
      el('div', { class: 'hint' }, `The cap holds packing back: --max-segments ${group(report.at_engine_limit.max_segments)} would give ${group(report.at_engine_limit.segments)} segments, data section ${bytes(report.at_engine_limit.data_bytes)}.`),
    );
  }
}

// ---- size against the choice ---------------------------------------------

/** The codec the plot weighs: the one packed for, else gzip. */
function plotCodec() {
  const o = $('optimize-for').value;
  return o === 'raw' ? 'gzip' : o;
}

async function sweep(mine) {
  const codec = plotCodec();
  const points = [];
  $('plot-codec').textContent = codec;
  const rows = $('sweep').tBodies[0];
  rows.replaceChildren();
  $('plot').replaceChildren();
  const zero = $('zero-filled-imports').checked ? ['--zero-filled-imports'] : [];
  for (const cap of SWEEP_CAPS) {
    $('plot-status').textContent = `weighing --max-segments ${group(cap)}…`;
    const done = await segpack(['inspect', '--json', '--compressed', codec, '--max-segments', String(cap), ...zero, '--', file.name]);
    if (mine !== generation) return;
    const r = JSON.parse(done.stdout);
    const c = r.compressed;
    const p = {
      cap,
      input: r.input_bytes,
      inputCompressed: c.bytes_input,
      raw: c.default.bytes,
      rawCompressed: c.default.compressed_bytes,
      optimized: c.optimized.bytes,
      optimizedCompressed: c.optimized.compressed_bytes,
    };
    points.push(p);
    rows.append(
      el(
        'tr',
        { 'data-cap': String(cap) },
        el('td', {}, group(cap)),
        cell('raw', p.raw, bytes(p.raw)),
        cell('raw_compressed', p.rawCompressed, bytes(p.rawCompressed)),
        cell('optimized', p.optimized, bytes(p.optimized)),
        cell('optimized_compressed', p.optimizedCompressed, bytes(p.optimizedCompressed)),
      ),
    );
    $('plot').replaceChildren(plot(points, codec));
  }
  $('plot-status').textContent = `The input: ${bytes(points[0].input)} raw, ${bytes(points[0].inputCompressed)} with ${codec}.`;
  document.body.dataset.sweep = 'done';
}

const SVG = 'http://www.w3.org/2000/svg';
function svgEl(tag, attrs = {}, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

/** Two panels, raw bytes and compressed bytes, against the cap (log scale). */
function plot(points, codec) {
  const W = 900;
  const H = 230;
  const svg = svgEl('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, 'font-size': 11, 'font-family': 'sans-serif' });
  const panels = [
    { x: 60, title: 'raw bytes', series: [['raw', 'pack (raw)', '#1f6fb2', ''], ['optimized', `pack --optimize-for ${codec}`, '#c0392b', '4 3']], input: 'input' },
    { x: 510, title: `${codec} bytes`, series: [['rawCompressed', 'pack (raw)', '#1f6fb2', ''], ['optimizedCompressed', `pack --optimize-for ${codec}`, '#c0392b', '4 3']], input: 'inputCompressed' },
  ];
  const lo = Math.log10(SWEEP_CAPS[0]);
  const hi = Math.log10(SWEEP_CAPS[SWEEP_CAPS.length - 1]);
  for (const panel of panels) {
    const pw = 360;
    const top = 24;
    const ph = 150;
    const values = points.flatMap((p) => [...panel.series.map(([k]) => p[k]), p[panel.input]]);
    let min = Math.min(...values);
    let max = Math.max(...values);
    if (max === min) {
      max += 1;
      min -= 1;
    }
    const pad = (max - min) * 0.08;
    min -= pad;
    max += pad;
    const x = (cap) => panel.x + (pw * (Math.log10(cap) - lo)) / (hi - lo);
    const y = (v) => top + ph - (ph * (v - min)) / (max - min);
    svg.append(svgEl('text', { x: panel.x, y: 14, 'font-weight': 'bold' }, panel.title));
    svg.append(svgEl('rect', { x: panel.x, y: top, width: pw, height: ph, fill: '#fafafa', stroke: '#ccc' }));
    for (const cap of SWEEP_CAPS) {
      svg.append(svgEl('text', { x: x(cap), y: top + ph + 14, 'text-anchor': 'middle', fill: '#555' }, cap >= 1000 ? `${cap / 1000}k` : String(cap)));
    }
    svg.append(svgEl('text', { x: panel.x + pw / 2, y: top + ph + 28, 'text-anchor': 'middle', fill: '#555' }, '--max-segments'));
    for (const v of [min + pad, max - pad]) {
      svg.append(svgEl('text', { x: panel.x - 4, y: y(v) + 4, 'text-anchor': 'end', fill: '#555' }, bytes(Math.round(v))));
    }
    const input = points[0][panel.input];
    svg.append(svgEl('line', { x1: panel.x, x2: panel.x + pw, y1: y(input), y2: y(input), stroke: '#888', 'stroke-dasharray': '2 3' }));
    svg.append(svgEl('text', { x: panel.x + pw - 4, y: y(input) - 4, 'text-anchor': 'end', fill: '#888' }, 'input'));
    for (const [k, label, colour, dash] of panel.series) {
      const d = points.map((p, i) => `${i ? 'L' : 'M'}${x(p.cap).toFixed(1)},${y(p[k]).toFixed(1)}`).join(' ');
      svg.append(svgEl('path', { d, fill: 'none', stroke: colour, 'stroke-width': 2, 'stroke-dasharray': dash }));
      for (const p of points) {
        const dot = svgEl('circle', { cx: x(p.cap).toFixed(1), cy: y(p[k]).toFixed(1), r: 3, fill: colour });
        dot.append(svgEl('title', {}, `${label}, --max-segments ${group(p.cap)}: ${group(p[k])} bytes`));
        svg.append(dot);
      }
    }
  }
  let lx = 60;
  for (const [label, colour, dash] of [['pack (raw: the smallest data section)', '#1f6fb2', ''], [`pack --optimize-for ${codec}`, '#c0392b', '4 3']]) {
    svg.append(svgEl('line', { x1: lx, x2: lx + 24, y1: H - 8, y2: H - 8, stroke: colour, 'stroke-width': 2, 'stroke-dasharray': dash }));
    svg.append(svgEl('text', { x: lx + 30, y: H - 4 }, label));
    lx += 320;
  }
  return svg;
}

// ---- packing ----------------------------------------------------------------

async function pack() {
  const mine = generation;
  $('pack').disabled = true;
  $('packed').hidden = true;
  const out = `${file.name.replace(/\.wasm$/i, '')}.packed.wasm`;
  const args = ['pack', ...options(), '--optimize-for', $('optimize-for').value, '--stats', '-o', out, '--', file.name];
  try {
    status(`packing ${file.name}…`);
    const done = await segpack(args, { urgent: true, output: out });
    if (mine !== generation) return;
    const blob = new Blob([done.output], { type: 'application/wasm' });
    if (packedUrl) URL.revokeObjectURL(packedUrl);
    packedUrl = URL.createObjectURL(blob);
    const link = $('download');
    link.href = packedUrl;
    link.download = out;
    link.textContent = `download ${out} (${bytes(done.output.length)})`;
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', done.output));
    $('sha256').textContent = [...digest].map((b) => b.toString(16).padStart(2, '0')).join('');
    $('pack-stats').textContent = done.stderr.trim();
    $('pack-command').textContent = `segpack ${args.filter((a) => a !== '--stats').slice(0, -2).join(' ')} ${file.name}`;
    $('packed').hidden = false;
    document.body.dataset.state = 'packed';
    status(`${file.name}: packed`);
  } catch (e) {
    if (!(e instanceof Superseded)) fail(e);
  } finally {
    $('pack').disabled = false;
  }
}

// ---- wiring -------------------------------------------------------------------

$('file').addEventListener('change', () => {
  if ($('file').files[0]) take($('file').files[0]);
});
const drop = $('drop');
drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  if (e.dataTransfer.files[0]) take(e.dataTransfer.files[0]);
});
for (const id of ['cap', 'zero-filled-imports']) {
  $(id).addEventListener('change', () => file && inspect());
}
$('optimize-for').addEventListener('change', () => {
  $('packed').hidden = true;
  if (file && plotCodec() !== $('plot-codec').textContent) {
    generation += 1;
    dropQueued();
    sweep(generation).catch((e) => e instanceof Superseded || fail(e));
  }
});
$('pack').addEventListener('click', pack);

// Offline once loaded: the service worker keeps the page's files.
if ('serviceWorker' in navigator && location.protocol !== 'file:') {
  navigator.serviceWorker.register('sw.js').catch(() => {});
}
status('Drop or pick a .wasm file.');
document.body.dataset.state = 'ready';
