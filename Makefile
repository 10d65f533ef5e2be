# SyncKairos — the two commands a newcomer needs are `make run` and `make test`.
# Feature areas add their own setup (PREREQS) and test targets (EXTRA_TESTS) in mk/*.mk.
SHELL := /bin/bash
CARGO ?= cargo
PORT ?= 3000
PREREQS :=
EXTRA_TESTS :=
EXTRA_LINTS :=
# Where cargo puts binaries (CI may set CARGO_TARGET_DIR); tests that start the server read SYNCKAIROS_BIN.
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
export SYNCKAIROS_BIN ?= $(TARGET_DIR)/debug/synckairos

-include mk/*.mk

.PHONY: help run test test-rust build bench fmt lint $(PREREQS) $(EXTRA_TESTS) $(EXTRA_LINTS)

## run: the service on http://localhost:$(PORT), memory engine, no external services
run:
	$(CARGO) run --release -p synckairos --bin synckairos -- serve --port $(PORT) --bind 127.0.0.1

## test: every test suite (Rust unit + black-box, plus the suites in mk/*.mk)
test: $(PREREQS)
	$(MAKE) test-rust
	@for t in $(EXTRA_TESTS); do echo "== make $$t"; $(MAKE) $$t || exit 1; done

test-rust:
	$(CARGO) build --workspace --all-targets
	$(CARGO) test --workspace --no-fail-fast

build:
	$(CARGO) build --release -p synckairos --bin synckairos

fmt:
	$(CARGO) fmt --all

## lint: rustfmt check, clippy -D warnings, plus the linters in mk/*.mk (eslint over sdk/)
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	@for t in $(EXTRA_LINTS); do echo "== make $$t"; $(MAKE) $$t || exit 1; done

## help: list the targets
help:
	@grep -hE '^## ' $(MAKEFILE_LIST) | sed 's/^## /  /'

.DEFAULT_GOAL := help
