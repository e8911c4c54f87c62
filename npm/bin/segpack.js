#!/usr/bin/env node
// `segpack` from npm: the segpack CLI, built for wasm32-wasip1, run by Node's
// WASI. Arguments, standard input and output, messages and exit statuses are
// the native CLI's; see ../README.md.
//
// CommonJS, as lib/ is (bin/package.json, lib/package.json): Node 20's ES
// module loader would add 1.5 MiB to the peak memory, for three files.
'use strict';
const { chmodSync, statSync } = require('node:fs');
const v8 = require('node:v8');
const { runInNewContext } = require('node:vm');

const { mapArguments } = require('../lib/args.js');
const { moduleSync, run } = require('../lib/wasi.js');

// Never touch process.stdout, process.stderr or process.stdin (nor import
// node:process, whose ESM facade reads them all): creating those streams
// makes the descriptors non-blocking, and the module's writes to a full pipe
// would then fail with EAGAIN. The module reads and writes fds 0-2 itself.

// V8's baseline compiler only, and each function compiled on its first call:
// segpack's hot loops are simple, and the optimizing tier costs about 10 MiB
// of peak memory and, on small inputs, more time than it saves. Only on the
// V8 releases of Node 20-24 (11.x-13.x), which have both flags: an unknown
// flag would print an error. (This process runs nothing else; the JS API
// leaves V8's flags alone.)
const v8Major = Number.parseInt(process.versions.v8, 10);
if (v8Major >= 11 && v8Major <= 13) v8.setFlagsFromString('--liftoff-only --wasm-lazy-compilation');

const { args, preopens, output } = mapArguments(process.argv.slice(2));
const before = output === null ? null : stat(output);
// Compiled here and now: the run waits for it anyway.
const compiled = moduleSync();
// The module's bytes, read to compile it (3 MiB; V8 keeps its own copy), are
// garbage now, but nothing would collect them before the run ends: the run
// makes next to no garbage of its own. Collected now, before the module's
// memory grows, they are not part of the peak. (`gc` is only given to new
// contexts once the flag is set.)
v8.setFlagsFromString('--expose-gc');
runInNewContext('gc')();
const status = run(compiled, { args, preopens, env: { ...process.env } });

// WASI has no file permissions: the output is created as the host makes it.
// The native CLI keeps an existing target's permissions and makes a new
// file 0644; do the same after the rename.
if (status === 0 && output !== null && process.platform !== 'win32') {
  const after = stat(output);
  const mode = before?.isFile() ? before.mode & 0o7777 : 0o644;
  if (after?.isFile() && (before === null || before.isFile()) && (after.mode & 0o7777) !== mode) {
    try {
      chmodSync(output, mode);
    } catch {
      // Not ours to fix: the file is written.
    }
  }
}
process.exitCode = status;

function stat(p) {
  try {
    return statSync(p);
  } catch {
    return null;
  }
}
