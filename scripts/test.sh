#!/usr/bin/env bash
# The whole test suite (`make test`, and CI through .ci/run): sets up what the tests need that
# Cargo cannot bring, then runs `cargo test`:
#   - Python's itsdangerous and websockets, in a virtualenv under target/ (made once, reused
#     after), for the live interop tests (tests/python_interop.rs) and the WebSocket
#     conformance tests (permessage-deflate), which find it through CHIRP_PYTHON;
#   - redis-server (Debian's package, installed with apt-get when missing and root), started on
#     a free loopback port with nothing on disk and stopped by its PID at the end, for the
#     Redis session store's tests (tests/redis_sessions.rs, feature `redis`), which find it
#     through CHIRP_REDIS_URL (the fault test starts its own from the PATH);
#   - Chromium (Debian's `chromium` package, installed with apt-get when missing and root),
#     for the browser test (browser-test/tests/browser.rs, a package of its own: see its
#     Cargo.toml), which finds it on the PATH or in CHIRP_CHROMIUM;
#   - then scripts/scale-out.sh: two instances of the dashboard example behind nginx (Debian's
#     package, installed when missing and root), with the cookie and the Redis store, and two
#     of the chat example sharing a Redis broadcast hub (WebSocket and SSE across instances).
# Plain `cargo test` runs every other test and skips those, saying so (in CI, with CI set,
# they fail instead). Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${CHIRP_VENV:-target/python-venv}
have_venv() { [[ -x $VENV/bin/python ]] && "$VENV/bin/python" -c 'import itsdangerous, websockets' 2>/dev/null; }

if ! have_venv; then
    if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
        if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
            echo "== installing python3 and python3-venv (apt-get)" >&2
            bash scripts/apt-install.sh python3 python3-venv >&2
        else
            echo "need python3 with the venv module (e.g. apt-get install python3-venv)" >&2
            exit 1
        fi
    fi
    echo "== creating $VENV with itsdangerous and websockets" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check 'itsdangerous>=2.2,<3' \
        'websockets>=14,<16'
fi
if [[ -z ${CHIRP_CHROMIUM:-} ]] && ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "== installing chromium (apt-get), for the browser test" >&2
        bash scripts/apt-install.sh chromium >&2
    else
        echo "== no Chromium: the browser test will skip (fail with CI=true); apt-get install chromium" >&2
    fi
fi
if ! command -v redis-server >/dev/null; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "== installing redis-server (apt-get), for the Redis session store's tests" >&2
        bash scripts/apt-install.sh redis-server >&2
    else
        echo "== no redis-server: the Redis tests will skip (fail with CI=true); apt-get install redis-server" >&2
    fi
fi
if command -v redis-server >/dev/null && [[ -z ${CHIRP_REDIS_URL:-} ]]; then
    source scripts/lib.sh
    REDIS_DIR=$(mktemp -d)
    start_redis "$REDIS_DIR" || { kill "$REDIS_PID" 2>/dev/null; exit 1; }
    trap 'kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; rm -rf "$REDIS_DIR"' EXIT
    export CHIRP_REDIS_URL=redis://127.0.0.1:$REDIS_PORT
    echo "== redis-server on $CHIRP_REDIS_URL (pid $REDIS_PID)" >&2
fi
CHIRP_PYTHON="$(cd "$VENV" && pwd)/bin/python"
export CHIRP_PYTHON
echo "== cargo test (Python: $CHIRP_PYTHON)" >&2
cargo test --locked --features redis "$@"
echo "== cargo test -p chirp-browser-test (Chromium)" >&2
cargo test --locked -p chirp-browser-test "$@"
echo "== scripts/scale-out.sh (two instances behind nginx: sessions, chat and SSE across them)" >&2
SCALE_OUT_OPTIONAL=1 bash scripts/scale-out.sh
