# cwl-indexer: the targets the README names. `make help` lists them.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: help build demo stop test lint venv proxy-selftest integration fixtures check-fixtures clean fuzz fuzz-smoke fuzz-seed

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

build: ## Build the CLI and the Lambda bootstrap (release)
	$(CARGO) build --release --locked

demo: build ## Start a local OpenSearch (or use OPENSEARCH_ENDPOINT), index every fixture, read back counts and top eventNames/errorCodes
	scripts/demo.sh

stop: ## Stop the local OpenSearch node the demo or the tests started
	scripts/opensearch.sh stop

test: lint proxy-selftest integration check-fixtures ## Everything CI runs

lint: ## rustfmt and clippy, warnings as errors
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

venv: ## The git-ignored Python venv for the SigV4 verifier (botocore, pytest)
	bash scripts/venv.sh >/dev/null

proxy-selftest: venv ## The SigV4 verifying proxy's own tests
	.venv/bin/python -m pytest -q tests/test_sigv4_proxy.py

integration: venv ## All Rust tests (unit, property, CLI, and against a real OpenSearch node started for them)
	scripts/with-opensearch.sh $(CARGO) test --locked

fixtures: ## Regenerate fixtures/ from ../shared/cloudtrail-samples
	python3 scripts/make-fixtures.py

check-fixtures: ## Regenerated fixtures equal the committed ones (skipped without the shared samples)
	@if [ -d ../shared/cloudtrail-samples ]; then \
	  python3 scripts/make-fixtures.py && git diff --exit-code --stat -- fixtures && echo "fixtures reproduce"; \
	else echo "../shared/cloudtrail-samples not present: fixture reproducibility not checked"; fi

FUZZ_SECONDS ?= 1800
fuzz: ## Fuzz each target (envelope, transform) for FUZZ_SECONDS (1800) in turn; needs nightly (see fuzz/README.md)
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh all

fuzz-smoke: ## CI fuzz smoke test (stable): regressions, seeds and seed mutations through the oracles; FUZZ_SMOKE_SECONDS=45 adds libFuzzer runs
	scripts/fuzz.sh smoke

fuzz-seed: ## Rebuild the fuzz seed corpus (fuzz/corpus/) from fixtures/
	scripts/fuzz.sh seed

clean: ## Remove build output (and the local node's data under target/)
	$(CARGO) clean
