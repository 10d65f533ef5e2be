# TypeScript SDK (sdk/), its demo page (built into server/assets/demo/) and their tests.
#   make sdk-deps    npm ci in sdk/ and Debian's chromium + chromium-driver when missing (part of PREREQS)
#   make test-sdk    typecheck, wire-type freshness, unit, demo freshness, integration and browser tests (part of `make test`)
#   make sdk-types   regenerate sdk/src/generated/openapi.ts from the server's OpenAPI document (commit the result)
#   make lint-sdk    eslint over sdk/ (part of `make lint`)
#   make demo        rebuild server/assets/demo/ from sdk/demo/ (commit the result: the binary embeds it);
#                    `make demo DEMO_SOURCEMAP=1` inlines a sourcemap for debugging in a browser (do not commit that)
SDK_DIR := sdk

PREREQS += sdk-deps
EXTRA_TESTS += test-sdk
EXTRA_LINTS += lint-sdk

.PHONY: sdk-deps sdk-chromium test-sdk test-sdk-unit test-sdk-integration test-sdk-browser demo demo-check \
        sdk-types sdk-types-check lint-sdk

# npm ci only when the lock changed; node_modules/.package-lock.json is npm's own marker.
$(SDK_DIR)/node_modules/.package-lock.json: $(SDK_DIR)/package.json $(SDK_DIR)/package-lock.json
	cd $(SDK_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

sdk-chromium:
	@if [ ! -x /usr/bin/chromium ] || ! command -v chromedriver >/dev/null; then \
	  echo "installing chromium + chromium-driver from apt"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq chromium chromium-driver; \
	fi

sdk-deps: $(SDK_DIR)/node_modules/.package-lock.json sdk-chromium

## test-sdk: every SDK suite; fails on the first red one
test-sdk: sdk-deps
	$(MAKE) sdk-types-check
	cd $(SDK_DIR) && npm run --silent typecheck
	$(MAKE) demo-check test-sdk-unit test-sdk-integration test-sdk-browser

test-sdk-unit: $(SDK_DIR)/node_modules/.package-lock.json
	cd $(SDK_DIR) && npm run --silent test:unit

# The integration and browser suites start $(SYNCKAIROS_BIN) themselves; build it when it is missing.
# The workspace build (not `-p synckairos`), so it reuses what `make test-rust` built instead
# of compiling every dependency again with other features.
SDK_NEED_BIN = @test -x "$(SYNCKAIROS_BIN)" || $(CARGO) build --workspace --all-targets

test-sdk-integration: $(SDK_DIR)/node_modules/.package-lock.json
	@node -e 'const [a, b] = process.versions.node.split(".").map(Number); if (a < 20 || (a === 20 && b < 10)) { console.error("the SDK integration tests need node >= 20.10 (WebSocket via --experimental-websocket); found " + process.version); process.exit(1); }'
	$(SDK_NEED_BIN)
	cd $(SDK_DIR) && SYNCKAIROS_BIN=$(SYNCKAIROS_BIN) npm run --silent test:integration

test-sdk-browser: sdk-deps
	$(SDK_NEED_BIN)
	mkdir -p .artifacts
	cd $(SDK_DIR) && SYNCKAIROS_BIN=$(SYNCKAIROS_BIN) ARTIFACTS_DIR=$(CURDIR)/.artifacts npm run --silent test:browser

## sdk-types: regenerate the SDK's wire types (sdk/src/generated/openapi.ts) from `synckairos openapi`
# Always rebuilds the binary first: the document comes from the server's code.
sdk-types: $(SDK_DIR)/node_modules/.package-lock.json
	$(CARGO) build --workspace --all-targets
	cd $(SDK_DIR) && SYNCKAIROS_BIN=$(SYNCKAIROS_BIN) node scripts/openapi-types.mjs

# Fails when the committed wire types are not what `make sdk-types` would produce from the binary now.
sdk-types-check: $(SDK_DIR)/node_modules/.package-lock.json
	$(SDK_NEED_BIN)
	cd $(SDK_DIR) && SYNCKAIROS_BIN=$(SYNCKAIROS_BIN) node scripts/openapi-types.mjs --check

## lint-sdk: eslint (typescript-eslint, type-aware) over sdk/
lint-sdk: $(SDK_DIR)/node_modules/.package-lock.json
	cd $(SDK_DIR) && npm run --silent lint

## demo: rebuild the demo page the server embeds (server/assets/demo/) from sdk/demo/
demo: $(SDK_DIR)/node_modules/.package-lock.json
	cd $(SDK_DIR) && node scripts/build.mjs --demo $(if $(DEMO_SOURCEMAP),--sourcemap) --out $(CURDIR)/server/assets/demo

# Fails when the committed server/assets/demo/ is not what `make demo` would produce now.
demo-check: $(SDK_DIR)/node_modules/.package-lock.json
	rm -rf $(SDK_DIR)/.build/demo-check
	cd $(SDK_DIR) && node scripts/build.mjs --demo --out $(CURDIR)/$(SDK_DIR)/.build/demo-check
	@diff -r $(SDK_DIR)/.build/demo-check server/assets/demo || { \
	  echo "server/assets/demo is stale: run 'make demo' and commit it"; exit 1; }
