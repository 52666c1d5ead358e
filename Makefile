# Croupier build and test entry points. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
GO ?= go
TOOLS := $(CURDIR)/.tools/bin
export PATH := $(TOOLS):$(PATH)

BUF_VERSION := v1.61.0
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
GRPC_GATEWAY_VERSION := v2.31.0
STATICCHECK_VERSION := v0.8.2
# protoc-gen-connect-go comes with the connectrpc.com/connect module in go.mod;
# protoc-gen-es is pinned in web/watch/package-lock.json.
CONNECT_GO_VERSION := v1.21.1
# vtprotobuf's codec (buf.gen.vtproto.yaml): the generator of the runtime
# version go.mod holds (read only when the generator is installed).
VTPROTO_VERSION = $(shell $(GO) list -m -f '{{.Version}}' github.com/planetscale/vtprotobuf)

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null)
LDFLAGS := -X github.com/croupier/croupier/internal/buildinfo.Version=$(VERSION) -X github.com/croupier/croupier/internal/buildinfo.Commit=$(COMMIT)

PG_DIR := $(CURDIR)/.tmp/postgres
# Count-based: a time-based -fuzztime can end a run with a spurious
# "context deadline exceeded" when the deadline hits during minimisation.
FUZZTIME ?= 100000x

.PHONY: all build dev test unit chat-order lint vet staticcheck buflint generate check-generated tools fuzz bench bench-cluster bench-scale postgres-start postgres-stop clean watch-build watch-check watch-test

all: build

# build produces bin/croupier and bin/gsegame (the demo GSE game server that
# `croupier dev` runs as its demo fleet).
build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/croupier ./cmd/croupier
	$(GO) build -o bin/gsegame ./examples/gsegame

# dev builds the binary and runs everything in one process on embedded SQLite.
dev: build
	./bin/croupier dev

tools: $(TOOLS)/buf $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc $(TOOLS)/protoc-gen-grpc-gateway $(TOOLS)/protoc-gen-openapiv2 $(TOOLS)/protoc-gen-connect-go $(TOOLS)/protoc-gen-go-vtproto web/watch/node_modules/.bin/protoc-gen-es $(TOOLS)/staticcheck

$(TOOLS)/buf:
	GOBIN=$(TOOLS) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(TOOLS)/protoc-gen-go:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(TOOLS)/protoc-gen-go-grpc:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
$(TOOLS)/protoc-gen-grpc-gateway:
	GOBIN=$(TOOLS) $(GO) install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$(GRPC_GATEWAY_VERSION)
$(TOOLS)/protoc-gen-openapiv2:
	GOBIN=$(TOOLS) $(GO) install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@$(GRPC_GATEWAY_VERSION)
$(TOOLS)/protoc-gen-connect-go:
	GOBIN=$(TOOLS) $(GO) install connectrpc.com/connect/cmd/protoc-gen-connect-go@$(CONNECT_GO_VERSION)
web/watch/node_modules/.bin/protoc-gen-es: web/watch/package-lock.json
	cd web/watch && npm ci --no-audit --no-fund
	touch $@
# Again when go.mod changes: the generator must be the runtime's version.
$(TOOLS)/protoc-gen-go-vtproto: go.mod
	GOBIN=$(TOOLS) $(GO) install github.com/planetscale/vtprotobuf/cmd/protoc-gen-go-vtproto@$(VTPROTO_VERSION)
	touch $@
$(TOOLS)/staticcheck:
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

generate: tools
	buf lint
	buf generate
	buf generate --template buf.gen.vtproto.yaml

# check-generated fails when the committed generated code differs from what
# the protos produce.
check-generated: generate
	@if [ -n "$$(git status --porcelain -- api proto web/watch/src/gen)" ]; then \
		echo "generated code is stale: run 'make generate' and commit the result"; \
		git status --porcelain -- api proto web/watch/src/gen; git diff --stat -- api; exit 1; \
	fi

# The web console (web/console, React + TypeScript + Vite). Its build
# output, internal/console/dist, is committed and embedded in the binary,
# so `go build` needs no Node.js; check-console rebuilds it from the
# committed package-lock.json and fails when it differs, like
# check-generated (docs/console.md says why).
.PHONY: console check-console console-unit console-test console-screenshots
CONSOLE := web/console
CONSOLE_ARTIFACTS ?= $(CURDIR)/.tmp/console-artifacts

$(CONSOLE)/node_modules/.installed: $(CONSOLE)/package.json $(CONSOLE)/package-lock.json
	cd $(CONSOLE) && npm ci --no-audit --no-fund
	@touch $@

# console regenerates the API types from the OpenAPI document and builds.
console: $(CONSOLE)/node_modules/.installed
	cd $(CONSOLE) && npm run --silent gen && npm run --silent build

check-console: console
	@if [ -n "$$(git status --porcelain -- $(CONSOLE) internal/console)" ]; then \
		echo "the console build is stale: run 'make console' and commit the result"; \
		git status --porcelain -- $(CONSOLE) internal/console; exit 1; \
	fi

# console-unit runs the vitest unit tests (schema → form mapping, grants).
console-unit: $(CONSOLE)/node_modules/.installed
	cd $(CONSOLE) && npx vitest run

# console-test drives the console in Debian's chromium (playwright-core)
# against a real `croupier dev` on free ports; screenshots go to
# $(CONSOLE_ARTIFACTS).
console-test: build $(CONSOLE)/node_modules/.installed
	cd $(CONSOLE) && CROUPIER_BIN=$(CURDIR)/bin/croupier CONSOLE_ARTIFACTS=$(CONSOLE_ARTIFACTS) CONSOLE_DOCS_IMG=$(CONSOLE_DOCS_IMG) \
		timeout 600 node --test --test-concurrency=1 e2e/

