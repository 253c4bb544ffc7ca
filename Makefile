# ecr-gc. `make demo` and `make test` are the quickstart.
SHELL := /bin/bash
EVENT ?= events/manual.json
PORT ?= 9000

.PHONY: build test lint check doc demo invoke-local validate deploy tools rust-tools bench

# Installs, with pip, the tools the tests and the demo need, if missing.
tools:
	@command -v moto_server >/dev/null || pip install 'moto[server]'
	@command -v cargo-lambda >/dev/null || pip install cargo-lambda
	@command -v sam >/dev/null || pip install aws-sam-cli
	@command -v cfn-lint >/dev/null || pip install cfn-lint
	@if command -v pyenv >/dev/null; then pyenv rehash; fi

# cargo-deny, for `make lint`; built from crates.io once (a few minutes).
rust-tools:
	@command -v cargo-deny >/dev/null || cargo install cargo-deny --locked

build:
	cargo lambda build --release --arm64

test: tools
	cargo test --all-targets

lint: rust-tools
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo deny check licenses bans sources

doc:
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps

check: lint test doc

demo: tools
	scripts/demo.sh

# Runs the handler under cargo lambda watch and invokes it with EVENT.
# Configure it through the environment, e.g.
#   ECR_GC_POLICY_FILE=examples/policy.json make invoke-local EVENT=events/schedule.json
invoke-local: tools
	@set -e; \
	cargo lambda watch --invoke-port $(PORT) --timeout 120 --quiet & watch=$$!; \
	trap "kill $$watch" EXIT; \
	for i in $$(seq 1 600); do (echo > /dev/tcp/127.0.0.1/$(PORT)) 2>/dev/null && break; sleep 0.2; done; \
	cargo lambda invoke --invoke-port $(PORT) --data-file $(EVENT)

# Every benchmark in BENCHMARKS.md: the planner; the release binary end to
# end against moto_server (API calls against the floor, wall, CPU, peak RSS);
# its cold start; and the arm64 Lambda binary's size.
bench: tools
	scripts/bench-planner.sh
	cargo build --release
	python3 scripts/bench-e2e.py
	python3 scripts/bench-cold-start.py
	cargo lambda build --release --arm64
	@ls -l target/lambda/ecr-gc/bootstrap

validate: tools
	cfn-lint template.yaml deploy/target-account-role.yaml
	sam validate --lint --region us-east-1

deploy: tools
	sam build --beta-features
	sam deploy --guided
