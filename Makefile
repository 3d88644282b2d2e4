# Syncline's one entry point. `make help` lists the targets.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# Pinned tool versions, installed into .bin by the targets that need them.
BUF_VERSION                  := v1.75.0
PROTOC_GEN_GO_VERSION        := v1.36.12
PROTOC_GEN_CONNECT_GO_VERSION := v1.21.1
# The vtprotobuf runtime in go.mod is the later commit grpc requires; its
# protohelpers and types/known, all the generated code uses, are v0.6.0's.
PROTOC_GEN_GO_VTPROTO_VERSION := v0.6.0
STATICCHECK_VERSION          := v0.8.2
HELM_VERSION                 := v4.3.2

BIN      := $(CURDIR)/.bin
PACKAGES := ./... ./tools/...
GOTEST_FLAGS ?= -race -count=1 -timeout 30m

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

.PHONY: build
build: ## Build the five services and the syncline CLI into bin/
	go build -o bin/ ./services/controlplane ./services/connector ./services/mapper ./services/dedup ./services/eventlog
	go build -o bin/ ./tools/syncline ./tools/loadgen

# The deployment checks (deploy/) are a Go module of their own, outside the
# workspace, so that the Kubernetes modules stay out of the services' builds.
DEPLOY_GO := cd deploy && GOWORK=off

.PHONY: test
test: postgres mariadb peers tryton chromium $(BIN)/helm ## Run the whole test suite (starts PostgreSQL and MariaDB, installs the test peers, Tryton, Chromium and helm if needed), then a bounded run of each fuzz test
	go test $(GOTEST_FLAGS) $(PACKAGES)
	$(DEPLOY_GO) go test $(GOTEST_FLAGS) ./...
	$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZTIME_TEST) FUZZMINIMIZETIME=0

# FUZZTIME is how long `make fuzz` runs each fuzz test; `make test` runs
# each for FUZZTIME_TEST, a bounded run beside their seed corpora.
FUZZTIME ?= 30s
FUZZTIME_TEST ?= 5s
# How long a fuzz run may spend shrinking an input. make test's short runs
# shrink nothing: shrinking a new input when the time runs out ends the run
# with "context deadline exceeded" (a failing input is still written whole).
FUZZMINIMIZETIME ?= 5s
# The fuzz tests of the inputs Syncline takes from outside: package and test.
FUZZ_TARGETS := ./pkg/resourcefile:FuzzParse ./pkg/mapping:FuzzCompile ./pkg/mapping:FuzzApplyJSON \
	./pkg/mapping:FuzzDecodeObject ./pkg/envelope:FuzzDecode ./pkg/envelope:FuzzUnmarshal ./pkg/envelope:FuzzCheckRecord \
	./services/connector/connector:FuzzIngestRequest ./pkg/entity:FuzzCheck

.PHONY: fuzz
fuzz: ## Fuzz the resource file loader, the mapping (compile, payloads), the envelope decoder (and its agreement with proto.Unmarshal), the ingest API and the canonical-record check, FUZZTIME each (default 30s); make test runs their seed corpora and FUZZTIME_TEST each
	@# A failing input is written to the package's testdata/fuzz and fails the run again, as
	@# the seed corpus runs first; a failure that wrote none (the fuzzing engine's own, such
	@# as a run cut short while it shrank an input) is tried once more.
	@for t in $(FUZZ_TARGETS); do \
	  echo "fuzzing $${t#*:} in $${t%%:*} for $(FUZZTIME)"; \
	  go test $${t%%:*} -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) || \
	  { echo "fuzzing $${t#*:} failed; once more, with any input it found"; \
	    go test $${t%%:*} -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME); } || exit 1; \
	done

# The seed of make chaos's random choices; 0 picks one, which the test logs.
CHAOS_SEED ?= 0

.PHONY: chaos
chaos: postgres ## Run the chaos test's long form: 25,000 events through two replicas of every service over a three-node NATS cluster, with five minutes of kill -9s and every NATS node restarted in turn (CHAOS_SEED=N reruns a logged seed)
	go test ./tools/chaos -run '^TestChaos$$' -count=1 -timeout 30m -v -chaos.long -chaos.seed=$(CHAOS_SEED)

.PHONY: postgres
postgres: ## Make sure a PostgreSQL server answers for the tests
	tools/scripts/ensure-postgres.sh

.PHONY: mariadb
mariadb: ## Make sure a MariaDB server answers for the tests, with their user (syncline_test)
	tools/scripts/ensure-mariadb.sh

# The servers the tests run against (json-server), pinned in tools/peers/package-lock.json.
# npm ci writes node_modules/.package-lock.json last, so it stands for a whole install.
PEERS := tools/peers/node_modules/.package-lock.json

.PHONY: peers
peers: $(PEERS) ## Install the servers the tests run against (json-server 0.17.4) into tools/peers, if missing or changed

$(PEERS): tools/peers/package.json tools/peers/package-lock.json
	tools/scripts/ensure-node.sh
	cd tools/peers && npm ci --no-audit --no-fund --loglevel=error
	touch $@