# console-screenshots runs console-test and refreshes docs/img/console-*.png.
console-screenshots:
	$(MAKE) console-test CONSOLE_DOCS_IMG=$(CURDIR)/docs/img

buflint: tools
	buf lint

vet:
	$(GO) vet ./...

staticcheck: tools
	staticcheck ./...

lint: buflint vet staticcheck
	@unformatted=$$(gofmt -l $$(git ls-files '*.go'; git ls-files --others --exclude-standard '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi

postgres-start:
	@scripts/postgres.sh start $(PG_DIR) >/dev/null

postgres-stop:
	@scripts/postgres.sh stop $(PG_DIR) >/dev/null 2>&1 || true

# unit runs the Go test suite with the race detector against SQLite and a
# throwaway PostgreSQL started for the run.
unit: build
	@dsn=$$(scripts/postgres.sh start $(PG_DIR) | tail -n 1) || { echo "postgres failed to start"; exit 1; }; \
	trap 'scripts/postgres.sh stop $(PG_DIR) >/dev/null 2>&1' EXIT; \
	CROUPIER_TEST_POSTGRES_DSN="$$dsn" CROUPIER_REQUIRE_POSTGRES=1 CROUPIER_BIN=$(CURDIR)/bin/croupier \
		$(GO) test -race -count=1 -timeout 30m ./...

# chat-order runs TestChatOrder at the issue's size (200 members × 50 chat
# messages, 2,000,000 deliveries) without the race detector, under which it
# would take minutes; unit runs it smaller with -race.
chat-order:
	$(GO) test -count=1 -timeout 10m -run '^TestChatOrder$$' ./internal/rooms/roomsrpc/

# fuzz runs every fuzz target for a bounded time.
fuzz:
	@for spec in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		for f in $$(grep -h '^func Fuzz' $$spec/*_test.go | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
			echo "fuzz $$spec $$f ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5000x $$spec || exit 1; \
		done; \
	done

# test is the whole suite: generated-code freshness (protos, console, watch
# page), lint, unit and end-to-end tests, the console and the watch page in a
# browser, and a bounded fuzz run.
test: check-generated check-console lint unit chat-order console-unit console-test watch-test fuzz

# watch-build rebuilds the watch page (web/watch) into internal/watch/dist,
# which is committed so `go build` needs no node.
watch-build: web/watch/node_modules/.bin/protoc-gen-es
	@node -e 'if (+process.versions.node.split(".")[0] < 20) { console.error("the watch page needs Node 20 or newer (Vite 7); found " + process.version); process.exit(1) }'
	cd web/watch && npm run build

# watch-check fails when the committed build differs from a fresh one.
watch-check: watch-build
	@if [ -n "$$(git status --porcelain -- internal/watch/dist)" ]; then \
		echo "internal/watch/dist is stale: run 'make watch-build' and commit the result"; \
		git status --porcelain -- internal/watch/dist; exit 1; \
	fi

# watch-test: the page's unit tests (vitest) and the browser test: a real
# `croupier dev`, two users in Debian's chromium (docs/rooms.md). Artifacts
# (screenshots, results.json) go to web/watch/test-results.
watch-test: watch-check build
	cd web/watch && npx vitest run
	cd web/watch && CROUPIER_BIN=$(CURDIR)/bin/croupier timeout 360 node test/browser.mjs
	cd web/watch && CROUPIER_BIN=$(CURDIR)/bin/croupier timeout 240 node test/live.mjs

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 2s ./internal/tunnel/
	$(GO) test -run '^$$' -bench AppendEvents -benchtime 3s ./internal/store/
	$(GO) run ./bench/invoke -floor
	$(GO) run ./bench/jobs
	$(MAKE) bench-cluster
	$(GO) test -run '^$$' -bench BenchmarkHub ./internal/gateway/
	$(GO) run ./bench/gateway
	$(GO) run ./bench/scale -n 10,100,1000,5000
	$(GO) run ./bench/rooms
	$(GO) run ./bench/live

# bench-cluster: invoke throughput with 1, 2 and 3 server processes on a
# throwaway PostgreSQL (docs/cluster.md, "Numbers").
bench-cluster: build
	@dsn=$$(scripts/postgres.sh start $(PG_DIR) | tail -n 1) || { echo "postgres failed to start"; exit 1; }; \
	trap 'scripts/postgres.sh stop $(PG_DIR) >/dev/null 2>&1' EXIT; \
	$(GO) run ./bench/cluster -dsn "$$dsn" -bin bin/croupier

# bench-scale runs bench/scale alone at SCALE_N fleet sizes; with
# BASELINE=<git ref> it first builds that ref's server and measures it at
# every N in the same run, as the baseline.
SCALE_N ?= 10,100,1000,5000
bench-scale: build
	@if [ -n "$(BASELINE)" ]; then \
		rm -rf .tmp/baseline && mkdir -p .tmp/baseline && git archive $(BASELINE) | tar -x -C .tmp/baseline && \
		(cd .tmp/baseline && $(GO) build -o ../croupier-baseline ./cmd/croupier); fi
	$(GO) run ./bench/scale -n $(SCALE_N) $(if $(BASELINE),-baseline-bin .tmp/croupier-baseline)

clean:
	rm -rf bin .tmp
