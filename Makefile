# ATP Offline: the two commands a fresh machine needs are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: all build deps demo test lint unit bench fmt generated clean

all: build

build:
	$(CARGO) build --workspace --bins

deps:
	scripts/install-deps.sh

## make demo: fixtures -> signed bundle -> verify -> local registry -> install -> rendered overlay
demo: deps build
	scripts/demo.sh

## make test: everything CI runs
test: deps lint
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --no-fail-fast

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## make generated: shell completions (docs/completions) and man pages (docs/man)
## from the CLI definitions; `make test` fails while the committed ones are stale.
generated:
	ATP_WRITE_GENERATED=1 $(CARGO) test -q -p atp-bundler -p atp-installer --bins completions_and_man_pages_are_current

## make bench: release build, side by side with skopeo; writes docs/PERFORMANCE.md
bench: deps
	$(CARGO) build --release --workspace --bins
	scripts/bench.sh

clean:
	$(CARGO) clean
