"""Rebuilds the fixtures of tests/spec_testsuite.rs from the WebAssembly spec
test suite.

    python3 extract.py TESTSUITE_CHECKOUT

TESTSUITE_CHECKOUT is a checkout of https://github.com/WebAssembly/testsuite
(the commit is recorded in README.md). Needs `wasm-tools` on PATH. Writes,
into this script's directory, every distinct module of the scripts below that
validates (all features) and has at least one data segment, named
`<script>.<n>.wasm` after `wasm-tools json-from-wast` (n counts every module
of the script, invalid ones included), and `modules.txt`, one line per module:

    file script n line expect engine call...

expect: `instantiates` (a `module` command) or `traps` (`assert_uninstantiable`);
engine: `wasmtime` for the GC scripts and for offsets that read a global
the module defines (wasmi refuses those), else `wasmi`; calls: the script's own
invocations of the module's exports (up to MAX_CALLS, integer arguments
only), as `name(i32:1,i64:2)`. The test runs them in order on the original
and on each packed module and compares every result, trap and memory.
"""
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile

# The data-related scripts: data segments, memory.init and data.drop, bulk
# memory, memory.copy over segment contents, and the GC instructions that
# name data segments.
SCRIPTS = [
    "data.wast",
    "data0.wast",
    "data1.wast",
    "data_drop0.wast",
    "bulk.wast",
    "bulk64.wast",
    "memory_init.wast",
    "memory_init0.wast",
    "memory_init64.wast",
    "memory_copy.wast",
    "memory_copy0.wast",
    "memory_copy1.wast",
    "memory_copy64.wast",
    "array.wast",
    "array_new_data.wast",
    "array_init_data.wast",
]
GC_SCRIPTS = {"array.wast", "array_new_data.wast", "array_init_data.wast"}
MAX_CALLS = 64
NAME = re.compile(r"^[A-Za-z0-9_.$-]+$")

here = os.path.dirname(os.path.abspath(__file__))
suite = sys.argv[1]


def text_of(path):
    return subprocess.run(
        ["wasm-tools", "print", path], capture_output=True, text=True, check=True
    ).stdout


def has_data(text):
    return re.search(r"^\s*\(data ", text, re.M) is not None


def offset_reads_a_defined_global(text):
    """wasmi refuses `global.get` of a global the module defines in a
    constant expression (the extended-const and GC proposals allow it)."""
    defined = re.search(r"^  \(global ", text, re.M) is not None
    return defined and re.search(r"^\s*\(data .*\(global\.get ", text, re.M) is not None


def valid(path):
    return (
        subprocess.run(
            ["wasm-tools", "validate", "--features", "all", path], capture_output=True
        ).returncode
        == 0
    )


def call_text(action):
    if action.get("type") != "invoke" or "module" in action:
        return None
    name = action["field"]
    if not NAME.match(name):
        return None
    args = []
    for arg in action.get("args", []):
        if arg["type"] not in ("i32", "i64"):
            return None
        value = int(arg["value"])
        bits = 32 if arg["type"] == "i32" else 64
        if value >= 1 << (bits - 1):  # json-from-wast writes them unsigned
            value -= 1 << bits
        args.append(f"{arg['type']}:{value}")
    return f"{name}({','.join(args)})"


for old in os.listdir(here):
    if old.endswith(".wasm"):
        os.remove(os.path.join(here, old))
seen = set()
lines = []
for script in SCRIPTS:
    stem = script[: -len(".wast")]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, stem + ".json")
        subprocess.run(
            ["wasm-tools", "json-from-wast", os.path.join(suite, script), "-o", out,
             "--wasm-dir", tmp],
            check=True,
        )
        commands = json.load(open(out))["commands"]
        current = None
        for command in commands:
            kind = command["type"]
            if kind in ("module", "assert_uninstantiable"):
                # Invocations go to the last module that instantiated.
                if kind == "module":
                    current = None
                filename = command.get("filename")
                if command.get("module_type", "binary") != "binary" or filename is None:
                    continue
                path = os.path.join(tmp, filename)
                if not valid(path):
                    continue
                text = text_of(path)
                if not has_data(text):
                    continue
                data = open(path, "rb").read()
                digest = hashlib.sha256(data).hexdigest()
                if digest in seen:
                    continue
                seen.add(digest)
                with open(os.path.join(here, filename), "wb") as f:
                    f.write(data)
                index = filename[len(stem) + 1 : -len(".wasm")]
                entry = {
                    "head": [
                        filename,
                        script,
                        index,
                        str(command["line"]),
                        "instantiates" if kind == "module" else "traps",
                        "wasmtime"
                        if script in GC_SCRIPTS or offset_reads_a_defined_global(text)
                        else "wasmi",
                    ],
                    "calls": [],
                }
                lines.append(entry)
                if kind == "module":
                    current = entry
            elif "action" in command and current is not None:
                call = call_text(command["action"])
                if call is not None and len(current["calls"]) < MAX_CALLS:
                    current["calls"].append(call)

with open(os.path.join(here, "modules.txt"), "w") as f:
    f.write("# file script module line expect engine call... (written by extract.py)\n")
    for entry in lines:
        f.write(" ".join(entry["head"] + entry["calls"]) + "\n")
print(f"{len(lines)} modules")
