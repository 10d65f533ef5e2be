# Container images and supply chain (see README "Container images").
#   make image         synckairos:<version> and synckairos-operator:<version>, each also tagged
#                      :<git revision>; stripped `dist` binaries; OCI labels from build args
#   make sbom          CycloneDX SBOMs from Cargo.lock, one per image: dist/sbom/<image>.cdx.json
#   make deny          cargo deny check licenses bans sources (policy: deny.toml); part of `make test`
# The image names and the workspace version below are what the chart and the operator's
# default server image must agree with (operator/tests/versions.rs).
SERVER_IMAGE := synckairos
OPERATOR_IMAGE := synckairos-operator
IMAGE_VERSION := $(shell sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
IMAGE_REVISION := $(or $(shell git rev-parse --short=12 HEAD 2>/dev/null),unknown)
# Where the source lives (the source label); override for a fork: make image IMAGE_SOURCE=https://...
IMAGE_SOURCE ?= $(or $(shell git remote get-url origin 2>/dev/null),unknown)
# Debian's podman with runc and cgroupfs (what works on hosts with hybrid cgroups, as in
# ../shared/tools/images.sh); `make image CONTAINER=docker` works the same.
CONTAINER ?= podman$(if $(wildcard /usr/sbin/runc), --runtime /usr/sbin/runc --cgroup-manager=cgroupfs)
IMAGE_BUILD_FLAGS ?= --network host
SBOM_DIR := dist/sbom
# Pinned tool versions: `cargo install` runs only when the binary is missing.
CARGO_DENY_VERSION := 0.20.2
CARGO_CYCLONEDX_VERSION := 0.5.9

PREREQS += deny-prereqs
EXTRA_TESTS += deny

.PHONY: image sbom sbom-check deny deny-prereqs sbom-prereqs

## image: build synckairos and synckairos-operator images (podman; CONTAINER=docker), see README
image:
	@set -e; for spec in "$(SERVER_IMAGE) Dockerfile" "$(OPERATOR_IMAGE) operator/Dockerfile"; do \
	  set -- $$spec; t0=$$(date +%s); \
	  $(CONTAINER) build $(IMAGE_BUILD_FLAGS) -f $$2 \
	    --build-arg VERSION=$(IMAGE_VERSION) --build-arg REVISION=$(IMAGE_REVISION) \
	    --build-arg SOURCE=$(IMAGE_SOURCE) \
	    -t $$1:$(IMAGE_VERSION) -t $$1:$(IMAGE_REVISION) . ; \
	  echo "built $$1:$(IMAGE_VERSION) ($$1:$(IMAGE_REVISION)) in $$(( $$(date +%s) - t0 )) s," \
	    "$$(( $$($(CONTAINER) image inspect $$1:$(IMAGE_VERSION) --format '{{.Size}}') / 1000000 )) MB"; \
	done

# One SBOM per image: the dependency graph of the binary the image ships, as Cargo.lock
# resolves it for linux/x86_64 (no dev or build-time dependencies), each crate with its
# license, crates.io purl and the lockfile's SHA-256. Timestamped with the commit's date,
# so the same commit gives the same file. Verify one with `make sbom-check`.
## sbom: CycloneDX SBOM per image from Cargo.lock into dist/sbom/
sbom: sbom-prereqs
	@mkdir -p $(SBOM_DIR)
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || date +%s) \
	  $(CARGO) cyclonedx --format json --spec-version 1.5 --describe binaries --no-build-deps \
	  --target x86_64-unknown-linux-gnu
	mv server/synckairos_bin.cdx.json $(SBOM_DIR)/$(SERVER_IMAGE).cdx.json
	mv operator/synckairos-operator_bin.cdx.json $(SBOM_DIR)/$(OPERATOR_IMAGE).cdx.json
	@rm -f */*_bin.cdx.json
	@ls -l $(SBOM_DIR)

## sbom-check: every crate in the SBOMs is a crates.io package of Cargo.lock with its checksum
sbom-check:
	python3 build-support/sbom_check.py Cargo.lock $(SBOM_DIR)/$(SERVER_IMAGE).cdx.json $(SBOM_DIR)/$(OPERATOR_IMAGE).cdx.json

sbom-prereqs:
	@command -v cargo-cyclonedx >/dev/null || $(CARGO) install --locked cargo-cyclonedx@$(CARGO_CYCLONEDX_VERSION)

## deny: license, ban and source policy (deny.toml) over Cargo.lock; part of `make test`
deny: deny-prereqs
	$(CARGO) deny --locked check licenses bans sources

deny-prereqs:
	@command -v cargo-deny >/dev/null || $(CARGO) install --locked cargo-deny@$(CARGO_DENY_VERSION)
