# The Lambda functions (included by the Makefile; see docs/LAMBDA.md).
#
#   build-<LogicalId>  SAM's `BuildMethod: makefile` targets: `sam build` runs
#                      them with ARTIFACTS_DIR set. By hand:
#                      make build-FailoverFunction ARTIFACTS_DIR=bin/failover
#   invoke             one function under the Runtime Interface Emulator, no
#                      Docker: make invoke FN=failover EVENT=events/failover-json.json
#                      It needs a running node group (make run).
#   test-deps-lambda   the emulator, into .tools/, for the tests.

GO    ?= go
TOOLS ?= $(CURDIR)/.tools

ARTIFACTS_DIR ?= $(CURDIR)/bin/lambda
LAMBDA_ENV    := CGO_ENABLED=0 GOOS=linux GOARCH=arm64
LAMBDA_FLAGS  := -tags lambda.norpc -trimpath -ldflags='-s -w'

.PHONY: build-FailoverFunction build-SubmitFunction build-PopulateFunction invoke test-deps-lambda

## build-FailoverFunction: the failover function's bootstrap for Lambda
## (linux/arm64) into ARTIFACTS_DIR, as `sam build` runs it.
build-FailoverFunction:
	$(LAMBDA_ENV) $(GO) build $(LAMBDA_FLAGS) -o $(ARTIFACTS_DIR)/bootstrap ./functions/failover

## build-SubmitFunction: the submit function's bootstrap, likewise.
build-SubmitFunction:
	$(LAMBDA_ENV) $(GO) build $(LAMBDA_FLAGS) -o $(ARTIFACTS_DIR)/bootstrap ./functions/submit

## build-PopulateFunction: the populate function's bootstrap, likewise.
build-PopulateFunction:
	$(LAMBDA_ENV) $(GO) build $(LAMBDA_FLAGS) -o $(ARTIFACTS_DIR)/bootstrap ./functions/populate

## test-deps-lambda: the AWS Lambda Runtime Interface Emulator, built from the
## Go module proxy into .tools/ (the module has only pseudo-versions).
RIE         := $(TOOLS)/aws-lambda-rie
RIE_VERSION ?= v0.0.0-20261030222936-bef5c4ba774d

test-deps-lambda: $(RIE)

$(RIE):
	GOBIN=$(TOOLS) $(GO) install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$(RIE_VERSION)

## invoke: build FN's bootstrap for this machine and invoke it once with
## EVENT under the emulator, against MASTERKV_NODES (default: the `make run`
## node). Signed events are re-signed at the current time first. The
## defaults are the fixtures' credentials; override any MASTERKV_ variable.
LAMBDA_LOCAL := $(CURDIR)/.data/lambda
RIE_ADDR     ?= 127.0.0.1:9000
RIE_API_ADDR ?= 127.0.0.1:9001

invoke: export MASTERKV_NODES ?= http://$(or $(HTTP_ADDR),127.0.0.1:8080)
invoke: export MASTERKV_NODE_TOKEN ?= dev-node-token
invoke: export MASTERKV_WEBHOOK_TOKENS ?= fixture-webhook-token-0001
invoke: export MASTERKV_WEBHOOK_SECRETS ?= fixture-hmac-secret-0001
invoke: export AWS_LAMBDA_FUNCTION_TIMEOUT ?= 30
invoke: export AWS_LAMBDA_FUNCTION_NAME ?= masterkv-$(FN)
invoke: test-deps-lambda
	@case "$(FN)" in failover|submit|populate) ;; *) echo "usage: make invoke FN=failover|submit|populate EVENT=events/<file>.json" >&2; exit 2;; esac
	@test -f "$(EVENT)" || { echo "EVENT=$(EVENT): no such file; see events/" >&2; exit 2; }
	@mkdir -p $(LAMBDA_LOCAL)/$(FN)
	CGO_ENABLED=0 $(GO) build -tags lambda.norpc -o $(LAMBDA_LOCAL)/$(FN)/bootstrap ./functions/$(FN)
	@$(GO) run ./internal/webhook/resign $(EVENT) > $(LAMBDA_LOCAL)/event.json
	@$(RIE) --log-level warn --runtime-interface-emulator-address $(RIE_ADDR) --runtime-api-address $(RIE_API_ADDR) \
		$(LAMBDA_LOCAL)/$(FN)/bootstrap & rie=$$!; \
	trap 'kill $$rie 2>/dev/null; wait $$rie 2>/dev/null' EXIT; \
	for i in $$(seq 100); do curl -s -o /dev/null http://$(RIE_ADDR)/ && break; sleep 0.05; done; \
	curl -sS --data-binary @$(LAMBDA_LOCAL)/event.json http://$(RIE_ADDR)/2015-03-31/functions/function/invocations; echo
