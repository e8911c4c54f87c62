"""Instantiate a core module in wasmtime (Wasm GC on) and call exports.

    python run_core.py MODULE.wasm 'name(1,2)' ...

Prints one line per step (see tests/support/python.rs, run_in_wasmtime).
Traps are reported by their first line, which names the trap kind.
"""
import hashlib
import re
import sys

import wasmtime


def trap_line(ex):
    text = str(ex)
    # wasmtime puts the backtrace first and the trap's cause last.
    kinds = re.findall(r"wasm trap: ([^\n]+)", text)
    if kinds:
        return kinds[-1].strip()
    return text.strip().splitlines()[-1].strip()


config = wasmtime.Config()
config.wasm_gc = True
config.wasm_function_references = True
config.wasm_reference_types = True
config.wasm_bulk_memory = True
config.wasm_multi_memory = True
config.wasm_memory64 = True
engine = wasmtime.Engine(config)
store = wasmtime.Store(engine)
module = wasmtime.Module.from_file(engine, sys.argv[1])
try:
    instance = wasmtime.Instance(store, module, [])
    print("instantiate: ok")
except Exception as ex:  # a trap at instantiation ends the run
    print("instantiate: trap", trap_line(ex))
    sys.exit(0)
exports = instance.exports(store)
for call in sys.argv[2:]:
    name, args = re.fullmatch(r"([^(]+)\((.*)\)", call).groups()
    args = [int(a) for a in args.split(",") if a]
    try:
        result = exports[name](store, *args)
        print(f"{name}: {result!r}")
    except Exception as ex:
        print(f"{name}: trap", trap_line(ex))
for export in module.exports:
    if isinstance(export.type, wasmtime.MemoryType):
        memory = exports[export.name]
        data = memory.read(store, 0, memory.data_len(store))
        print(f"memory {export.name}: {hashlib.sha256(data).hexdigest()}")
