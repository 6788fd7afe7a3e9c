#!/usr/bin/env bash
# Coverage-guided fuzzing of the parts that read network input (`make fuzz`): cargo fuzz with
# libFuzzer, on the nightly toolchain (cargo fuzz needs it for the sanitizer and coverage
# flags; these machines have one: `rustup toolchain list`). libFuzzer rather than AFL++: it
# runs in process, needs no Debian package, and cargo fuzz builds it from crates.io.
#
# Targets (fuzz/fuzz_targets/, each calling chirp::__fuzz::<name>, where its checks are
# documented): request_head, chunked_body, cookie_header, session_cookie, route_path,
# static_path. The
# same functions run in CI as proptest properties (tests/properties.rs).
#
# Environment: FUZZ_MINUTES [2] per target; TARGETS [all]. Seeds are read from
# fuzz/corpus/<target> (committed); what libFuzzer finds goes to fuzz/out/<target> (not
# committed), its log to fuzz/out/<target>.log, crashes to fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${FUZZ_MINUTES:-2}
rustup toolchain list | grep -q '^nightly' \
    || { echo "cargo fuzz needs the nightly toolchain: rustup toolchain install nightly" >&2; exit 1; }
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
TARGETS=${TARGETS:-$(cd fuzz && cargo +nightly fuzz list)}
mkdir -p fuzz/out
status=0
for t in $TARGETS; do
    mkdir -p "fuzz/out/$t"
    echo "== $t: $MINUTES min" >&2
    if ! (cd fuzz && cargo +nightly fuzz run "$t" "out/$t" "corpus/$t" -- \
            -max_total_time=$((MINUTES * 60)) -print_final_stats=1) > "fuzz/out/$t.log" 2>&1; then
        echo "!! $t failed: see fuzz/out/$t.log and fuzz/artifacts/$t/" >&2
        status=1
    fi
    grep -E '^#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss' "fuzz/out/$t.log" >&2 || true
done
exit $status
