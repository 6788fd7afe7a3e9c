#!/usr/bin/env bash
# The whole test suite (`make test`, and CI through .ci/run): sets up what the tests need that
# Cargo cannot bring, then runs `cargo test`:
#   - Python's itsdangerous, in a virtualenv under target/ (made once, reused after), for the
#     live interop tests (tests/python_interop.rs), which find it through CHIRP_PYTHON;
#   - Chromium (Debian's `chromium` package, installed with apt-get when missing and root),
#     for the browser test (browser-test/tests/browser.rs, a package of its own: see its
#     Cargo.toml), which finds it on the PATH or in CHIRP_CHROMIUM.
# Plain `cargo test` runs every other test and skips those, saying so (in CI, with CI set,
# they fail instead). Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${CHIRP_VENV:-target/python-venv}
have_venv() { [[ -x $VENV/bin/python ]] && "$VENV/bin/python" -c 'import itsdangerous' 2>/dev/null; }

if ! have_venv; then
    if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
        if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
            echo "== installing python3 and python3-venv (apt-get)" >&2
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >&2
        else
            echo "need python3 with the venv module (e.g. apt-get install python3-venv)" >&2
            exit 1
        fi
    fi
    echo "== creating $VENV with itsdangerous" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check 'itsdangerous>=2.2,<3'
fi
if [[ -z ${CHIRP_CHROMIUM:-} ]] && ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "== installing chromium (apt-get), for the browser test" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
    else
        echo "== no Chromium: the browser test will skip (fail with CI=true); apt-get install chromium" >&2
    fi
fi
CHIRP_PYTHON="$(cd "$VENV" && pwd)/bin/python"
export CHIRP_PYTHON
echo "== cargo test (Python: $CHIRP_PYTHON)" >&2
cargo test --locked "$@"
echo "== cargo test -p chirp-browser-test (Chromium)" >&2
cargo test --locked -p chirp-browser-test "$@"
