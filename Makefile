# Convenience targets. `make test` is the README's test command: it sets up what the tests need
# (see scripts/test.sh); `make run` the main job.
.PHONY: bench-static run test lint bench bench-peers fuzz scale-out
run:
	cargo run --release --example dashboard
test:
	bash scripts/test.sh
lint:
	cargo clippy --workspace --all-targets --all-features -- -D warnings && cargo fmt --all -- --check
bench:
	cargo bench
bench-peers:
	bash scripts/bench-peers.sh
# Coverage-guided fuzzing (cargo fuzz, libFuzzer, nightly): FUZZ_MINUTES per target.
fuzz:
	bash scripts/fuzz.sh

# Static files and SSE beside the ext peers (part of bench-peers; see the script's header).
bench-static:
	bash scripts/bench-static.sh

# Two dashboard instances behind nginx, with cookie and Redis sessions, checked (part of `make
# test`; see the script's header).
scale-out:
	bash scripts/scale-out.sh
