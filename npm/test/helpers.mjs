// Shared by the tests: where things are, and how to run the two CLIs.
//
// The package under test is the one installed from its `npm pack` tarball
// into a fresh directory (SEGPACK_NPM_INSTALL, set by scripts/test-npm.sh),
// as a user would have it; without that variable, this source tree's npm/.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../..');

/** Where the package is installed: a directory with node_modules/segpack. */
export const INSTALL = process.env.SEGPACK_NPM_INSTALL ?? null;

/** The package's directory. */
export const PACKAGE = INSTALL
  ? realpathSync(path.join(INSTALL, 'node_modules/segpack'))
  : path.join(REPO, 'npm');

/** The launcher, run as npm links it (node_modules/.bin/segpack), or bin/segpack.js. */
export const BIN = INSTALL ? path.join(INSTALL, 'node_modules/.bin/segpack') : path.join(PACKAGE, 'bin/segpack.js');

/** The native CLI the bytes are compared with. */
export const NATIVE = process.env.SEGPACK_NATIVE ?? path.join(REPO, 'target/release/segpack');

export const CORPUS = process.env.SEGPACK_CORPUS ?? path.join(REPO, '../shared/corpus');

/** A generated snapshot (scripts/test-npm.sh makes a 16 MiB one), else the sample. */
export const SNAPSHOT = process.env.SEGPACK_SNAPSHOT ?? path.join(REPO, 'samples/snapshot.wasm');

/** Every corpus module and component, and the snapshot. */
export function inputs() {
  const corpus = readdirSync(CORPUS)
    .filter((f) => f.endsWith('.wasm'))
    .sort()
    .map((f) => path.join(CORPUS, f));
  if (corpus.length === 0) throw new Error(`no .wasm files in ${CORPUS}`);
  return [...corpus, SNAPSHOT];
}

/** The JS API, imported by its package name as a user would (exports map). */
export async function api() {
  const from = INSTALL ? path.join(INSTALL, 'package.json') : path.join(PACKAGE, 'package.json');
  const resolved = INSTALL ? createRequire(from).resolve('segpack') : path.join(PACKAGE, 'index.js');
  return import(pathToFileURL(resolved).href);
}

/**
 * Runs the npm CLI (`which` = "npm") or the native one ("native") with `args`.
 * Returns { status, stdout (Buffer), stderr (string) }.
 */
export function cli(which, args, { cwd, input, stdio } = {}) {
  // node_modules/.bin/segpack is a link to a script with a node shebang: run
  // as npx runs it. The source tree's launcher is run with this node.
  const [cmd, argv] =
    which !== 'npm' ? [NATIVE, args] : INSTALL ? [BIN, args] : [process.execPath, [BIN, ...args]];
  const r = spawnSync(cmd, argv, { cwd, input, stdio, maxBuffer: 1 << 30 });
  if (r.error) throw r.error;
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr?.toString() ?? '' };
}

/** Like `cli`, and fails with the stderr unless the status is 0. */
export function ok(which, args, options) {
  const r = cli(which, args, options);
  if (r.status !== 0) {
    throw new Error(`${which} segpack ${args.join(' ')}: status ${r.status ?? r.signal}\n${r.stderr}`);
  }
  return r;
}

export function sha256(bytes) {
  return createHash('sha256').update(bytes).digest('hex');
}

export function fileSha256(file) {
  return sha256(readFileSync(file));
}

/** A fresh temporary directory, removed after the test. */
export function tempDir(t) {
  const dir = mkdtempSync(path.join(tmpdir(), 'segpack-npm-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A Python with the wasmtime package, for running components; null if none. */
export function python() {
  const candidates = [
    process.env.SEGPACK_PYTHON,
    path.join(REPO, 'target/e2e-venv/bin/python'),
    path.join(REPO, '../peers/venv/bin/python'),
  ].filter(Boolean);
  for (const p of candidates) {
    if (existsSync(p) && spawnSync(p, ['-c', 'import wasmtime']).status === 0) return p;
  }
  return null;
}

export const CALL_EXPORT = path.join(REPO, 'tests/e2e/call_export.py');