.PHONY: tryton
tryton: ## Make sure the Tryton 6.0 server and modules the tryton connector's tests run are installed
	@tools/scripts/ensure-tryton.sh

.PHONY: chromium
chromium: ## Make sure Chromium is installed for the browser tests (pkg/browsertest): Debian's, installed as root if missing
	@tools/scripts/ensure-chromium.sh

.PHONY: screenshots
screenshots: chromium ## Take the web console's screenshots (1280 and 390 px) in the console's browser tests and copy them to docs/screenshots, which the README links
	cd tools && go test ./allinone -run '^TestConsole.*InABrowser$$' -count=1
	cp tools/artifacts/screenshots/console-*.png docs/screenshots/

.PHONY: lint
lint: $(BIN)/staticcheck $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-connect-go $(BIN)/protoc-gen-go-vtproto chart ## gofmt, go vet, staticcheck, buf lint, generated-code drift, the Helm chart (make chart)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [[ -n $$unformatted ]]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	go vet $(PACKAGES)
	$(BIN)/staticcheck $(PACKAGES)
	$(DEPLOY_GO) go vet ./...
	$(DEPLOY_GO) $(BIN)/staticcheck ./...
	cd proto && $(BIN)/buf lint
	$(MAKE) --no-print-directory proto
	@if [[ -n $$(git status --porcelain pkg/api) ]]; then \
	  echo "generated code in pkg/api is out of date: run 'make proto' and commit the result"; git status --short pkg/api; exit 1; fi

# The example values files the chart is linted and rendered with.
CHART        := deploy/helm/syncline
CHART_VALUES := $(wildcard deploy/helm/values-*.yaml)

.PHONY: chart
chart: $(BIN)/helm ## helm lint and helm template of the chart with each deploy/helm/values-*.yaml, then its tests (deploy/: every manifest decoded strictly into the Kubernetes API types)
	@for f in $(CHART_VALUES); do \
	  echo "helm lint and template $(CHART) -f $$f"; \
	  $(BIN)/helm lint --strict --quiet $(CHART) -f $$f; \
	  $(BIN)/helm template syncline $(CHART) --namespace syncline -f $$f > /dev/null; \
	done
	$(DEPLOY_GO) go test -count=1 ./...

.PHONY: helm
helm: $(BIN)/helm ## Build the pinned helm (HELM_VERSION) into .bin

.PHONY: proto
proto: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-connect-go $(BIN)/protoc-gen-go-vtproto ## Regenerate Go code from proto/
	rm -rf pkg/api/syncline
	cd proto && PATH=$(BIN):$$PATH $(BIN)/buf generate

.PHONY: breaking
breaking: $(BIN)/buf ## Check proto/ for breaking changes against main
	cd proto && $(BIN)/buf breaking --against '../.git#branch=main,subdir=proto'

.PHONY: run
run: ## Run Syncline in one process (syncline dev)
	go run ./tools/syncline dev

.PHONY: demo-erp
demo-erp: ## Connect a webshop (json-server) to an ERP (Tryton 6.0) through Syncline and keep them running until Ctrl-C (the README's "A webshop and an ERP")
	tools/scripts/demo-erp.sh

.PHONY: bench
bench: postgres peers tryton ## Push change events through the whole chain and through a bare four-stream JetStream relay (the ratio and CPU per event), orders into Tryton and an ERP's API, poll a 100,000-row PostgreSQL table into the sql target, load 1,000,000 API log records, time failure alerts; report throughput, latency, memory, query times and alert latency
	go run ./tools/loadgen -backends sqlite,postgres -targets sql,rest,orders,polling
	go run ./tools/logbench
	go test ./tools/allinone -run '^$$' -bench AlertLatency -benchtime 20x

# The peer benchmark's folder, with Bento's pipeline (bento.yaml) and target table (table.sql).
PEER_BENCH ?= ../shared/peer-bench

.PHONY: peer-bench
peer-bench: postgres ## Run Bento (the peer benchmark in ../shared/peer-bench, or PEER_BENCH) on the load generator's orders, pre-loaded and live: events/s, CPU per event of Bento, nats-server and PostgreSQL, Bento's peak RSS; binaries from BENTO and NATS_SERVER (see tools/peerbench)
	BENTO="$(BENTO)" NATS_SERVER="$(NATS_SERVER)" go run ./tools/peerbench -peer-bench $(PEER_BENCH)

$(BIN)/buf:
	GOBIN=$(BIN) GOWORK=off go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(BIN)/protoc-gen-go:
	GOBIN=$(BIN) GOWORK=off go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(BIN)/protoc-gen-connect-go:
	GOBIN=$(BIN) GOWORK=off go install connectrpc.com/connect/cmd/protoc-gen-connect-go@$(PROTOC_GEN_CONNECT_GO_VERSION)
$(BIN)/protoc-gen-go-vtproto:
	GOBIN=$(BIN) GOWORK=off go install github.com/planetscale/vtprotobuf/cmd/protoc-gen-go-vtproto@$(PROTOC_GEN_GO_VTPROTO_VERSION)
$(BIN)/staticcheck:
	GOBIN=$(BIN) GOWORK=off go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
$(BIN)/helm:
	GOBIN=$(BIN) GOWORK=off go install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)
