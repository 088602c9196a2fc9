# outbox-relay: run `make help` for targets.
SHELL := /bin/bash
GO    ?= go
BIN   := bin/outbox-relay

# The local Postgres of a development machine; override as you like.
DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
export DATABASE_URL
# Tests create one database per test on this server. When unset and nothing
# answers on 127.0.0.1:5432, tests start Postgres with testcontainers-go
# (needs Docker) or fail saying what to set.
ifeq ($(origin TEST_DATABASE_URL), undefined)
  ifneq ($(shell (command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432) && echo up),)
    TEST_DATABASE_URL := postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
  endif
endif
export TEST_DATABASE_URL


# golangci-lint is pinned in its own module (tools/golangci-lint) so its
# dependencies stay out of ours; it is built into bin/ once, then reused.
GOLANGCI_LINT         := bin/golangci-lint
GOLANGCI_LINT_VERSION := v2.15.0

.PHONY: help build river-bench demo test test-short chaos bench lint vet fmt verify docker clean config-docs clean-testdb

help: ## list targets
	@grep -hE '^[a-z][a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/outbox-relay (static)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/outbox-relay

demo: build ## migrate the local database, start a local Paragon endpoint, load 100 sample leads, relay them, print status
	./$(BIN) demo

test: ## run every test with the race detector against real Postgres
	$(GO) test -race -count=1 -timeout 30m ./...

test-short: ## the tests without the long ones
	$(GO) test -race -count=1 -short ./...

chaos: ## the full fault-injection suite: kills, cuts, Paragon failures (see docs/RELIABILITY.md)
	CHAOS=full $(GO) test -count=1 -v -timeout 30m -run TestChaos ./internal/chaos 2>&1 | tee chaos.log | grep -E 'CHAOS RESULT|^(---|ok|FAIL|PASS)'; test $${PIPESTATUS[0]} -eq 0

river-bench: ## build bin/outbox-relay-river, the River side of `bench -scenario river` (its own module: bench/river)
	cd bench/river && CGO_ENABLED=0 $(GO) build -trimpath -o ../../bin/outbox-relay-river .

bench: build river-bench ## measure every performance target, one table (BENCH_FLAGS='-quick -scenario drain,latency -json'; docs/BENCHMARKS.md)
	./$(BIN) bench $(BENCH_FLAGS)

vet: ## go vet
	$(GO) vet ./...

config-docs: ## regenerate the README configuration table from internal/config's declarations
	$(GO) run ./internal/config/configdoc

fmt: ## gofmt the tree
	gofmt -w $$(git ls-files '*.go')

# sqlc (v1.31.1) is pinned in its own module, tools/sqlc (go.mod, go.sum,
# tools.go), and run with `go run -modfile=tools/sqlc/go.mod`, so its many
# dependencies never enter the relay's go.mod or binary. sql/sqlc.sh wraps it.
# Building sqlc needs cgo and a C compiler (pg_query_go): the first run takes
# a few minutes, later runs come from the build cache.
.PHONY: generate
generate: ## regenerate internal/dbsqlc from sql/queries with sqlc (see sql/README.md)
	GO=$(GO) sql/sqlc.sh generate

lint: vet $(GOLANGCI_LINT) ## gofmt check, go vet, golangci-lint (.golangci.yml), sqlc diff and sqlc vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1)
	./$(GOLANGCI_LINT) run --allow-parallel-runners ./...
	@# bench/river is its own module (replace ../..): vet it and lint it too,
	@# so a new dependency of ours that its go.sum lacks is caught here.
	cd bench/river && $(GO) vet ./... && ../../$(GOLANGCI_LINT) run --allow-parallel-runners --config ../../.golangci.yml ./...
	GO=$(GO) sql/sqlc.sh diff
	GO=$(GO) sql/sqlc.sh vet

# Built only when missing or when the pinned version changes (compiling it
# takes minutes on two cores). `make clean` removes it.
$(GOLANGCI_LINT): tools/golangci-lint/go.mod tools/golangci-lint/go.sum
	@echo "building golangci-lint $(GOLANGCI_LINT_VERSION) into $@ (once; takes a few minutes)"
	cd tools/golangci-lint && $(GO) build -o ../../$@ github.com/golangci/golangci-lint/v2/cmd/golangci-lint
	@$(GO) version -m $@ | grep -q 'github.com/golangci/golangci-lint/v2[[:space:]]*$(GOLANGCI_LINT_VERSION)' || { echo "$@ is not golangci-lint $(GOLANGCI_LINT_VERSION)"; exit 1; }

verify: lint test ## what CI runs: lint, then every test

docker: ## build the container image
	docker build -t outbox-relay .

clean-testdb: ## drop the test template databases (outbox_relay_tmpl_*) and any left by killed test runs (outbox_relay_t_*) on TEST_DATABASE_URL; run only when no tests are running
	@test -n "$(TEST_DATABASE_URL)" || { echo "TEST_DATABASE_URL is not set"; exit 1; }
	echo "SELECT format('DROP DATABASE %I', datname) FROM pg_database WHERE datname LIKE 'outbox\_relay\_tmpl\_%' OR datname LIKE 'outbox\_relay\_t\_%' \gexec" | psql -X -q -v ON_ERROR_STOP=1 "$(TEST_DATABASE_URL)"

clean:
	rm -rf bin
