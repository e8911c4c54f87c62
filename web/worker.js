// The page's worker: reads the dropped file, and runs the segpack CLI
// (segpack.wasm, the WASI build) on it through wasi.js, so the page stays
// responsive. Every number and picture the page shows, and the packed file,
// come from the CLI's own commands here: no second implementation.
//
// Messages in:  { id, load: File } | { id, args: [...], output?: name }
// Messages out: { id, progress: { done, total, what } }
//               { id, done: { name, size } }               after load
//               { id, done: { status, stdout, stderr, output?, unknownCalls } }
//               { id, error: message }
import { runSegpack } from './wasi.js';

const compiled = WebAssembly.compileStreaming
  ? WebAssembly.compileStreaming(fetch('segpack.wasm'))
  : fetch('segpack.wasm').then((r) => r.arrayBuffer()).then((b) => WebAssembly.compile(b));

/** The input: its name (as the CLI prints it) and bytes. */
let input = null;

/** Reads `file` a few MiB at a time, telling the page how far it is. */
async function load(id, file) {
  const bytes = new Uint8Array(file.size);
  const step = 8 << 20;
  for (let at = 0; at < file.size; at += step) {
    const chunk = new Uint8Array(await file.slice(at, at + step).arrayBuffer());
    bytes.set(chunk, at);
    postMessage({ id, progress: { done: at + chunk.length, total: file.size, what: 'reading' } });
  }
  input = { name: file.name, bytes };
  return { name: file.name, size: file.size };
}

/** Runs `segpack ARGS...` on the input; `output` names the file `-o` writes. */
async function run(id, args, output) {
  const module = await compiled;
  if (!input) throw new Error('no file loaded');
  let told = 0;
  const onRead = (name, at, size) => {
    // The CLI reads its input whole before it plans: say how far.
    if (name === input.name && (at - told > size / 50 || at === size)) {
      told = at;
      postMessage({ id, progress: { done: at, total: size, what: 'segpack reads' } });
    }
  };
  const files = new Map([[input.name, input.bytes]]);
  const result = runSegpack(module, args, files, { onRead });
  const decode = (b) => new TextDecoder().decode(b);
  const done = {
    status: result.status,
    stdout: decode(result.stdout),
    stderr: decode(result.stderr),
    unknownCalls: result.unknownCalls,
  };
  const transfer = [];
  if (output && result.files.has(output)) {
    done.output = result.files.get(output).slice();
    transfer.push(done.output.buffer);
  }
  postMessage({ id, done }, transfer);
}

onmessage = async ({ data }) => {
  const { id } = data;
  try {
    if (data.load) postMessage({ id, done: await load(id, data.load) });
    else await run(id, data.args, data.output);
  } catch (e) {
    postMessage({ id, error: e instanceof Error ? e.message : String(e) });
  }
};
