// Which command-line arguments name files, and what WASI must see of them.
//
// WASI reaches only the directories it is given ("preopened"), each under a
// guest path. The launcher preopens exactly the directory of each file
// argument, under the name the argument itself uses for it: `../x/in.wasm`
// gets `../x`, `/abs/dir/in.wasm` gets `/abs/dir`, `in.wasm` gets `.`. The
// argument is then passed on unchanged, so every message names files as the
// user wrote them, as the native CLI does. For `-o`, the directory is where the
// temporary file is written and renamed over the target, so `-o` onto the
// input stays atomic.
'use strict';
const { lstatSync, realpathSync, statSync } = require('node:fs');
const path = require('node:path');

/** Options of pack / inspect / verify that take a value that is not a file. */
const VALUE_OPTIONS = new Set(['--max-segments', '--threads']);
const SUBCOMMANDS = new Set(['pack', 'inspect', 'verify']);

/**
 * Maps `argv` (the arguments after `segpack`) for WASI.
 * Returns `{ args, preopens, output }`: the arguments to pass, the preopened
 * directories (guest path -> host path) and the host path of the `-o` target
 * (or null).
 */
function mapArguments(argv, { cwd = process.cwd(), platform = process.platform } = {}) {
  const args = [...argv];
  const preopens = {};
  let output = null;
  const file = (value, isOutput) => {
    const mapped = mapPath(value, { cwd, platform, isOutput, preopens });
    if (isOutput && mapped.host) output = mapped.host;
    return mapped.guest;
  };
  let sub = null;
  let options = true;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (sub === null) {
      if (a.startsWith('-')) continue; // -h, -V, --help, --version
      sub = a;
      if (!SUBCOMMANDS.has(sub)) break; // `help` or a typo: no files
      continue;
    }
    if (options && a === '--') {
      options = false;
    } else if (options && a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a : a.slice(0, eq);
      if (name === '--output') {
        if (eq >= 0) args[i] = `${name}=${file(a.slice(eq + 1), true)}`;
        else if (i + 1 < argv.length) args[i + 1] = file(argv[++i], true);
      } else if (VALUE_OPTIONS.has(name) && eq < 0) {
        i++;
      }
    } else if (options && a.startsWith('-') && a !== '-') {
      // Short options, possibly clustered (-qo FILE, -qoFILE, -o=FILE).
      const o = a.indexOf('o');
      if (o > 0) {
        const value = a.slice(o + 1);
        if (value.startsWith('=')) args[i] = a.slice(0, o + 2) + file(value.slice(1), true);
        else if (value) args[i] = a.slice(0, o + 1) + file(value, true);
        else if (i + 1 < argv.length) args[i + 1] = file(argv[++i], true);
      }
    } else {
      args[i] = file(a, false);
    }
  }
  return { args, preopens, output };
}

/**
 * One file argument: its guest path, and its directory added to `preopens`.
 * `-` (stdin, stdout) passes through; so does an empty argument.
 */
function mapPath(value, { cwd, platform, isOutput, preopens }) {
  if (value === '-' || value === '') return { guest: value, host: null };
  // Writing through /dev/stdout is writing to standard output.
  if (isOutput && value === '/dev/stdout' && platform !== 'win32') return { guest: '-', host: null };
  const p = platform === 'win32' ? path.win32 : path.posix;
  let host = p.resolve(cwd, value);
  let guest = toGuest(value, platform);
  // A symbolic link to a file: WASI cannot follow a link out of the
  // directory it was given, and a replaced output must stay a link (the
  // native CLI replaces the file it points to). Name the file itself.
  if (isSymlink(host)) {
    try {
      host = realpathSync(host);
      guest = toGuest(host, platform);
    } catch {
      // A dangling link: left as it is, WASI reports it.
    }
  }
  // Preopen the file's directory; when it does not exist, its nearest
  // existing ancestor, so that the error the CLI reports is "No such file".
  let guestDir = path.posix.dirname(guest);
  let hostDir = p.dirname(host);
  while (!isDirectory(hostDir) && guestDir !== path.posix.dirname(guestDir)) {
    guestDir = path.posix.dirname(guestDir);
    hostDir = p.dirname(hostDir);
  }
  if (isDirectory(hostDir)) preopens[guestDir] = hostDir;
  return { guest, host };
}

/** The path WASI sees: the argument itself, with `/` for `\` on Windows and
 * a drive letter as a first component (`C:\x` -> `/C:/x`). */
function toGuest(value, platform) {
  if (platform !== 'win32') return value;
  const slashed = value.replaceAll('\\', '/');
  return /^[A-Za-z]:/.test(slashed) ? `/${slashed}` : slashed;
}

function isSymlink(p) {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

function isDirectory(p) {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

exports.mapArguments = mapArguments;
