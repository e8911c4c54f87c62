"""Instantiate a component in wasmtime and print hello(NAME).

    python call_hello.py COMPONENT NAME

Used by tests/component_e2e.rs: the packed component must answer exactly
as the original does. Needs the `wasmtime` package (its component API).
"""
import sys

import wasmtime
from wasmtime import component

engine = wasmtime.Engine()
store = wasmtime.Store(engine)
loaded = component.Component.from_file(engine, sys.argv[1])
instance = component.Linker(engine).instantiate(store, loaded)
hello = instance.get_func(store, "hello")
if hello is None:
    sys.exit("the component exports no `hello` function")
print(hello(store, sys.argv[2]))
