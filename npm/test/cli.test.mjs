// The npm CLI behaves as the native one: output, messages, exit statuses,
// pipes, -o onto the input, and file arguments given in every form.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync, copyFileSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync,
  readlinkSync, statSync, symlinkSync, writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { BIN, INSTALL, cli, fileSha256, inputs, ok, sha256, tempDir } from './helpers.mjs';

const SQL = inputs().find((f) => path.basename(f) === 'sql-wasm.wasm');
const ESBUILD = inputs().find((f) => path.basename(f) === 'esbuild.wasm');

/** Text output without its timing (", 0.08 s" at the end of a line). */
const untimed = (text) => text.toString().replace(/, \d+(\.\d+)? s$/gm, ', T s');
/** Messages compared across hosts: WASI's errno numbers are not Linux's. */
const noErrno = (text) => text.replace(/ \(os error \d+\)/g, ' (os error N)');

function same(args, { cwd, input, compare = (x) => x } = {}) {
  const native = cli('native', args, { cwd, input });
  const npm = cli('npm', args, { cwd, input });
  assert.equal(npm.status, native.status, `status of ${args.join(' ')}\nnpm stderr: ${npm.stderr}`);
  assert.equal(compare(npm.stderr), compare(native.stderr), 'stderr');
  assert.equal(compare(npm.stdout.toString()), compare(native.stdout.toString()), 'stdout');
  return { native, npm };
}

test('--version, --help and a subcommand help are the native ones', () => {
  same(['--version']);
  same(['--help']);
  same(['help', 'pack']);
  same(['verify', '--help']);
});

test('inspect: text and JSON as native', () => {
  same(['inspect', SQL], { compare: untimed });
  const { native, npm } = same(['inspect', ESBUILD, '--json', '--max-segments', '100000'], {
    compare: (s) => s.replace(/"seconds":[0-9.e-]+/, '"seconds":0'),
  });
  assert.ok(JSON.parse(npm.stdout).modules.length > 0);
  assert.ok(native.stdout.length > 0);
});

test('pack --stats and --json print what native prints', (t) => {
  const dir = tempDir(t);
  same(['pack', SQL, '-o', path.join(dir, 'a.wasm'), '--stats'], { compare: untimed });
  same(['pack', ESBUILD, '-o', path.join(dir, 'b.wasm'), '--json'], {
    compare: (s) => s.replace(/"seconds":[0-9.e-]+/, '"seconds":0'),
  });
});

test('verify: exit 0 and the same line; exit 1 and one error line on a difference', (t) => {
  const dir = tempDir(t);
  const packed = path.join(dir, 'packed.wasm');
  ok('npm', ['pack', SQL, '-o', packed]);
  const { npm } = same(['verify', SQL, packed]);
  assert.equal(npm.status, 0);
  const other = inputs().find((f) => path.basename(f) === 'brotli-wasm.wasm');
  const bad = same(['verify', SQL, other]);
  assert.equal(bad.npm.status, 1);
  assert.equal(bad.npm.stderr.split('\n').filter(Boolean).length, 1);
});

test('stdin to stdout: a file on stdin, and a pipe, give the native bytes', (t) => {
  const dir = tempDir(t);
  for (const input of [SQL, ESBUILD]) {
    const expected = sha256(ok('native', ['pack', input, '--quiet']).stdout);
    // A pipe (spawnSync writes `input` into one).
    const piped = ok('npm', ['pack', '--quiet'], { input: readFileSync(input) });
    assert.equal(sha256(piped.stdout), expected, `${input} through a pipe`);
    const dashed = ok('npm', ['pack', '-', '-o', '-', '--quiet'], { input: readFileSync(input) });
    assert.equal(sha256(dashed.stdout), expected, `${input} through '-'`);
    // A regular file as stdin, stdout to a file.
    const out = path.join(dir, 'out.wasm');
    const r = spawnSync('sh', ['-c', `"$0" "$@" < "${input}" > "${out}"`, ...launcher(), 'pack', '--quiet']);
    assert.equal(r.status, 0, r.stderr.toString());
    assert.equal(fileSha256(out), expected, `${input} from a file on stdin`);
  }
});

test('a reader that goes away early is not an error (pack | head -c 1)', () => {
  const cmd = `"$0" "$@" pack "${ESBUILD}" --quiet | head -c 1 > /dev/null; echo "\${PIPESTATUS[0]}"`;
  const r = spawnSync('bash', ['-c', cmd, ...launcher()]);
  assert.equal(r.stdout.toString().trim(), '0', r.stderr.toString());
});

