# masterkv — the two commands that matter: `make run` and `make test`.
GO        ?= go
DEV_DATA  ?= $(CURDIR)/.data/dev
HTTP_ADDR ?= 127.0.0.1:8080

.PHONY: run cluster build test vet fmt-check

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

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## test: everything CI runs.
test: fmt-check vet
	$(GO) test -race -count=1 -timeout 30m ./...
