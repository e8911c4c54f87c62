// The JS API: results, reports, errors and options, and no files left behind.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { api, cli, inputs, ok, sha256, tempDir } from './helpers.mjs';

const SQL = inputs().find((f) => path.basename(f) === 'sql-wasm.wasm');
const ESBUILD = inputs().find((f) => path.basename(f) === 'esbuild.wasm');
const segpack = await api();

/** The temporary directories the API makes (it removes them). */
const ours = () => readdirSync(tmpdir()).filter((f) => /^segpack-[A-Za-z0-9]{6}$/.test(f));

test('exports: pack, inspect, packSync, inspectSync, SegpackError', () => {
  for (const name of ['pack', 'inspect', 'packSync', 'inspectSync', 'SegpackError']) {
    assert.equal(typeof segpack[name], 'function', name);
  }
});

test('pack: the report is the one `pack --json` prints', async (t) => {
  const dir = tempDir(t);
  const { output, report } = await segpack.pack(readFileSync(ESBUILD), { maxSegments: 100000 });
  assert.ok(output instanceof Uint8Array);
  const native = ok('native', ['pack', ESBUILD, '-o', path.join(dir, 'out.wasm'), '--json', '--max-segments', '100000']);
  const expected = JSON.parse(native.stderr.split('\n').filter(Boolean).pop());
  const untimed = ({ seconds, ...rest }) => rest;
  assert.deepEqual(untimed(report), untimed(expected));
  assert.equal(typeof report.seconds, 'number');
  assert.equal(report.segments_before, 98450);
  assert.ok(report.data_bytes_after < report.data_bytes_before);
});

test('inspect: the report is the one `inspect --json` prints, with each memory', async () => {
  const native = JSON.parse(ok('native', ['inspect', SQL, '--json']).stdout);
  const report = await segpack.inspect(readFileSync(SQL));
  const untimed = ({ seconds, ...rest }) => rest;
  assert.deepEqual(untimed(report), untimed(native));
  assert.equal(report.modules[0].memories[0].packable, true);
  assert.deepEqual(untimed(segpack.inspectSync(readFileSync(SQL))), untimed(native));
  // Options reach inspect too.
  const quickjs = inputs().find((f) => path.basename(f) === 'quickjs.wasm');
  assert.equal((await segpack.inspect(readFileSync(quickjs))).modules[0].memories[0].packable, false);
  const zeroed = await segpack.inspect(readFileSync(quickjs), { zeroFilledImports: true });
  assert.equal(zeroed.modules[0].memories[0].packable, true);
});

test('errors: a SegpackError with the message the CLI prints, without "error: "', async (t) => {
  const dir = tempDir(t);
  // The API names its input input.wasm: so does this run of the native CLI.
  const cases = [
    Buffer.from('hello, world\n'),
    readFileSync(SQL).subarray(0, 5000),
    new Uint8Array(0),
    Buffer.from([0, 0x61, 0x73, 0x6d, 2, 0, 0, 0]),
  ];
  for (const bytes of cases) {
    writeFileSync(path.join(dir, 'input.wasm'), bytes);
    const native = cli('native', ['pack', 'input.wasm', '-o', 'output.wasm'], { cwd: dir });
    assert.equal(native.status, 1);
    const message = native.stderr.trim().replace(/^error: /, '');
    for (const call of [() => segpack.packSync(bytes), () => segpack.inspectSync(bytes)]) {
      assert.throws(call, (e) => {
        assert.ok(e instanceof segpack.SegpackError);
        assert.ok(e instanceof Error);
        assert.equal(e.name, 'SegpackError');
        assert.equal(e.status, 1);
        assert.equal(e.message, message);
        assert.match(e.stderr, /^error: /);
        return true;
      });
    }
    await assert.rejects(segpack.pack(bytes), { name: 'SegpackError', message, status: 1 });
  }
});

test('invalid options: a SegpackError with status 2 for values, a TypeError for types', async () => {
  const bytes = readFileSync(SQL);
  for (const maxSegments of [0, 100001, -5]) {
    await assert.rejects(segpack.pack(bytes, { maxSegments }), (e) => {
      assert.ok(e instanceof segpack.SegpackError);
      assert.equal(e.status, 2);
      assert.match(e.message, /--max-segments/);
      return true;
    });
  }
  await assert.rejects(segpack.pack(bytes, { maxSegments: 1.5 }), TypeError);
  await assert.rejects(segpack.pack(bytes, { maxSegments: '100' }), TypeError);
  await assert.rejects(segpack.pack(bytes, { zeroFilledImports: 'yes' }), TypeError);
  await assert.rejects(segpack.pack(bytes, { max_segments: 10 }), /unknown option 'max_segments'/);
  await assert.rejects(segpack.pack('not bytes'), TypeError);
  await assert.rejects(segpack.pack(bytes, null), TypeError);
  assert.throws(() => segpack.packSync([0, 97, 115, 109]), TypeError);
});