test('a non-blocking stdout (as some parents leave it) is written in full', () => {
  const expected = sha256(ok('native', ['pack', ESBUILD, '--quiet']).stdout);
  // A parent that hands the CLI the write end of a non-blocking pipe and
  // reads it slowly, so that the pipe fills up.
  const parent = [
    'import hashlib, os, subprocess, sys, time',
    'r, w = os.pipe()',
    'os.set_blocking(w, False)',
    'p = subprocess.Popen(sys.argv[1:], stdout=w)',
    'os.close(w)',
    'time.sleep(0.5)',
    'h = hashlib.sha256()',
    'while chunk := os.read(r, 1 << 16): h.update(chunk)',
    'print(p.wait(), h.hexdigest())',
  ].join('\n');
  const r = spawnSync('python3', ['-c', parent, ...launcher(), 'pack', ESBUILD, '--quiet']);
  assert.equal(r.stdout.toString().trim(), `0 ${expected}`, r.stderr.toString());
});

test('binary output is never written to a terminal (exit 2, as native)', () => {
  const script = spawnSync('script', ['--version']);
  assert.equal(script.status, 0, 'util-linux `script` is needed to give the CLI a terminal');
  const run = (argv) => {
    const cmd = argv.map((a) => `'${a}'`).join(' ') + ' pack ' + `'${SQL}'; echo "status=$?"`;
    return spawnSync('script', ['-qec', cmd, '/dev/null']).stdout.toString();
  };
  const npm = run(launcher());
  assert.match(npm, /refusing to write binary output to a terminal/);
  assert.match(npm, /status=2/);
});

test('-o onto the input is atomic: the file is replaced by a rename, its mode kept', (t) => {
  const dir = tempDir(t);
  const expected = fileSha256(nativeOutput(t, ESBUILD));
  const file = path.join(dir, 'esbuild.wasm');
  copyFileSync(ESBUILD, file);
  chmodSync(file, 0o640);
  // A second name for the old file: written in place, it would change too.
  linkSync(file, path.join(dir, 'old.wasm'));
  const inode = statSync(file).ino;
  ok('npm', ['pack', file, '-o', file, '--quiet']);
  assert.equal(fileSha256(file), expected);
  assert.notEqual(statSync(file).ino, inode, 'a new file was renamed over the input');
  assert.equal(fileSha256(path.join(dir, 'old.wasm')), fileSha256(ESBUILD), 'the old file is untouched');
  assert.equal(statSync(file).mode & 0o777, 0o640, 'the mode is kept');
  assert.deepEqual(readdirSync(dir).sort(), ['esbuild.wasm', 'old.wasm'], 'no temporary file is left');
  // In place, relative to the working directory.
  copyFileSync(SQL, path.join(dir, 'sql.wasm'));
  ok('npm', ['pack', 'sql.wasm', '-o', 'sql.wasm'], { cwd: dir });
  assert.equal(fileSha256(path.join(dir, 'sql.wasm')), fileSha256(nativeOutput(t, SQL)));
});

test('a new output file is 0644, as native makes it', (t) => {
  const dir = tempDir(t);
  ok('npm', ['pack', SQL, '-o', path.join(dir, 'new.wasm')]);
  assert.equal(statSync(path.join(dir, 'new.wasm')).mode & 0o777, 0o644);
});

test('bad input: exit 1 and one error line, the native one', (t) => {
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'hello.wasm'), 'hello, world\n');
  writeFileSync(path.join(dir, 'truncated.wasm'), readFileSync(SQL).subarray(0, 5000));
  writeFileSync(path.join(dir, 'empty.wasm'), '');
  for (const args of [
    ['pack', 'hello.wasm', '-o', 'out.wasm'],
    ['pack', 'truncated.wasm', '-o', 'out.wasm'],
    ['pack', 'empty.wasm'],
    ['inspect', 'truncated.wasm'],
    ['verify', 'hello.wasm', 'truncated.wasm'],
    ['pack', 'missing.wasm', '-o', 'out.wasm'],
    ['pack', 'hello.wasm', '-o', 'no/such/dir/out.wasm'],
  ]) {
    const { npm } = same(args, { cwd: dir, compare: noErrno });
    assert.equal(npm.status, 1, args.join(' '));
    assert.equal(npm.stderr.split('\n').filter(Boolean).length, 1, `one line for ${args.join(' ')}: ${npm.stderr}`);
    assert.match(npm.stderr, /^error: /);
  }
  assert.deepEqual(readdirSync(dir).sort(), ['empty.wasm', 'hello.wasm', 'truncated.wasm'], 'nothing written');
  // A directory as input: one line, though the reason differs (native
  // cannot map it, WASI cannot read it).
  const npm = cli('npm', ['inspect', dir]);
  assert.equal(npm.status, 1);
  assert.match(npm.stderr, /^error: cannot map [^\n]*\n$/);
});

