# OpenAPI contract test (tests/schema/): schemathesis — coverage, fuzzing and
# stateful phases, every check — against the memory and the Redis engine.
#   make schema-prereqs  a Python venv (tests/schema/.venv) with the pinned schemathesis (part of PREREQS)
#   make test-schema     tests/schema/run.sh (part of `make test`; needs redis-server, see mk/redis.mk)
SCHEMA_VENV := $(CURDIR)/tests/schema/.venv

PREREQS += schema-prereqs
EXTRA_TESTS += test-schema

schema-prereqs: $(SCHEMA_VENV)/.installed

# A venv of its own; a Debian python3 without ensurepip gets python3-venv from apt first.
$(SCHEMA_VENV)/.installed: tests/schema/requirements.txt
	python3 -m venv $(SCHEMA_VENV) 2>/dev/null || { rm -rf $(SCHEMA_VENV) && \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv && python3 -m venv $(SCHEMA_VENV); }
	$(SCHEMA_VENV)/bin/pip install -q --disable-pip-version-check -r $<
	$(SCHEMA_VENV)/bin/schemathesis --version
	touch $@

## test-schema: schemathesis against a fresh server, memory engine then Redis engine (builds the binary when missing)
test-schema: schema-prereqs redis-prereqs
	@test -x "$(SYNCKAIROS_BIN)" || $(CARGO) build -p synckairos --bin synckairos
	SCHEMATHESIS=$(SCHEMA_VENV)/bin/schemathesis SYNCKAIROS_BIN=$(SYNCKAIROS_BIN) bash tests/schema/run.sh
