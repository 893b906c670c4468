# slurmtune: `make demo` runs the example pipeline on a local real Slurm
# cluster; `make test` runs every test (it installs and starts what it needs).
GO        ?= go
BIN       := bin/slurmtune
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(shell date -u +%Y-%m-%dT%H:%M:%SZ)

.PHONY: build release test test-unit demo cluster-up cluster-down cluster-status sshd-up sshd-down fuzz bench lint clean

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/slurmtune

# Portable builds for linux/amd64 and linux/arm64 (glibc 2.17), tarballs and
# SHA256SUMS in dist/ (scripts/release/build.sh says how).
release:
	VERSION=$(VERSION) GO=$(GO) scripts/release/build.sh

# Every test, against the real dev cluster, a real sshd and real SQLite files.
test:
	scripts/test.sh

# Pure-logic tests only (no cluster); integration tests skip.
test-unit:
	$(GO) test ./...

demo: build cluster-up
	scripts/demo.sh

cluster-up:
	scripts/dev-cluster.sh up

cluster-down:
	scripts/dev-cluster.sh down

cluster-status:
	scripts/dev-cluster.sh status

sshd-up:
	scripts/dev-sshd.sh up

sshd-down:
	scripts/dev-sshd.sh down

# Longer fuzzing by hand: FUZZTIME=10m make fuzz
FUZZTIME ?= 1m
fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

bench:
	scripts/bench/all.sh

# golangci-lint at a pinned version, installed from the Go module proxy into
# bin/tools/ the first time (`go install` with its own module graph: nothing
# is added to go.mod). The directory names the version, so a pin change
# installs the new one and an installed one is never downloaded again.
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := bin/tools/golangci-lint-$(GOLANGCI_LINT_VERSION)/golangci-lint

$(GOLANGCI_LINT):
	GOBIN=$(abspath $(@D)) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

# gofmt, go vet, then golangci-lint with .golangci.yml (the import rules,
# errcheck, staticcheck, govet, ineffassign, unused).
lint: $(GOLANGCI_LINT)
	@unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then echo "lint: gofmt would change: $$unformatted" >&2; exit 1; fi
	$(GO) vet ./...
	$(GOLANGCI_LINT) run ./...

clean:
	rm -rf bin dist
