# cwl-indexer: the targets the README names. `make help` lists them.
SHELL := /bin/bash
CARGO ?= cargo
FIXTURES := $(filter-out fixtures/batch-limit.json,$(wildcard fixtures/*.json))
BIN := target/release/cwl-indexer

.PHONY: help build demo test lint unit fixtures check-fixtures clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

build: ## Build the CLI and the Lambda bootstrap (release)
	$(CARGO) build --release --locked

demo: build ## Replay every fixture (dry run) and summarise what would be indexed per index
	$(BIN) replay --dry-run --summary $(FIXTURES)

test: lint unit check-fixtures ## Everything CI runs: format, clippy, all tests, fixture reproducibility

lint: ## rustfmt and clippy, warnings as errors
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

unit: ## Unit, integration and property tests
	$(CARGO) test --locked

fixtures: ## Regenerate fixtures/ from ../shared/cloudtrail-samples
	python3 scripts/make-fixtures.py

check-fixtures: ## Regenerated fixtures equal the committed ones (skipped without the shared samples)
	@if [ -d ../shared/cloudtrail-samples ]; then \
	  python3 scripts/make-fixtures.py && git diff --exit-code --stat -- fixtures && echo "fixtures reproduce"; \
	else echo "../shared/cloudtrail-samples not present: fixture reproducibility not checked"; fi

clean: ## Remove build output
	$(CARGO) clean
