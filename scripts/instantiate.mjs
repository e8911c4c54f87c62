// Times instantiation in V8 (Node): one `new WebAssembly.Module` (compile),
// then RUNS times `new WebAssembly.Instance` from that module, in this one
// process (a fresh memory each time, the data segments copied into it; a
// collection between runs so memories do not pile up). Imported functions
// are stubs that throw (nothing is called: no start function is expected).
//
//   node --expose-gc scripts/instantiate.mjs FILE.wasm [RUNS]
//
// Prints one JSON line: compile time, and the instantiations' median, min
// and max, in milliseconds.
import { readFileSync } from 'node:fs';

const [file, runsArg = '15'] = process.argv.slice(2);
const bytes = readFileSync(file);
const t0 = performance.now();
const module = new WebAssembly.Module(bytes);
const compileMs = performance.now() - t0;
const imports = {};
for (const imp of WebAssembly.Module.imports(module)) {
  imports[imp.module] ??= {};
  if (imp.kind !== 'function') {
    throw new Error(`${file}: import ${imp.module}.${imp.name} is a ${imp.kind}, not stubbed`);
  }
  imports[imp.module][imp.name] = () => {
    throw new Error(`stub ${imp.module}.${imp.name} called`);
  };
}
const times = [];
for (let i = 0; i < Number(runsArg); i++) {
  globalThis.gc?.();
  const t = performance.now();
  const instance = new WebAssembly.Instance(module, imports);
  times.push(performance.now() - t);
  if (!instance) throw new Error('no instance');
}
times.sort((a, b) => a - b);
const ms = (x) => Math.round(x * 1000) / 1000;
console.log(JSON.stringify({
  engine: `V8 ${process.versions.v8}`,
  file,
  bytes: bytes.length,
  compile_ms: ms(compileMs),
  instantiate_ms: { median: ms(times[times.length >> 1]), min: ms(times[0]), max: ms(times.at(-1)), runs: times.length },
}));
