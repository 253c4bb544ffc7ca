# ecr-gc. `make demo` and `make test` are the quickstart.
SHELL := /bin/bash
EVENT ?= events/manual.json
PORT ?= 9000

.PHONY: build test lint check doc demo invoke-local validate deploy tools rust-tools bench audit mutants

# Installs, with pip, the tools the tests and the demo need, if missing, at
# the versions constraints.txt pins; and Debian's chromium, in which the
# HTML report is tested.
PIP_INSTALL := pip install --constraint constraints.txt
tools:
	@command -v moto_server >/dev/null || $(PIP_INSTALL) 'moto[server]'
	@command -v cargo-lambda >/dev/null || $(PIP_INSTALL) cargo-lambda
	@command -v sam >/dev/null || $(PIP_INSTALL) aws-sam-cli
	@command -v cfn-lint >/dev/null || $(PIP_INSTALL) cfn-lint
	@if command -v pyenv >/dev/null; then pyenv rehash; fi
	@command -v chromium >/dev/null || scripts/install-chromium.sh

# cargo-deny, for `make lint`; built from crates.io once (a few minutes).
rust-tools:
	@command -v cargo-deny >/dev/null || cargo install cargo-deny --version 0.20.2 --locked

build:
	cargo lambda build --release --arm64 --locked

test: tools
	cargo test --all-targets --locked

lint: rust-tools
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	cargo deny check licenses bans sources

doc:
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked

check: lint test doc

# Mutation testing of the core (TESTING.md has the figures and the survivors
# explained). Not in CI: it rebuilds the crate for every mutant, hours on 2
# cores. The planner, units, policy and pattern are killed by the unit
# tests; the engine by its unit tests and the integration tests that need no
# emulator (mocks, properties, index reads).
MUTANTS := CARGO_PROFILE_DEV_DEBUG=0 CARGO_PROFILE_TEST_DEBUG=0 cargo mutants
mutants:
	@command -v cargo-mutants >/dev/null || cargo install cargo-mutants --version 27.1.0 --locked
	mkdir -p mutants.out
	$(MUTANTS) -f src/plan/mod.rs -f src/plan/rules.rs -f src/plan/units.rs -f src/policy/mod.rs -f src/policy/rule.rs -f src/policy/rule_set.rs -f src/policy/rank.rs -f src/policy/version.rs -f src/policy/overrides.rs -f src/policy/pattern.rs -o mutants.out/core -- --lib
	$(MUTANTS) -f src/run/engine.rs -o mutants.out/engine -- --lib --test it -- engine:: mocks:: properties:: failure_paths::index_reads failure_paths::engine_rules

# Known vulnerabilities in the dependency tree (RustSec advisories). It
# fetches the advisory database, so it needs the network and is not part of
# CI; run it before a release and when a dependency changes.
audit: rust-tools
	cargo deny check advisories

demo: tools
	scripts/demo.sh

# Runs the handler under cargo lambda watch and invokes it with EVENT.
# Configure it through the environment, e.g.
#   ECR_GC_POLICY_FILE=examples/policy.json make invoke-local EVENT=events/schedule.json
invoke-local: tools
	@set -e; \
	cargo lambda watch --bin ecr-gc --invoke-port $(PORT) --timeout 120 --quiet & watch=$$!; \
	trap "kill $$watch" EXIT; \
	for i in $$(seq 1 600); do (echo > /dev/tcp/127.0.0.1/$(PORT)) 2>/dev/null && break; sleep 0.2; done; \
	cargo lambda invoke --invoke-port $(PORT) --data-file $(EVENT)

# Every benchmark in BENCHMARKS.md: the planner; the release binary end to
# end against moto_server (API calls against the floor, wall, CPU, peak RSS);
# an organisation against the fast fake ECR (tools/fake-ecr) at two rate
# limits, through the CLI and the Lambda function; its cold start; and the
# arm64 Lambda binary's size.
bench: tools
	scripts/bench-planner.sh
	cargo build --release --locked
	python3 scripts/bench-e2e.py
	cargo build --release --locked -p fake-ecr
	python3 scripts/bench-organisation.py
	python3 scripts/bench-cold-start.py
	cargo lambda build --release --arm64 --locked
	@ls -l target/lambda/ecr-gc/bootstrap

validate: tools
	cfn-lint template.yaml deploy/target-account-role.yaml
	sam validate --lint --region us-east-1

deploy: tools
	sam build --beta-features
	sam deploy --guided