test('a small cap: warnings come in the report (nothing is printed)', async () => {
  // esbuild's 98,450 segments cannot meet a cap of 1,000 without growing.
  const { output, report } = await segpack.pack(readFileSync(ESBUILD), { maxSegments: 1000 });
  assert.match(report.modules[0].warnings[0], /over --max-segments 1000/);
  assert.equal(report.at_engine_limit.max_segments, 100000);
  const native = ok('native', ['pack', ESBUILD, '--max-segments', '1000', '--quiet']).stdout;
  assert.equal(sha256(output), sha256(native));
});

test('buffers: any Uint8Array view, and the caller\'s bytes are not changed', async () => {
  const file = readFileSync(SQL);
  const expected = sha256(ok('native', ['pack', SQL, '--quiet']).stdout);
  // A view into the middle of a larger buffer.
  const big = new Uint8Array(file.length + 100);
  big.set(file, 50);
  const view = big.subarray(50, 50 + file.length);
  const before = sha256(view);
  const { output } = await segpack.pack(view);
  assert.equal(sha256(output), expected);
  assert.equal(sha256(view), before);
  assert.equal(Object.getPrototypeOf(output), Uint8Array.prototype);
});

test('concurrent calls give the same bytes, and no temporary directory is left', async (t) => {
  const before = ours();
  const inputsToPack = [SQL, ESBUILD, SQL].map((f) => readFileSync(f));
  const results = await Promise.all(inputsToPack.map((b) => segpack.pack(b)));
  assert.equal(sha256(results[0].output), sha256(results[2].output));
  await assert.rejects(segpack.pack(Buffer.from('junk')));
  assert.deepEqual(ours(), before);
  // The package works from a copy of its input anywhere (no paths leak in).
  const dir = tempDir(t);
  copyFileSync(SQL, path.join(dir, 'x.wasm'));
  assert.equal(sha256((await segpack.pack(readFileSync(path.join(dir, 'x.wasm')))).output), sha256(results[0].output));
});

test('importing the API prints nothing and leaves process warnings alone', () => {
  const script = `
    let warned = 0;
    process.on('warning', () => warned++);
    const s = await import(${JSON.stringify(process.env.SEGPACK_NPM_INSTALL ? 'segpack' : new URL('../index.js', import.meta.url).href)});
    s.packSync(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]));
    process.emitWarning('mine');
    await new Promise((r) => setTimeout(r, 10));
    console.log(warned);`;
  const run = spawnNode(['--input-type=module', '-e', script]);
  assert.equal(run.status, 0, run.stderr);
  assert.doesNotMatch(run.stderr, /WASI|Experimental/);
  assert.match(run.stderr, /Warning: mine/, 'the default listener still prints other warnings');
  assert.equal(run.stdout.trim(), '1', 'only our own warning reached the listener');
});

function spawnNode(args) {
  const cwd = process.env.SEGPACK_NPM_INSTALL ?? process.cwd();
  const r = spawnSync(process.execPath, args, { cwd });
  return { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

test('optimizeFor: gzip gives the native CLI\'s bytes and report; zstd is refused by name', async (t) => {
  const dir = tempDir(t);
  const sample = path.join(path.dirname(new URL(import.meta.url).pathname), '../../samples/snapshot.wasm');
  const { output, report } = await segpack.pack(readFileSync(sample), { optimizeFor: 'gzip' });
  const out = path.join(dir, 'out.wasm');
  const native = ok('native', ['pack', sample, '-o', out, '--json', '--optimize-for', 'gzip']);
  assert.equal(sha256(output), sha256(readFileSync(out)));
  const expected = JSON.parse(native.stderr.split('\n').filter(Boolean).pop());
  assert.deepEqual(report.compressed, expected.compressed);
  assert.ok(report.compressed.bytes_after < report.compressed.bytes_before);
  // The cost, counted in bytes handed to the codec: about three compressions.
  assert.ok(report.compressed.bytes_compressed <= 3 * readFileSync(sample).length + 65536);
  await assert.rejects(segpack.pack(readFileSync(sample), { optimizeFor: 'zstd' }), (e) => {
    assert.ok(e instanceof segpack.SegpackError);
    assert.equal(e.status, 2);
    assert.match(e.message, /no zstd/);
    return true;
  });
  await assert.rejects(segpack.pack(readFileSync(sample), { optimizeFor: 9 }), TypeError);
});
