// Runs a wasm32-wasip1 program (a test binary, the CLI) in Node's WASI:
//
//   node scripts/wasi-run.mjs PROGRAM.wasm [ARGS...]
//
// scripts/cross.sh makes it cargo's runner (CARGO_TARGET_WASM32_WASIP1_RUNNER).
// "." is preopened, so relative paths resolve against the current directory as
// they do natively, and so is each top-level directory, so absolute paths work.
// The exit code is the program's; a panic (wasm is panic=abort) traps: exit 1.
import { readFile, readdir, stat } from 'node:fs/promises';
import process from 'node:process';
import { WASI } from 'node:wasi';

process.removeAllListeners('warning'); // "WASI is an experimental feature"

const [program, ...args] = process.argv.slice(2);
if (!program) {
  console.error('usage: node wasi-run.mjs PROGRAM.wasm [ARGS...]');
  process.exit(2);
}
const preopens = { '.': '.' };
for (const name of await readdir('/')) {
  const dir = `/${name}`;
  if (await stat(dir).then((s) => s.isDirectory(), () => false)) preopens[dir] = dir;
}
const wasi = new WASI({
  version: 'preview1',
  args: [program, ...args],
  env: process.env,
  preopens,
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(program));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
try {
  process.exit(wasi.start(instance));
} catch (e) {
  if (!(e instanceof WebAssembly.RuntimeError)) throw e;
  // A panic aborts: libtest's captured output, the message with it, is lost.
  console.error(`wasi-run: ${program} trapped (${e.message}): a panic aborts under wasm's ` +
    'panic=abort; to see its message, run the test alone with -- --nocapture');
  process.exit(1);
}
