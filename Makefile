# spanflow — Kafka-to-trace-storage ingestion on Kubernetes.
# Run `make help` for the targets.

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMG ?= ghcr.io/spanflow/spanflow:$(VERSION)
CONTAINER_TOOL ?= docker

# Control-plane binaries (kube-apiserver, kube-controller-manager, etcd, kubectl) and tools (controller-gen, helm) are
# built from source by hack/build-tools.sh into bin/; nothing is downloaded prebuilt.
TOOLS_DIR := $(CURDIR)/bin/tools
CONTROLLER_GEN := $(TOOLS_DIR)/controller-gen
HELM := $(TOOLS_DIR)/helm
LDFLAGS := -X github.com/spanflow/spanflow/internal/version.Version=$(VERSION)

# Go packages under the race detector in `make test`.
GO_TEST_FLAGS ?= -race -count=1
# One build or test process at a time: the machines have 2 cores.
export GOFLAGS := -buildvcs=false

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: install-tools
install-tools: ## Build kube-apiserver, kube-controller-manager, etcd, kubectl, controller-gen, helm and Jaeger v2 from source into bin/ (idempotent).
	@hack/build-tools.sh

.PHONY: manifests
manifests: install-tools ## Generate the CRD and RBAC manifests from the API types and markers; copy the CRDs into the chart.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./api/...;./controllers/..." output:crd:artifacts:config=config/crd/bases
	mkdir -p charts/spanflow/files/crds
	cp config/crd/bases/*.yaml charts/spanflow/files/crds/
	cp config/rbac/role.yaml charts/spanflow/files/manager-role.yaml
	go run ./hack/valuestable

.PHONY: generate
generate: install-tools ## Generate the DeepCopy methods of the API types.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: verify-gen
verify-gen: install-tools ## Fail if generated files differ from what is committed.
	@hack/verify-gen.sh

.PHONY: fmt
fmt: ## Run gofmt on the code.
	gofmt -l -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: test
test: install-tools vet verify-gen helm-lint ## Run every test, under the race detector, against a real kube-apiserver and an in-process Kafka broker.
	KUBEBUILDER_ASSETS="$$(hack/build-tools.sh --print-assets)" go test $(GO_TEST_FLAGS) ./...

.PHONY: bench
bench: install-tools ## Run the benchmarks: decoders, the chain's own cost per message, the compressors' cost per span, end-to-end ingestion against kfake with a raw kafka-go baseline and Jaeger v2 beside it, a live topic of 96 partitions read by both at once, peak memory under a 2M-message backlog, 500 Ingesters in envtest, the autoscaler simulation against KEDA/HPA.
	go test -run='^$$' -bench=. -benchmem ./ingester/decode/
	go test -run='^$$' -bench=BenchmarkChain -benchtime=2000x -cpu=1 ./ingester/processor/
	go test -run='^$$' -bench=BenchmarkCompression ./ingester/store/
	go test -run='^$$' -bench=BenchmarkDecompress -benchmem ./ingester/fetchwire/
	go test -run='^$$' -bench=BenchmarkChainOverhead -benchtime=3x ./ingester/
	go test -run='^$$' -bench=BenchmarkIngestJaegerProto -benchtime=3x ./ingester/
	go test -run='^$$' -bench=BenchmarkIngestOTLPWriter -benchtime=1x ./ingester/
	go test -run='^$$' -bench=BenchmarkPeers -benchtime=3x -timeout=30m ./ingester/
	go test -run='^$$' -bench=BenchmarkLiveTopic -benchtime=3x -timeout=10m ./ingester/
	go test -run='^$$' -bench=BenchmarkBacklogMemory -benchtime=1x -timeout=30m ./ingester/
	KUBEBUILDER_ASSETS="$$(hack/build-tools.sh --print-assets)" go test -run='^$$' -bench='BenchmarkManyIngesters|BenchmarkAutoscalingSimulation' -benchtime=1x -timeout=30m ./controllers/...

##@ Build

.PHONY: build
build: ## Build the spanflow binary into bin/spanflow.
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/spanflow .

.PHONY: run
run: ## Run the operator against the cluster of the current kubeconfig.
	go run -ldflags "$(LDFLAGS)" . manager

.PHONY: demo
demo: ## Run the whole pipeline on this machine with embedded defaults.
	go run -ldflags "$(LDFLAGS)" . demo

.PHONY: docker-build
docker-build: ## Build the container image (needs a running container engine).
	$(CONTAINER_TOOL) build --build-arg VERSION=$(VERSION) -t $(IMG) .

.PHONY: helm-lint
helm-lint: install-tools ## Lint the Helm chart.
	$(HELM) lint --strict charts/spanflow
