# Convenience targets; the README's two commands need none of them.
.PHONY: run test lint bench bench-peers
run:
	cargo run --release --example dashboard
test:
	cargo test
lint:
	cargo clippy --all-targets -- -D warnings && cargo fmt --all -- --check
bench:
	cargo bench
bench-peers:
	bash scripts/bench-peers.sh
