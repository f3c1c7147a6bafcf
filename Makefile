# xfer build, test, demo and benchmark entry points.
#
#   make build             bin/xfer (adds the rdma tag when UCX is installed)
#   make install           bin/xfer, man pages and shell completions under
#                          $(DESTDIR)$(PREFIX) (PREFIX=/usr/local)
#   make deps              install the Debian packages tests/bench need
#   make test              deps, then build + lint + go test ./...
#   make lint              gofmt, goimports, go vet and staticcheck (pinned; fetched by go run)
#   make demo              local -> serve A -> serve B -> local round trip
#   make bench             xfer vs rsync/cp/iperf3/b3sum on loopback + tmpfs; transports,
#                          CAS and daemon, cluster agents (BENCH_RUNS, BENCH_RECORD=1)
#   make fuzz              every Fuzz target for FUZZTIME each
#   make generate          go generate ./...
#   make release-snapshot  goreleaser release --snapshot --clean
#   make clean

SHELL := /bin/bash
.DEFAULT_GOAL := build

GO       ?= go
PKG      := github.com/xfer-io/xfer
BIN      := bin/xfer
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo none)
DATE     ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)

# The rdma transport needs UCX headers and libraries (cgo). Recursively
# expanded (=, not :=): pkg-config runs when a recipe uses the tags, so a
# `make test` that has just installed UCX with `make deps` builds with rdma.
HAVE_UCX = $(shell pkg-config --exists ucx 2>/dev/null && echo yes)
TAGS     ?= $(if $(HAVE_UCX),rdma)

# -checklinkname=0: giouring reaches into the runtime with go:linkname, which
# the linker refuses by default since Go 1.23. All -X go into the same string.
LDFLAGS  := -checklinkname=0 -X $(PKG)/cmd.version=$(VERSION) -X $(PKG)/cmd.commit=$(COMMIT) -X $(PKG)/cmd.date=$(DATE)
GOFLAGS_BUILD = -ldflags "$(LDFLAGS)" -tags "$(TAGS)"

PREFIX  ?= /usr/local
DESTDIR ?=

# goreleaser from PATH, else where `go install` puts it.
GORELEASER ?= $(shell command -v goreleaser 2>/dev/null || echo $$($(GO) env GOPATH)/bin/goreleaser)

TEST_TIMEOUT ?= 40m
FUZZTIME     ?= 30s

# staticcheck and goimports, pinned, fetched through the module proxy by
# `go run` (go.mod stays as it is).
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOIMPORTS   ?= golang.org/x/tools/cmd/goimports@v0.52.0

.PHONY: build install deps test test-after-deps vet lint demo bench fuzz generate release-snapshot clean

build:
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN) .

# Paths as the Debian packages use them, under PREFIX (bash-completion
# reads $(PREFIX)/share/bash-completion/completions when the bash-completion
# package is installed; zsh reads site-functions).
install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions \
		$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/xfer
	install -m 0644 docs/man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 0644 completions/xfer.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/xfer
	install -m 0644 completions/_xfer $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_xfer
	install -m 0644 completions/xfer.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/xfer.fish

deps:
	bash scripts/deps.sh

vet:
	$(GO) vet $(GOFLAGS_BUILD) ./...

# lint: gofmt, goimports (imports in three groups: standard library, other
# modules, this module), go vet and staticcheck, each failing on any finding
# and on failing to run.
lint: vet
	@files="$$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*')"; \
	bad="$$(gofmt -l $$files)" || { echo "lint: gofmt failed"; exit 1; }; \
	if [ -n "$$bad" ]; then echo "gofmt would change (run gofmt -w):"; echo "$$bad"; exit 1; fi; \
	bad="$$($(GO) run $(GOIMPORTS) -local $(PKG) -l $$files)" || { echo "lint: goimports failed"; exit 1; }; \
	if [ -n "$$bad" ]; then echo "goimports would change (run go run $(GOIMPORTS) -local $(PKG) -w FILE):"; echo "$$bad"; exit 1; fi
	$(GO) run $(STATICCHECK) -tags "$(TAGS)" ./...

# deps runs first, on its own: the rest runs in a second make, which also
# makes the order hold under -j. The end-to-end tests use bin/xfer (XFER_BIN),
# so build comes before the tests.
test: deps
	$(MAKE) --no-print-directory test-after-deps

test-after-deps: build lint
	XFER_BIN=$(CURDIR)/$(BIN) $(GO) test $(GOFLAGS_BUILD) -count=1 -timeout $(TEST_TIMEOUT) ./...

demo: build
	XFER=$(CURDIR)/$(BIN) bash scripts/demo.sh

bench: build
	XFER=$(CURDIR)/$(BIN) bash scripts/bench.sh
	XFER=$(CURDIR)/$(BIN) bash scripts/bench-transports.sh
	XFER=$(CURDIR)/$(BIN) bash scripts/bench-cas.sh
	XFER=$(CURDIR)/$(BIN) bash scripts/bench-cluster.sh
	XFER=$(CURDIR)/$(BIN) BENCH_SCALE_SCENARIOS="delta scatter" bash scripts/bench-scale.sh

# Runs each Fuzz target found by `go test -list` for FUZZTIME (one at a time).
# XFER_BIN spares the e2e package's TestMain a build while listing.
fuzz: build
	XFER_BIN=$(CURDIR)/$(BIN) GO=$(GO) FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh $(GOFLAGS_BUILD)

generate:
	$(GO) generate ./...

release-snapshot:
	@[ -x "$(GORELEASER)" ] || { echo "goreleaser not found: go install github.com/goreleaser/goreleaser/v2@v2.16.0 (v2.17+ needs a newer Go)"; exit 1; }
	$(GORELEASER) check
	$(GORELEASER) release --snapshot --clean

clean:
	rm -rf bin dist
