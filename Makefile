# tern: the Makefile's targets are the habits. See README.md.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -buildid= -X github.com/tern-iot/tern/internal/version.Version=$(VERSION)
PLUGINS := $(patsubst %/,%,$(dir $(wildcard plugins/*/main.go)))
WASM    := $(foreach p,$(PLUGINS),$(p)/$(notdir $(p)).wasm)
CROSS   := linux/amd64 linux/arm64 linux/arm/7 linux/arm/6

.PHONY: all build plugins demo test test-race test-386 test-qemu cross bench bench-planner testbench lint check clean

all: build plugins

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ternd ./cmd/ternd
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/tern ./cmd/tern

plugins: $(WASM)

plugins/%.wasm: FORCE
	GOOS=wasip1 GOARCH=wasm CGO_ENABLED=0 $(GO) build -trimpath -buildmode=c-shared -o $@ ./$(dir $@)

FORCE:

demo: build plugins
	./demo/run.sh

# test: lint; every test under the race detector (this includes the
# end-to-end tests through the embedded broker and a real Mosquitto, and the
# cross-built ternd under qemu-user in firmware/); then the store and state
# packages as a 32-bit (386) build.
test: lint test-race test-386

test-race:
	$(GO) test -race -timeout 15m ./...

test-386:
	CGO_ENABLED=0 GOARCH=386 $(GO) test -timeout 10m ./runtime/store/... ./runtime/state/...

test-qemu:
	$(GO) test -run TestQemu -v -timeout 10m ./firmware/...

cross:
	@for t in $(CROSS); do \
		os=$${t%%/*}; rest=$${t#*/}; arch=$${rest%%/*}; arm=$${rest#*/}; \
		out=dist/ternd-$$os-$$arch; env="GOOS=$$os GOARCH=$$arch CGO_ENABLED=0"; \
		if [ "$$arch" = arm ]; then out=$$out"v$$arm"; env="$$env GOARM=$$arm"; fi; \
		echo "building $$out"; \
		env $$env $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$out ./cmd/ternd || exit 1; \
	done
	@ls -l dist/

bench: bench-planner
	$(GO) test -run '^$$' -bench . -benchmem ./...

# tern's planner against Mahler 4.1.5 (installed from npm by the script).
bench-planner:
	bench/planner/run.sh

# testbench: the standard scenario suite (docs/testbench.md), with its
# report; a JUnit copy lands in testbench-report.xml for CI. `make test`
# runs the testbench's own tests, a fast subset (a failing scenario, the
# parser, one relay board).
testbench:
	$(GO) run ./cmd/tern testbench run --junit testbench-report.xml testbench/scenarios/*.yaml
	TERN_KILLS=50 TERN_SCALE_AGENTS=1000 $(GO) test -count=1 -run 'TestKillRestart|TestScale' -v -timeout 30m ./testbench/

lint:
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	GOOS=wasip1 GOARCH=wasm $(GO) vet ./sdk/... ./plugins/... ./bench/planner/modules/... ./testbench/modules/...

# check: lint, cross-build, and fail on an untidy module.
check: lint cross
	$(GO) mod tidy -diff

clean:
	rm -rf bin dist .cache $(WASM) testbench-report.xml