test('usage errors: exit 2 and the native message', () => {
  for (const args of [
    ['pack', '--bogus'],
    ['pack', '--max-segments', '0', 'x.wasm'],
    ['pack', '--max-segments', '100001', 'x.wasm'],
    ['frobnicate'],
    ['verify', 'only-one.wasm'],
    [],
  ]) {
    const { npm } = same(args);
    assert.equal(npm.status, 2, args.join(' '));
  }
});

test('file arguments: relative, absolute, with .., ./ and in other directories', (t) => {
  const dir = tempDir(t);
  for (const sub of ['in', 'out', 'work/deep']) mkdirSync(path.join(dir, sub), { recursive: true });
  copyFileSync(SQL, path.join(dir, 'in/sql.wasm'));
  const expected = fileSha256(nativeOutput(t, SQL));
  const cwd = path.join(dir, 'work/deep');
  const cases = [
    ['../../in/sql.wasm', '../../out/a.wasm'],
    [path.join(dir, 'in/sql.wasm'), path.join(dir, 'out/b.wasm')],
    ['./../../in/sql.wasm', 'c.wasm'],
    ['../../in/../in/sql.wasm', '../d.wasm'],
    [path.join(dir, 'in/sql.wasm'), '../../out/e.wasm'],
    ['../../in/sql.wasm', path.join(dir, 'f.wasm')],
  ];
  for (const [input, output] of cases) {
    ok('npm', ['pack', input, '-o', output], { cwd });
    assert.equal(fileSha256(path.resolve(cwd, output)), expected, `pack ${input} -o ${output}`);
    // verify names both files as they were given, as native does.
    same(['verify', input, output], { cwd });
  }
  // The forms of -o: --output FILE, --output=FILE, -oFILE, -qo FILE.
  for (const args of [['--output', 'g.wasm'], ['--output=h.wasm'], ['-oi.wasm'], ['-qo', 'j.wasm'], ['-o=k.wasm']]) {
    ok('npm', ['pack', '../../in/sql.wasm', ...args], { cwd });
  }
  for (const f of ['g', 'h', 'i', 'j', 'k']) assert.equal(fileSha256(path.join(cwd, `${f}.wasm`)), expected, f);
  // Options after the files, and `--` before them.
  ok('npm', ['pack', '--', '../../in/sql.wasm'], { cwd });
  ok('npm', ['inspect', '../../in/sql.wasm', '--max-segments', '5000'], { cwd });
  // Messages name files as given.
  same(['inspect', '../../in/missing.wasm'], { cwd, compare: noErrno });
});

test('-o through a symbolic link replaces the file it points to; the link stays', (t) => {
  const dir = tempDir(t);
  mkdirSync(path.join(dir, 'real'));
  mkdirSync(path.join(dir, 'links'));
  copyFileSync(SQL, path.join(dir, 'real/sql.wasm'));
  symlinkSync('../real/sql.wasm', path.join(dir, 'links/sql.wasm'));
  ok('npm', ['pack', 'links/sql.wasm', '-o', 'links/sql.wasm'], { cwd: dir });
  assert.ok(lstatSync(path.join(dir, 'links/sql.wasm')).isSymbolicLink());
  assert.equal(readlinkSync(path.join(dir, 'links/sql.wasm')), '../real/sql.wasm');
  assert.equal(fileSha256(path.join(dir, 'real/sql.wasm')), fileSha256(nativeOutput(t, SQL)));
});

test('-o /dev/null writes through the device', () => {
  same(['pack', SQL, '-o', '/dev/null']);
});

test('npx runs the installed package', { skip: !INSTALL && 'no installed package' }, () => {
  const r = spawnSync('npx', ['--no-install', 'segpack', '--version'], { cwd: INSTALL });
  assert.equal(r.status, 0, r.stderr.toString());
  assert.equal(r.stdout.toString(), cli('native', ['--version']).stdout.toString());
});

/** The npm CLI as a command and its first arguments. */
function launcher() {
  return INSTALL ? [BIN] : [process.execPath, BIN];
}

const nativeOutputs = new Map();
/** The native CLI's output for `input` (default options), as a file. */
function nativeOutput(t, input) {
  if (!nativeOutputs.has(input)) {
    const dir = tempDir(t);
    const out = path.join(dir, 'native.wasm');
    ok('native', ['pack', input, '-o', out, '--quiet']);
    nativeOutputs.set(input, readFileSync(out));
  }
  const dir = tempDir(t);
  const file = path.join(dir, 'expected.wasm');
  writeFileSync(file, nativeOutputs.get(input));
  return file;
}
