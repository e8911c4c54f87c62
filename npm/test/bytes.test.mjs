// The same bytes as native: every corpus file and a generated snapshot,
// packed by the native CLI, by the npm CLI and by the JS API, at the default
// cap and at 100,000, give outputs with the same sha256.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { api, fileSha256, inputs, ok, sha256, tempDir } from './helpers.mjs';

const CAPS = [null, 100000];

test('pack gives the native bytes, from the CLI and from the API', async (t) => {
  const dir = tempDir(t);
  const { pack, packSync } = await api();
  for (const input of inputs()) {
    for (const cap of CAPS) {
      const name = `${path.basename(input)} at ${cap ?? 'the default cap'}`;
      await t.test(name, async () => {
        const capArgs = cap === null ? [] : ['--max-segments', String(cap)];
        const native = path.join(dir, 'native.wasm');
        const npm = path.join(dir, 'npm.wasm');
        ok('native', ['pack', input, '-o', native, '--quiet', ...capArgs]);
        ok('npm', ['pack', input, '-o', npm, '--quiet', ...capArgs]);
        const expected = fileSha256(native);
        assert.equal(fileSha256(npm), expected, 'npm CLI');
        const options = cap === null ? {} : { maxSegments: cap };
        const bytes = readFileSync(input);
        const { output, report } = await pack(bytes, options);
        assert.equal(sha256(output), expected, 'JS API');
        assert.equal(report.output_bytes, output.length);
        assert.equal(report.input_bytes, bytes.length);
        assert.equal(report.changed, !bytes.equals(output));
        // The synchronous form is the same code.
        if (cap === null) assert.equal(sha256(packSync(bytes, options).output), expected, 'packSync');
      });
    }
  }
});

test('--zero-filled-imports gives the native bytes (quickjs: an imported memory)', async (t) => {
  const dir = tempDir(t);
  const input = inputs().find((f) => path.basename(f) === 'quickjs.wasm');
  assert.ok(input, 'quickjs.wasm in the corpus');
  const native = path.join(dir, 'native.wasm');
  const npm = path.join(dir, 'npm.wasm');
  ok('native', ['pack', '--zero-filled-imports', input, '-o', native]);
  ok('npm', ['pack', '--zero-filled-imports', input, '-o', npm]);
  const expected = fileSha256(native);
  assert.notEqual(expected, fileSha256(input), 'packing the imported memory changes the module');
  assert.equal(fileSha256(npm), expected);
  const { pack } = await api();
  const { output } = await pack(readFileSync(input), { zeroFilledImports: true });
  assert.equal(sha256(output), expected);
});
