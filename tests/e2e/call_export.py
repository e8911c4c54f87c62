"""Instantiate a component in wasmtime and print FUNCTION(ARG).

    python call_export.py COMPONENT FUNCTION ARG

Used by tests/component_e2e.rs: a packed component must answer exactly as
the original does. Needs the `wasmtime` package (its component API).
"""
import sys

import wasmtime
from wasmtime import component

path, function, argument = sys.argv[1:4]
engine = wasmtime.Engine()
store = wasmtime.Store(engine)
loaded = component.Component.from_file(engine, path)
instance = component.Linker(engine).instantiate(store, loaded)
export = instance.get_func(store, function)
if export is None:
    sys.exit(f"the component exports no `{function}` function")
print(export(store, argument))
