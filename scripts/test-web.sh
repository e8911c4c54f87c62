#!/usr/bin/env bash
# Tests the web page in a real browser: builds it (scripts/build-web.sh) and
# the native CLI (release), serves target/web, and drives Debian's chromium
# through chromedriver with Selenium (from PyPI, into target/web-venv) in
# web/test/test_page.py: the page loads; the sample and a component go in
# through its file input and it shows what `segpack inspect` says; the packed
# file from its download link has the native CLI's sha256; a non-Wasm file
# gets the CLI's message.
#
#   scripts/test-web.sh                 (needs: apt-get install chromium chromium-driver)
#   SEGPACK_SCREENSHOT=docs/web.png scripts/test-web.sh   also saves a screenshot
#
# Environment: SEGPACK_CORPUS (default ../shared/corpus) for the component,
# hello.component.wasm.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
t0=$SECONDS

for tool in chromium chromedriver; do
  command -v $tool >/dev/null ||
    { echo "test-web.sh: no $tool; install it: sudo apt-get install chromium chromium-driver" >&2; exit 1; }
done
corpus=${SEGPACK_CORPUS:-$ROOT/../shared/corpus}
component=$corpus/hello.component.wasm
[ -f "$component" ] || { echo "test-web.sh: no $component (set SEGPACK_CORPUS)" >&2; exit 1; }

venv=target/web-venv
if ! "$venv/bin/python" -c 'import selenium' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'selenium>=4.11'
fi

web=$(scripts/build-web.sh | tail -n1)
cargo build --release -p segpack-cli

export SEGPACK_WEB=$web
export SEGPACK_NATIVE=$ROOT/target/release/segpack
export SEGPACK_SAMPLE=$ROOT/samples/snapshot.wasm
export SEGPACK_COMPONENT=$component
# Selenium must not look for drivers on the network: the test names Debian's.
export SE_OFFLINE=true
"$venv/bin/python" web/test/test_page.py
echo "web page tests: $((SECONDS - t0)) s" >&2
