// A component packed by the npm package still runs: the corpus's
// hello-noimports component, packed at wasm-opt's cap (at Wizer's, which built
// it, nothing changes), answers hello("segpack") in wasmtime as before.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { CALL_EXPORT, CORPUS, api, ok, python, tempDir } from './helpers.mjs';

const COMPONENT = path.join(CORPUS, 'hello-noimports.component.wasm');

function hello(py, component) {
  const r = spawnSync(py, [CALL_EXPORT, component, 'hello', 'segpack']);
  assert.equal(r.status, 0, r.stderr.toString());
  return r.stdout.toString();
}

test('a component packed by the npm CLI and by the JS API still says hello', async (t) => {
  const py = python();
  assert.ok(py, 'a Python with wasmtime is needed: set SEGPACK_PYTHON, or run `cargo test` (target/e2e-venv)');
  const dir = tempDir(t);
  const byCli = path.join(dir, 'cli.wasm');
  ok('npm', ['pack', COMPONENT, '-o', byCli, '--max-segments', '100000']);
  ok('npm', ['verify', COMPONENT, byCli]);
  const original = readFileSync(COMPONENT);
  assert.ok(readFileSync(byCli).length < original.length, 'the component shrank');
  // The API gives the same bytes (and wasmtime takes ~20 s per run of this
  // 12 MB component: the original's run is tests/component_e2e.rs's).
  const { output } = await (await api()).pack(original, { maxSegments: 100000 });
  assert.ok(Buffer.from(output).equals(readFileSync(byCli)), 'the JS API gives the same bytes');
  assert.equal(hello(py, byCli), 'Hello, segpack!\n');
});
