// Just enough WASI preview1 to run the segpack CLI (its wasm32-wasip1 build,
// the npm package's segpack.wasm) in a browser: files live in memory, in one
// preopened directory "."; standard output and error are captured; nothing
// else exists. The system calls are those the CLI imports (list them with
// `WebAssembly.Module.imports`); an import not here answers ENOSYS and
// `unknownCalls` names it, so a new one shows up in the browser test
// instead of failing quietly.
//
//   const { status, stdout, stderr, files } =
//     runSegpack(module, ['inspect', '--json', 'in.wasm'], new Map([['in.wasm', bytes]]));

const ESUCCESS = 0;
const EBADF = 8;
const EEXIST = 20;
const EINVAL = 28;
const EISDIR = 31;
const ENOENT = 44;
const ENOSYS = 52;
const ENOTDIR = 54;
const ESPIPE = 70;

const FILETYPE_CHARACTER_DEVICE = 2;
const FILETYPE_DIRECTORY = 3;
const FILETYPE_REGULAR_FILE = 4;

const OFLAGS_CREAT = 1;
const OFLAGS_DIRECTORY = 2;
const OFLAGS_EXCL = 4;
const OFLAGS_TRUNC = 8;
const FDFLAGS_APPEND = 1;

/** Every right: the CLI never asks for fewer than it needs. */
const ALL_RIGHTS = (1n << 30n) - 1n;

/** The program called proc_exit. */
class Exit {
  constructor(status) {
    this.status = status;
  }
}

/** A file's bytes, growing as they are written. */
class Content {
  constructor(bytes = new Uint8Array(0), ino) {
    this.buf = bytes;
    this.len = bytes.length;
    this.ino = ino;
  }
  bytes() {
    return this.buf.subarray(0, this.len);
  }
  reserve(len) {
    if (len <= this.buf.length) return;
    const buf = new Uint8Array(Math.max(len, this.buf.length * 2, 4096));
    buf.set(this.bytes());
    this.buf = buf;
  }
  truncate(len) {
    this.reserve(len);
    if (len > this.len) this.buf.fill(0, this.len, len);
    this.len = len;
  }
}

/**
 * Runs `segpack ARGS...` once, in a fresh instance of `module`.
 * `files`: name -> Uint8Array, the directory's contents (not copied; the
 * CLI only reads its input). `onRead(name, position, size)` is told as the
 * CLI reads a file. Returns the exit status, stdout and stderr as bytes,
 * the directory's files afterwards (name -> Uint8Array) and the names of
 * system calls it had to refuse.
 */
