// Runs segpack.wasm (the segpack CLI built for wasm32-wasip1) in Node's WASI.
// Shared by the launcher (bin/segpack.js) and the JS API (index.js). CommonJS,
// as the launcher is (see there); the API imports it all the same.
'use strict';
const { readFileSync, writeSync } = require('node:fs');
const { readFile } = require('node:fs/promises');
const path = require('node:path');

const WASM = path.join(__dirname, '..', 'segpack.wasm');

/** Exit status when the module traps (a Rust panic aborts under wasm). */
const TRAP_STATUS = 101;

let WASI;
/** node:wasi, loaded without its "experimental feature" warning (and
 * without touching anyone else's warning listeners). */
function wasiClass() {
  if (!WASI) {
    const emitWarning = process.emitWarning;
    process.emitWarning = function (warning, ...rest) {
      const text = typeof warning === 'string' ? warning : warning?.message;
      if (typeof text === 'string' && text.includes('WASI')) return;
      return emitWarning.call(this, warning, ...rest);
    };
    try {
      ({ WASI } = require('node:wasi'));
    } finally {
      process.emitWarning = emitWarning;
    }
  }
  return WASI;
}

let compiled;
let compiling;

/** The compiled module, compiled once per process (synchronously). */
function moduleSync() {
  compiled ??= new WebAssembly.Module(readFileSync(WASM));
  return compiled;
}

/** The compiled module, compiled once per process (off the main thread).
 * Exported as `module`, a name CommonJS takes for itself here. */
function compile() {
  if (compiled) return Promise.resolve(compiled);
  compiling ??= readFile(WASM)
    .then((bytes) => WebAssembly.compile(bytes))
    .then((m) => (compiled = m));
  return compiling;
}

/**
 * Runs the CLI once: `segpack ARGS...` with the given preopened directories
 * (guest path -> host path) and file descriptors for stdio. Returns the exit
 * status; a trap (a panic) prints one line on stderr and returns TRAP_STATUS.
 */
function run(wasmModule, { args, preopens = {}, env = {}, stdin = 0, stdout = 1, stderr = 2 }) {
  const Wasi = wasiClass();
  const wasi = new Wasi({
    version: 'preview1',
    args: ['segpack', ...args],
    env,
    preopens,
    stdin,
    stdout,
    stderr,
    returnOnExit: true,
  });
  const instance = new WebAssembly.Instance(wasmModule, unfastened(wasi.getImportObject()));
  try {
    return wasi.start(instance);
  } catch (e) {
    if (!(e instanceof WebAssembly.RuntimeError)) throw e;
    // The panic message, if any, is already on stderr.
    const line = Buffer.from(`segpack: the WebAssembly module trapped (${e.message})\n`);
    try {
      writeAll(stderr, line);
    } catch {
      // stderr is gone: nothing to tell.
    }
    return TRAP_STATUS;
  }
}

function writeAll(fd, bytes) {
  for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at);
}

/** WASI's errno for "try again". */
const EAGAIN = 6;
const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * The WASI imports, each called through a plain JavaScript function.
 *
 * Node 20's node:wasi gives Wasm "fast API" calls into C++ that corrupt V8's
 * heap once the module has grown its memory: a module that alternates
 * memory.grow and fd_write crashes Node 20.20 within a hundred calls (V8
 * fatal "unreachable code" in a GC, or SIGSEGV). segpack grows its memory to
 * hold the input, so large inputs crashed it about half the time. Through a
 * JavaScript function the call takes the ordinary path, which is correct and
 * costs nothing measurable (segpack makes few, large WASI calls).
 *
 * Reads and writes that fail with EAGAIN are retried after a short wait: a
 * descriptor inherited from a Node parent (npm running a script, with its
 * stdout a pipe) can be non-blocking, and the module, like any CLI, expects
 * blocking standard streams. EAGAIN means nothing was read or written, so the
 * same call is made again.
 */
function unfastened(imports) {
  const wrapped = {};
  for (const [name, fn] of Object.entries(imports.wasi_snapshot_preview1)) {
    wrapped[name] =
      name === 'fd_write' || name === 'fd_read'
        ? (...args) => {
            for (let wait = 1; ; wait = Math.min(2 * wait, 50)) {
              const errno = fn(...args);
              if (errno !== EAGAIN) return errno;
              Atomics.wait(pause, 0, 0, wait);
            }
          }
        : (...args) => fn(...args);
  }
  return { ...imports, wasi_snapshot_preview1: wrapped };
}

exports.TRAP_STATUS = TRAP_STATUS;
exports.moduleSync = moduleSync;
exports.module = compile;
exports.run = run;
