"""Times instantiation in Wasmtime (the Python `wasmtime` package): one
`wasmtime.Module` (compile: Cranelift, and Wasmtime's memory image built from
the data segments), then RUNS times `wasmtime.Instance` from it, each in a
fresh Store. Imports are stubs: functions that trap, and memories, tables and
globals of the imported types. Core modules only (for a component,
scripts/instantiate.sh hands over its core module with the data).

    python instantiate.py FILE.wasm [RUNS]

Prints one JSON line: compile time, and the instantiations' median, min and
max, in milliseconds.
"""
import json
import sys
import time

import wasmtime


def stub(store, ty):
    if isinstance(ty, wasmtime.FuncType):
        def trap(*_args):
            raise wasmtime.WasmtimeError("stub called")
        return wasmtime.Func(store, ty, trap)
    if isinstance(ty, wasmtime.MemoryType):
        return wasmtime.Memory(store, ty)
    if isinstance(ty, wasmtime.TableType):
        return wasmtime.Table(store, ty, None)
    if isinstance(ty, wasmtime.GlobalType):
        zero = {"i32": wasmtime.Val.i32(0), "i64": wasmtime.Val.i64(0),
                "f32": wasmtime.Val.f32(0), "f64": wasmtime.Val.f64(0)}
        return wasmtime.Global(store, ty, zero[str(ty.content)])
    raise SystemExit(f"cannot stub an import of type {ty}")


def main():
    path = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    data = open(path, "rb").read()
    engine = wasmtime.Engine()
    t = time.perf_counter()
    module = wasmtime.Module(engine, data)
    compile_ms = (time.perf_counter() - t) * 1000
    times = []
    for _ in range(runs):
        store = wasmtime.Store(engine)
        imports = [stub(store, imp.type) for imp in module.imports]
        t = time.perf_counter()
        wasmtime.Instance(store, module, imports)
        times.append((time.perf_counter() - t) * 1000)
        del store
    times.sort()
    r = lambda x: round(x, 3)
    print(json.dumps({
        "engine": f"wasmtime-py {wasmtime.__version__ if hasattr(wasmtime, '__version__') else ''}".strip(),
        "file": path,
        "bytes": len(data),
        "compile_ms": r(compile_ms),
        "instantiate_ms": {"median": r(times[len(times) // 2]), "min": r(times[0]),
                           "max": r(times[-1]), "runs": len(times)},
    }))


main()
