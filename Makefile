# ATP Offline: the two commands a fresh machine needs are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: all build deps demo test lint unit bench fmt generated clean static release

all: build

build:
	$(CARGO) build --workspace --bins

deps:
	scripts/install-deps.sh

## make demo: fixtures -> signed bundle -> verify -> local registry -> install -> rendered overlay
demo: deps build
	scripts/demo.sh

## make test: everything CI runs
test: deps lint static
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --no-fail-fast

## Static x86_64 Linux executables (glibc linked in: no loader, no shared libraries):
## their own target dir, so the normal build is never invalidated.
STATIC_TARGET := x86_64-unknown-linux-gnu
## getrandom_backend: randomness from the getrandom(2) call glibc links in, never
## /dev/urandom (a static binary cannot find the call by dlsym, and the site's
## chroot or minimal image may have no /dev); the DNS resolver needs it.
STATIC_RUSTFLAGS := -C target-feature=+crt-static --cfg getrandom_backend="linux_getrandom"
STATIC_CARGO = RUSTFLAGS='$(STATIC_RUSTFLAGS)' CARGO_TARGET_DIR=$(CURDIR)/target/static $(CARGO)

## make static: static test binaries (profile static-test: quick to build),
## for tests/tests/static_installer.rs
static:
	$(STATIC_CARGO) build --profile static-test -p atp-installer -p atp-bundler --target $(STATIC_TARGET)

## make release RELEASE_KEY=release.key: dist/ with the static binaries,
## SHA256SUMS and SHA256SUMS.sig (scripts/release.sh)
release:
	$(STATIC_CARGO) build --release -p atp-installer -p atp-bundler --target $(STATIC_TARGET)
	scripts/release.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## make generated: shell completions (docs/completions) and man pages (docs/man)
## from the CLI definitions; `make test` fails while the committed ones are stale.
generated:
	ATP_WRITE_GENERATED=1 $(CARGO) test -q -p atp-bundler -p atp-installer --bins command_line_conformance

## make bench: release build, side by side with skopeo; writes docs/PERFORMANCE.md
bench: deps
	$(CARGO) build --release --workspace --bins
	scripts/bench.sh

clean:
	$(CARGO) clean
