// The JS API: the segpack CLI's WebAssembly build, run in this process on a
// private temporary directory. See index.d.ts and README.md.
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { module, moduleSync, run } from './lib/wasi.js';

/** The name the input has in messages (`input.wasm is not a WebAssembly binary ...`). */
const INPUT = 'input.wasm';
const OUTPUT = 'output.wasm';

/**
 * Packs the data segments of a module or component.
 * @param {Uint8Array} bytes
 * @param {import('./index.js').Options} [options]
 * @returns {{ output: Uint8Array, report: object }}
 */
export function packSync(bytes, options = {}) {
  return withDirectory(bytes, (dir) => {
    const { stderr } = runIn(dir, ['pack', INPUT, '-o', OUTPUT, '--json', '--quiet', ...optionArgs(options)]);
    const output = readFileSync(path.join(dir, OUTPUT));
    return {
      output: new Uint8Array(output.buffer, output.byteOffset, output.byteLength),
      report: JSON.parse(lastLine(stderr)),
    };
  });
}

/**
 * What packing would give, per core module and memory; writes nothing.
 * @param {Uint8Array} bytes
 * @param {import('./index.js').Options} [options]
 */
export function inspectSync(bytes, options = {}) {
  return withDirectory(bytes, (dir) => {
    const { stdout } = runIn(dir, ['inspect', INPUT, '--json', ...optionArgs(options)]);
    return JSON.parse(stdout);
  });
}

/** {@link packSync}, with the module compiled off the main thread on first use. */
export async function pack(bytes, options = {}) {
  await module();
  return packSync(bytes, options);
}

/** {@link inspectSync}, with the module compiled off the main thread on first use. */
export async function inspect(bytes, options = {}) {
  await module();
  return inspectSync(bytes, options);
}

/** An error of segpack: `message` is the CLI's, without its `error: `. */
export class SegpackError extends Error {
  constructor(message, status, stderr) {
    super(message);
    this.name = 'SegpackError';
    /** The CLI's exit status: 1 bad input or I/O error, 2 invalid options. */
    this.status = status;
    /** Everything the CLI printed on stderr. */
    this.stderr = stderr;
  }
}

function optionArgs(options) {
  if (options === null || typeof options !== 'object') {
    throw new TypeError('segpack: options must be an object');
  }
  const { maxSegments, zeroFilledImports, optimizeFor, ...rest } = options;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) {
    throw new TypeError(`segpack: unknown option ${unknown.map((k) => `'${k}'`).join(', ')} (options: maxSegments, zeroFilledImports, optimizeFor)`);
  }
  const args = [];
  if (maxSegments !== undefined) {
    if (!Number.isSafeInteger(maxSegments)) {
      throw new TypeError(`segpack: maxSegments must be an integer, not ${String(maxSegments)}`);
    }
    args.push(`--max-segments=${maxSegments}`);
  }
  if (zeroFilledImports !== undefined && typeof zeroFilledImports !== 'boolean') {
    throw new TypeError('segpack: zeroFilledImports must be a boolean');
  }
  if (zeroFilledImports) args.push('--zero-filled-imports');
  if (optimizeFor !== undefined) {
    if (typeof optimizeFor !== 'string') {
      throw new TypeError(`segpack: optimizeFor must be a string ('raw', 'gzip', 'brotli', 'zstd', optionally with ':LEVEL'), not ${String(optimizeFor)}`);
    }
    args.push(`--optimize-for=${optimizeFor}`);
  }
  return args;
}

function withDirectory(bytes, body) {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError('segpack: the input must be a Uint8Array (or a Buffer)');
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'segpack-'));
  try {
    writeFileSync(path.join(dir, INPUT), bytes);
    return body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs the CLI with `dir` as its only directory; throws on failure. */
function runIn(dir, args) {
  const files = ['stdin', 'stdout', 'stderr'].map((name) => path.join(dir, `.${name}`));
  const fds = files.map((f) => openSync(f, 'w+'));
  let status;
  try {
    status = run(moduleSync(), {
      args,
      preopens: { '.': dir },
      stdin: fds[0],
      stdout: fds[1],
      stderr: fds[2],
    });
  } finally {
    fds.forEach((fd) => closeSync(fd));
  }
  const stdout = readFileSync(files[1], 'utf8');
  const stderr = readFileSync(files[2], 'utf8');
  if (status !== 0) {
    const line = stderr.split('\n').find((l) => l.startsWith('error: ')) ?? stderr.split('\n').find(Boolean);
    const message = line ? line.replace(/^error: /, '') : `segpack exited with status ${status}`;
    throw new SegpackError(message, status, stderr);
  }
  return { stdout, stderr };
}

function lastLine(text) {
  const lines = text.split('\n').filter(Boolean);
  return lines[lines.length - 1];
}
