# cwl-indexer: the targets the README names. `make help` lists them.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: test-matrix help build demo stop test lint venv proxy-selftest integration fixtures check-fixtures clean fuzz fuzz-smoke fuzz-seed \
	lambda-venv template-test sam-lint checkov sam-build sam-checks invoke bench bench-gzip bench-cluster-cost load

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

build: ## Build the CLI and the Lambda bootstrap (release)
	$(CARGO) build --release --locked

demo: build ## Start a local OpenSearch (or use OPENSEARCH_ENDPOINT), index every fixture, read back counts and top eventNames/errorCodes
	scripts/demo.sh

stop: ## Stop the local OpenSearch node the demo or the tests started
	scripts/opensearch.sh stop

test: lint proxy-selftest template-test sam-lint checkov integration sam-build check-fixtures ## Everything CI runs

lint: ## rustfmt and clippy, warnings as errors
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

venv: ## The git-ignored Python venv for the SigV4 verifier (botocore, pytest)
	bash scripts/venv.sh >/dev/null

proxy-selftest: venv ## The SigV4 verifying proxy's own tests
	.venv/bin/python -m pytest -q tests/test_sigv4_proxy.py

lambda-venv: ## The git-ignored venv with cargo-lambda and zig (.venv-lambda)
	bash scripts/tool-venv.sh lambda >/dev/null

integration: venv lambda-venv ## All Rust tests (unit, property, CLI, cargo-lambda local invoke; against a real OpenSearch node started for them)
	CWL_REQUIRE_CARGO_LAMBDA=1 scripts/with-opensearch.sh $(CARGO) test --locked

template-test: ## tests/template_security.py: the template's access policies, encryption, scoping (pytest)
	"$$(bash scripts/tool-venv.sh sam)/python" -m pytest -q tests/template_security.py

sam-lint: ## sam validate --lint and cfn-lint on template.yaml: zero errors (offline)
	scripts/sam-checks.sh lint

checkov: ## checkov on template.yaml (offline): zero failed checks, every skip justified inline
	scripts/sam-checks.sh checkov

sam-build: ## sam build through cargo-lambda, no Docker; checks .aws-sam/build/Indexer/bootstrap is arm64
	scripts/sam-checks.sh build

sam-checks: template-test sam-lint checkov sam-build ## Every template check (the four above)

invoke: ## Invoke the function with FIXTURE=fixtures/x.json under cargo-lambda's emulator (local node unless OPENSEARCH_ENDPOINT)
	scripts/invoke.sh "$(FIXTURE)"

test-matrix: venv ## The cluster suites against OpenSearch 1.3, 2.19, 3.6 and Elasticsearch OSS 7.10.2 (MATRIX=... to choose)
	scripts/test-matrix.sh

fixtures: ## Regenerate fixtures/ from ../shared/cloudtrail-samples and ../shared/log-samples
	python3 scripts/make-fixtures.py
	python3 scripts/make-logtype-fixtures.py

check-fixtures: ## Regenerated fixtures equal the committed ones (skipped without the shared samples)
	@if [ -d ../shared/cloudtrail-samples ] && [ -d ../shared/log-samples ]; then \
	  python3 scripts/make-fixtures.py && python3 scripts/make-logtype-fixtures.py && \
	  git diff --exit-code --stat -- fixtures && echo "fixtures reproduce"; \
	else echo "../shared/cloudtrail-samples or log-samples not present: fixture reproducibility not checked"; fi

FUZZ_SECONDS ?= 1800
fuzz: ## Fuzz each target (envelope, transform) for FUZZ_SECONDS (1800) in turn; needs nightly (see fuzz/README.md)
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh all

fuzz-smoke: ## CI fuzz smoke test (stable): regressions, seeds and seed mutations through the oracles; FUZZ_SMOKE_SECONDS=45 adds libFuzzer runs
	scripts/fuzz.sh smoke

fuzz-seed: ## Rebuild the fuzz seed corpus (fuzz/corpus/) from fixtures/
	scripts/fuzz.sh seed

load: venv ## Load test (not in make test): LOAD_INVOCATIONS (32) concurrent realistic batches into a node with a 2-slot write queue; every event once (BENCHMARKS.md)
	OPENSEARCH_SETTINGS="thread_pool.write.size=1 thread_pool.write.queue_size=2" scripts/with-opensearch.sh \
	  $(CARGO) test --locked --test load -- --ignored --nocapture

bench: ## Benchmarks: transform (criterion), peak memory, cold start, end to end, cluster cost; report in target/bench/REPORT.md (BENCH_QUICK=1: shorter; see BENCHMARKS.md)
	scripts/bench.sh

bench-gzip: ## The body gzip alone: each backend's time and bytes on the as-deployed bodies (benches/gzip.rs)
	scripts/bench.sh gzip

bench-cluster-cost: ## Cluster cost alone: store bytes per document and indexing time, ours against the console function's (CLUSTER_COST_PROJECTIONS=1: issue 15's projected documents too)
	scripts/bench.sh cluster-cost

clean: ## Remove build output (and the local node's data under target/)
	$(CARGO) clean
