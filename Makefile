# masterkv — the two commands that matter: `make run` and `make test`.
GO        ?= go
DEV_DATA  ?= $(CURDIR)/.data/dev
HTTP_ADDR ?= 127.0.0.1:8080

TOOLS     := $(CURDIR)/.tools
CONSUL    := $(TOOLS)/consul
STATICCHECK := $(TOOLS)/staticcheck
ZK_JAR    := /usr/share/java/zookeeper.jar
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help run cluster build test test-deps test-deps-tools test-model vet fmt-check staticcheck

## help: this list of targets, from the `## target:` comments.
help:
	@awk '/^## [A-Za-z0-9_-]+:/ { sub(/^## /, ""); t = $$0; sub(/:.*/, "", t); d = $$0; sub(/^[^:]*: */, "", d); printf "  %-22s %s\n", t, d; more = 1; next } \
	     /^## / && more { sub(/^## */, ""); printf "  %-22s %s\n", "", $$0; next } { more = 0 }' $(MAKEFILE_LIST)

## run: a single-node dev group on 127.0.0.1:8080, internal store only.
run:
	@mkdir -p $(DEV_DATA)
	MASTERKV_DEV=true MASTERKV_DATA_DIR=$(DEV_DATA) \
	MASTERKV_HTTP_ADDR=$${MASTERKV_HTTP_ADDR:-$(HTTP_ADDR)} \
	MASTERKV_RAFT_ADDR=$${MASTERKV_RAFT_ADDR:-127.0.0.1:7000} \
	$(GO) run ./raftnode

## cluster: a 3-node group on loopback ports 8081-8083 (raft 7001-7003).
cluster: build
	./scripts/cluster.sh

## build: the node daemon into bin/.
build:
	$(GO) build -o bin/raftnode ./raftnode

## vet: go vet over every package.
vet:
	$(GO) vet ./...

## staticcheck: the pinned linter (tools/staticcheck), built into .tools/.
staticcheck: $(STATICCHECK)
	$(STATICCHECK) ./...

$(STATICCHECK): tools/staticcheck/go.mod tools/staticcheck/go.sum
	cd tools/staticcheck && $(GO) build -o $(STATICCHECK) honnef.co/go/tools/cmd/staticcheck
	@touch $(STATICCHECK)

## fmt-check: fail when a Go file is not gofmt-formatted.
fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## test-deps: the real servers the integration tests run, cached after the
## first time: Consul v1.15.4 (MPL-2.0) built from the Go module proxy into
## .tools/, and ZooKeeper from Debian's package.
test-deps: $(CONSUL) $(ZK_JAR) test-deps-lambda test-deps-tools

## test-deps-tools: the tools tests run as operators do: openssl for the
## documented webhook signer, curl and jq for orchestrator-client.
TEST_TOOLS := openssl curl jq
test-deps-tools:
	@missing=$$(for t in $(TEST_TOOLS); do command -v $$t >/dev/null || echo $$t; done); \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; fi

$(CONSUL): tools/consul/go.mod tools/consul/go.sum
	@echo "building consul v1.15.4 into $(CONSUL) (a few minutes, once)"
	cd tools/consul && $(GO) build -o $(CONSUL) github.com/hashicorp/consul
	@touch $(CONSUL)

$(ZK_JAR):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq zookeeper

## test: everything CI runs: formatting, vet, staticcheck and every test.
## Integration tests fail (not skip) under CI=true when a server is missing.
test: test-deps fmt-check vet staticcheck
	MASTERKV_CONSUL_BIN=$(CONSUL) $(GO) test -race -count=1 -timeout 40m ./...

## test-model: a longer search of the store model (internal/storemodel):
## MODEL_CHECKS random runs per store instead of the short run in `make test`.
MODEL_CHECKS ?= 300
test-model: test-deps
	RAPID_CHECKS=$(MODEL_CHECKS) MASTERKV_CONSUL_BIN=$(CONSUL) $(GO) test -count=1 -timeout 60m -run TestNoRollback -v ./internal/storemodel/

# The Lambda functions' build targets (SAM's `BuildMethod: makefile`).
-include lambda.mk
