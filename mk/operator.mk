# Kubernetes operator (operator/, crds/): CRD generation and the schema validator its tests use.
#   make crds              regenerate crds/synckairos.io_synckairosclusters.yaml from operator/src/crd.rs
#   make operator-prereqs  Python venv (operator/.venv-k8s/) with kubernetes-validate (part of PREREQS)
#   make test-operator     the operator's Rust tests (they also run in `cargo test --workspace`)
# The operator's tests read KUBERNETES_VALIDATE (exported here) and fail under CI=true when it is missing.
OPERATOR_VENV := $(CURDIR)/operator/.venv-k8s
export KUBERNETES_VALIDATE ?= $(OPERATOR_VENV)/bin/kubernetes-validate

PREREQS += operator-prereqs

.PHONY: crds test-operator

operator-prereqs: $(OPERATOR_VENV)/.installed

# A venv of its own; a Debian python3 without ensurepip gets python3-venv from apt first.
$(OPERATOR_VENV)/.installed: operator/requirements.txt
	python3 -m venv $(OPERATOR_VENV) 2>/dev/null || { rm -rf $(OPERATOR_VENV) && \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv && python3 -m venv $(OPERATOR_VENV); }
	$(OPERATOR_VENV)/bin/pip install -q --disable-pip-version-check -r $<
	$(OPERATOR_VENV)/bin/kubernetes-validate --version
	touch $@

## crds: regenerate the CRD YAML in crds/ from the operator's Rust types (commit the result)
crds:
	mkdir -p crds
	$(CARGO) run -q -p synckairos-operator --bin crdgen -- --write crds/synckairos.io_synckairosclusters.yaml

## test-operator: the operator's tests (builders, schemas, mocked reconciles, Redis Cluster formation)
test-operator: operator-prereqs
	$(CARGO) test -p synckairos-operator
