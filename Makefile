# tern: the Makefile's targets are the habits. See README.md.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -buildid= -X github.com/tern-iot/tern/internal/version.Version=$(VERSION)
PLUGINS := $(patsubst %/,%,$(dir $(wildcard plugins/*/main.go)))
WASM    := $(foreach p,$(PLUGINS),$(p)/$(notdir $(p)).wasm)
CROSS   := linux/amd64 linux/arm64 linux/arm/7 linux/arm/6

.PHONY: all build plugins demo deps test test-load test-race test-386 test-fuzz fuzz test-qemu cross dist size-check bench bench-planner bench-agent bench-observability testbench lint check clean

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

# test: first the Debian packages the tests need (.ci/deps installs them
# when it may, as root or with passwordless sudo, else stops at once with
# the one command that does); lint; every test under the race detector
# (this includes the end-to-end tests through the embedded broker and a
# real Mosquitto, and the cross-built ternd under qemu-user in firmware/);
# then the store and state packages as a 32-bit (386) build.
test: deps lint test-race test-386 test-fuzz

deps:
	@.ci/deps

# test-load: `make test` while stress-ng's CPU hogs load every core (a
# laptop with a browser open, a CI runner shared with other jobs); the
# tests must not depend on a speed they cannot control. stress-ng is
# started here and stopped on every exit, failure or Ctrl-C included (and
# bounded at 3 h should make itself be killed). -count=1: a cached pass
# proves nothing about load.
test-load:
	@command -v stress-ng >/dev/null || { echo "test-load: stress-ng is not installed: sudo apt-get install -y stress-ng" >&2; exit 1; }
	@stress-ng --cpu $$(nproc) --timeout 3h --quiet & hog=$$!; \
	trap 'kill $$hog 2>/dev/null; wait $$hog 2>/dev/null' EXIT; trap 'exit 130' INT TERM; \
	echo "test-load: stress-ng --cpu $$(nproc) (pid $$hog) loads every core"; \
	start=$$(date +%s); GOFLAGS='$(GOFLAGS) -count=1' $(MAKE) --no-print-directory test; rc=$$?; \
	echo "test-load: make test exited $$rc after $$(( $$(date +%s) - start )) s under load"; exit $$rc

# -timeout bounds a hang, per package: under load (make test-load) the
# firmware, runtime and testbench packages each take over 10 minutes.
# -p 4: four packages' tests at once on two cores. Much of the suite waits
# (brokers, synced store writes, timers, qemu): with two at once the CPU
# was a third idle (128 % of 200 %) and make test took 19 min; with four,
# 169 % and 16 min.
TESTP ?= 4
test-race:
	$(GO) test -race -p $(TESTP) -timeout 30m ./...

# A kernel without 32-bit x86 support (no IA32 emulation) cannot run the
# 386 test binaries, and Go's 386 runtime crashes under qemu-i386; there
# the same packages run as a 32-bit ARM (armv7) build under
# qemu-arm-static (qemu-user-static, which .ci/deps installs), as the
# firmware's ARM builds do.
test-386:
	@tmp=$$(mktemp -d) && printf 'package main\nfunc main() {}\n' > $$tmp/m.go && \
	CGO_ENABLED=0 GOARCH=386 $(GO) build -o $$tmp/m $$tmp/m.go && \
	if $$tmp/m 2>/dev/null; then env="GOARCH=386"; exec=""; \
	else env="GOARCH=arm GOARM=7"; exec="-exec qemu-arm-static"; echo "test-386: this kernel does not run 386 binaries; testing the 32-bit build as armv7 under qemu-arm-static"; fi; \
	rm -rf $$tmp; \
	echo "CGO_ENABLED=0 $$env $(GO) test $$exec -timeout 10m ./runtime/store/... ./runtime/state/..."; \
	env CGO_ENABLED=0 $$env $(GO) test $$exec -timeout 10m ./runtime/store/... ./runtime/state/...

# test-fuzz: the module loader's structure-aware fuzzer for a short time
# (a module's bytes are the most hostile input ternd takes). `make fuzz`
# runs every fuzzer for FUZZTIME each.
FUZZTIME ?= 1m
test-fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzPrecheckStructured$$' -fuzztime 15s ./runtime/internal/wasmhost/

fuzz:
	@for f in $$(grep -rl --include='*_test.go' '^func Fuzz' . | grep -v third_party); do \
		dir=$$(dirname $$f); \
		for name in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$f | cut -d' ' -f2); do \
			echo "fuzz: $$dir $$name ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) ./$$dir/ || exit 1; \
		done; \
	done

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

# dist: release builds for the boards: static ternd for amd64, arm64, armv7
# and armv6 (tern for amd64 and arm64), reproducible (-trimpath, no build
# id, file times from the last commit); .deb packages built with dpkg-deb
# (amd64, arm64, and armhf with the armv6 binary: Raspberry Pi OS's armhf
# is ARMv6, see RATIONALE.md); install.sh and its files for boards without
# dpkg; SHA256SUMS; then the size budget.
DIST_ARCH  := amd64 arm64 armv7 armv6
DEB_ARCH   := amd64:amd64 arm64:arm64 armv6:armhf
# Debian version: a tag v1.2.3 gives 1.2.3; an untagged build 0~git<describe>.
DEB_VERSION = $(shell echo '$(VERSION)' | sed -E -e 's/^v//' -e '/^[0-9]+\.[0-9]/!s/^/0~git/')
export SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

dist:
	rm -rf dist && mkdir -p dist
	@for a in $(DIST_ARCH); do \
		case $$a in armv*) env="GOARCH=arm GOARM=$${a#armv}";; *) env="GOARCH=$$a";; esac; \
		echo "building dist/ternd-linux-$$a"; \
		env GOOS=linux CGO_ENABLED=0 $$env $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/ternd-linux-$$a ./cmd/ternd || exit 1; \
		case $$a in amd64|arm64) \
			env GOOS=linux CGO_ENABLED=0 $$env $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/tern-linux-$$a ./cmd/tern || exit 1;; \
		esac; \
	done
	@for d in $(DEB_ARCH); do firmware/mkdeb.sh dist/ternd-linux-$${d%%:*} $${d#*:} '$(DEB_VERSION)' dist || exit 1; done
	cp -r firmware/install.sh firmware/systemd firmware/deb firmware/ternd.yaml dist/
	cd dist && sha256sum ternd-linux-* tern-linux-* *.deb install.sh > SHA256SUMS
	@$(MAKE) --no-print-directory size-check
	@ls -l dist/

# size-check: each dist/ternd-linux-ARCH within firmware/size-budget.txt.
size-check:
	@grep -v '^#' firmware/size-budget.txt | while read arch budget; do \
		size=$$(stat -c %s dist/ternd-linux-$$arch) || exit 1; \
		if [ $$size -gt $$budget ]; then \
			echo "size-check: ternd-linux-$$arch is $$size bytes, over its budget of $$budget (firmware/size-budget.txt)"; exit 1; \
		fi; \
		echo "size-check: ternd-linux-$$arch $$size bytes, budget $$budget"; \
	done

bench: bench-planner bench-agent bench-observability
	$(GO) test -run '^$$' -bench . -benchmem ./...

# tern's planner against Mahler 4.1.5 (installed from npm by the script),
# interleaved problem by problem; ROUNDS=n rounds (5).
bench-planner:
	bench/planner/run.sh $(if $(ROUNDS),-rounds $(ROUNDS))

# ternd's memory, start time and idle cost, and the gpio_write benchmark:
# OLD (a git ref, default HEAD) against NEW (a ref, default the working
# tree), interleaved over ROUNDS (default 5); see bench/agent.sh.
bench-agent:
	OLD='$(OLD)' NEW='$(NEW)' ROUNDS='$(ROUNDS)' bench/agent.sh

# What ternd's metrics cost an idle device: off, the textfile, the
# scraped /metrics listener, side by side (bench/observability.sh).
bench-observability:
	ROUNDS='$(ROUNDS)' bench/observability.sh

# testbench: the standard scenario suite (docs/testbench.md), node-loss on
# a three-node NATS cluster among them, with its report; a JUnit copy lands
# in testbench-report.xml for CI; the kill test; 10,000 agents on the
# cluster; a dry-run of 1,000 agents (TestScaleDryRun); the slow-link
# release at full size. `make test`
# runs the testbench's own tests, a fast subset (a failing scenario, the
# parser, one relay board).
testbench:
	$(GO) run ./cmd/tern testbench run --junit testbench-report.xml testbench/scenarios/*.yaml
	TERN_KILLS=50 $(GO) test -count=1 -run 'TestKillRestart' -v -timeout 30m ./testbench/
	TERN_SCALE_AGENTS=10000 TERN_SCALE_BROKER=cluster $(GO) test -count=1 -run 'TestScale$$' -v -timeout 60m ./testbench/
	TERN_SCALE_DRYRUN=1000 $(GO) test -count=1 -run 'TestScaleDryRun$$' -v -timeout 20m ./testbench/
	TERN_SLOWLINK_BYTES=3400000 $(GO) test -count=1 -run 'TestReleaseOverSlowLink' -v -timeout 30m ./fleet/

lint:
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	GOOS=wasip1 GOARCH=wasm $(GO) vet ./sdk/... ./plugins/... ./bench/planner/modules/... ./testbench/modules/...

# check: lint, cross-build, and fail on an untidy module.
check: lint cross
	$(GO) mod tidy -diff

clean:
	rm -rf bin dist .cache $(WASM) testbench-report.xml