export function runSegpack(module, args, files, { onRead } = {}) {
  let nextIno = 1n;
  const dir = new Map();
  for (const [name, bytes] of files) dir.set(name, new Content(bytes, nextIno++));
  const argv = ['segpack', ...args].map((a) => new TextEncoder().encode(`${a}\0`));
  const out = { 1: [], 2: [] };
  const unknownCalls = new Set();
  // fd -> { dir: true } | { std: n } | { name, content, pos, append }
  const fds = new Map([
    [0, { std: 0 }],
    [1, { std: 1 }],
    [2, { std: 2 }],
    [3, { dir: true }],
  ]);
  let nextFd = 4;
  let memory;
  const view = () => new DataView(memory.buffer);
  const u8 = () => new Uint8Array(memory.buffer);
  const string = (ptr, len) => new TextDecoder().decode(u8().subarray(ptr, ptr + len));
  /** A path in the directory: "./a" and "a" are the same file. */
  const entry = (ptr, len) => string(ptr, len).replace(/^(\.\/)+/, '');
  /** The (pointer, length) pairs of an iovec array. */
  const iovecs = (ptr, n) => {
    const v = view();
    return Array.from({ length: n }, (_, i) => [v.getUint32(ptr + 8 * i, true), v.getUint32(ptr + 8 * i + 4, true)]);
  };

  function read(f, iovs, n, at) {
    const bytes = f.content.bytes();
    let total = 0;
    for (const [ptr, len] of iovecs(iovs, n)) {
      const chunk = bytes.subarray(at + total, at + total + len);
      u8().set(chunk, ptr);
      total += chunk.length;
      if (chunk.length < len) break;
    }
    onRead?.(f.name, at + total, bytes.length);
    return total;
  }

  function write(f, iovs, n, at) {
    let total = 0;
    for (const [ptr, len] of iovecs(iovs, n)) {
      const chunk = u8().slice(ptr, ptr + len);
      if (f.std !== undefined) {
        out[f.std]?.push(chunk);
      } else {
        f.content.reserve(at + total + len);
        if (at + total > f.content.len) f.content.truncate(at + total);
        f.content.buf.set(chunk, at + total);
        f.content.len = Math.max(f.content.len, at + total + len);
      }
      total += len;
    }
    return total;
  }

  function filestat(ptr, filetype, content) {
    const v = view();
    for (let i = 0; i < 64; i += 8) v.setBigUint64(ptr + i, 0n, true);
    v.setBigUint64(ptr, 1n, true); // dev
    v.setBigUint64(ptr + 8, content ? content.ino : 0n, true);
    v.setUint8(ptr + 16, filetype);
    v.setBigUint64(ptr + 24, 1n, true); // nlink
    v.setBigUint64(ptr + 32, BigInt(content ? content.len : 0), true);
  }

  const calls = {
    args_sizes_get(argc, size) {
      view().setUint32(argc, argv.length, true);
      view().setUint32(size, argv.reduce((n, a) => n + a.length, 0), true);
      return ESUCCESS;
    },
    args_get(ptrs, buf) {
      for (const [i, a] of argv.entries()) {
        view().setUint32(ptrs + 4 * i, buf, true);
        u8().set(a, buf);
        buf += a.length;
      }
      return ESUCCESS;
    },
    environ_sizes_get(count, size) {
      view().setUint32(count, 0, true);
      view().setUint32(size, 0, true);
      return ESUCCESS;
    },
    environ_get: () => ESUCCESS,
    fd_prestat_get(fd, ptr) {
      if (fd !== 3) return EBADF;
      view().setUint32(ptr, 0, true); // a directory
      view().setUint32(ptr + 4, 1, true); // ".".length
      return ESUCCESS;
    },
    fd_prestat_dir_name(fd, ptr, len) {
      if (fd !== 3) return EBADF;
      u8().set(new TextEncoder().encode('.').subarray(0, len), ptr);
      return ESUCCESS;
    },
    fd_fdstat_get(fd, ptr) {
      const f = fds.get(fd);
      if (!f) return EBADF;
      const v = view();
      const type = f.dir ? FILETYPE_DIRECTORY : f.content ? FILETYPE_REGULAR_FILE : FILETYPE_CHARACTER_DEVICE;
      v.setUint8(ptr, type);
      v.setUint16(ptr + 2, f.append ? FDFLAGS_APPEND : 0, true);
      // Standard streams keep fd_seek and fd_tell among their rights, so
      // wasi-libc's isatty says they are not terminals.
      v.setBigUint64(ptr + 8, ALL_RIGHTS, true);
      v.setBigUint64(ptr + 16, ALL_RIGHTS, true);
      return ESUCCESS;
    },
    fd_filestat_get(fd, ptr) {
      const f = fds.get(fd);
      if (!f) return EBADF;
      if (f.dir) filestat(ptr, FILETYPE_DIRECTORY, null);
      else if (f.content) filestat(ptr, FILETYPE_REGULAR_FILE, f.content);
      else filestat(ptr, FILETYPE_CHARACTER_DEVICE, null);
      return ESUCCESS;
    },
    path_filestat_get(fd, _flags, ptr, len, out) {
      if (fd !== 3) return EBADF;
      const name = entry(ptr, len);
      if (name === '' || name === '.') {
        filestat(out, FILETYPE_DIRECTORY, null);
        return ESUCCESS;
      }
      const content = dir.get(name);
      if (!content) return ENOENT;
      filestat(out, FILETYPE_REGULAR_FILE, content);
      return ESUCCESS;
    },
    path_open(fd, _dirflags, ptr, len, oflags, _rights, _inheriting, fdflags, out) {
      if (fd !== 3) return EBADF;
      const name = entry(ptr, len);
      if (name === '' || name === '.') {
        const dirFd = nextFd++;
        fds.set(dirFd, { dir: true });
        view().setUint32(out, dirFd, true);
        return ESUCCESS;
      }
      if (name.includes('/')) return ENOENT;
      if (oflags & OFLAGS_DIRECTORY) return ENOTDIR;
      let content = dir.get(name);
      if (content && oflags & OFLAGS_CREAT && oflags & OFLAGS_EXCL) return EEXIST;
      if (!content) {
        if (!(oflags & OFLAGS_CREAT)) return ENOENT;
        content = new Content(new Uint8Array(0), nextIno++);
        dir.set(name, content);
      }
      if (oflags & OFLAGS_TRUNC) {
        // Never truncate a caller's buffer in place: start a new one.
        content.buf = new Uint8Array(0);
        content.len = 0;
      }
      const newFd = nextFd++;
      fds.set(newFd, { name, content, pos: 0, append: Boolean(fdflags & FDFLAGS_APPEND) });
      view().setUint32(out, newFd, true);
      return ESUCCESS;
    },
    path_rename(fd, oldPtr, oldLen, newFd, newPtr, newLen) {
      if (fd !== 3 || newFd !== 3) return EBADF;
      const from = entry(oldPtr, oldLen);
      const content = dir.get(from);
      if (!content) return ENOENT;
      dir.delete(from);
      dir.set(entry(newPtr, newLen), content);
      return ESUCCESS;
    },
    path_unlink_file(fd, ptr, len) {
      if (fd !== 3) return EBADF;
      return dir.delete(entry(ptr, len)) ? ESUCCESS : ENOENT;
    },
    fd_read(fd, iovs, n, nread) {
      const f = fds.get(fd);
      if (!f) return EBADF;
      if (f.dir) return EISDIR;
      if (f.std !== undefined) {
        view().setUint32(nread, 0, true); // stdin is empty
        return ESUCCESS;
      }
      const total = read(f, iovs, n, f.pos);
      f.pos += total;
      view().setUint32(nread, total, true);
      return ESUCCESS;
    },
    fd_write(fd, iovs, n, nwritten) {
      const f = fds.get(fd);
      if (!f || f.dir) return EBADF;
      if (f.content && f.append) f.pos = f.content.len;
      const total = write(f, iovs, n, f.pos ?? 0);
      if (f.content) f.pos += total;
      view().setUint32(nwritten, total, true);
      return ESUCCESS;
    },
    fd_seek(fd, offset, whence, out) {
      const f = fds.get(fd);
      if (!f) return EBADF;
      if (!f.content) return ESPIPE;
      const base = [0, f.pos, f.content.len][whence];
      if (base === undefined) return EINVAL;
      const pos = base + Number(offset);
      if (pos < 0) return EINVAL;
      f.pos = pos;
      view().setBigUint64(out, BigInt(pos), true);
      return ESUCCESS;
    },
    fd_close: (fd) => (fds.delete(fd) ? ESUCCESS : EBADF),
    fd_sync: (fd) => (fds.has(fd) ? ESUCCESS : EBADF),
    clock_time_get(id, _precision, out) {
      const ns = id === 0 ? BigInt(Date.now()) * 1000000n : BigInt(Math.round(performance.now() * 1e6));
      view().setBigUint64(out, ns, true);
      return ESUCCESS;
    },
    random_get(ptr, len) {
      for (let at = 0; at < len; at += 65536) {
        crypto.getRandomValues(u8().subarray(ptr + at, ptr + Math.min(len, at + 65536)));
      }
      return ESUCCESS;
    },
    sched_yield: () => ESUCCESS,
    // Sleeping (std::thread::sleep): the CLI never waits on anything.
    poll_oneoff: () => ENOSYS,
    proc_exit(status) {
      throw new Exit(status);
    },
  };

  const imports = new Proxy(calls, {
    get(target, name) {
      if (name in target) return target[name];
      return () => {
        unknownCalls.add(String(name));
        return ENOSYS;
      };
    },
  });
  const instance = new WebAssembly.Instance(module, { wasi_snapshot_preview1: imports });
  memory = instance.exports.memory;
  let status = 0;
  try {
    instance.exports._start();
  } catch (e) {
    if (e instanceof Exit) status = e.status;
    else if (e instanceof WebAssembly.RuntimeError) {
      // A panic aborts under wasm: its message, if any, is on stderr.
      out[2].push(new TextEncoder().encode(`segpack: the WebAssembly module trapped (${e.message})\n`));
      status = 101;
    } else throw e;
  }
  const concat = (chunks) => {
    const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of chunks) {
      all.set(c, at);
      at += c.length;
    }
    return all;
  };
  const after = new Map([...dir].map(([name, content]) => [name, content.bytes()]));
  return { status, stdout: concat(out[1]), stderr: concat(out[2]), files: after, unknownCalls: [...unknownCalls] };
}
