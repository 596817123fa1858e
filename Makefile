# Everything a fresh machine needs is bootstrapped from here: the virtualenv, the local
# control plane binaries (built from Go modules, cached outside the checkout by version).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DRUID_ACCESS_CACHE ?= $(HOME)/.cache/druid-access
PYTEST_ARGS ?=

.PHONY: help
help:
	@echo "make test          bootstrap everything, then lint, mypy and the whole test suite"
	@echo "make demo          the operator end to end on a local control plane (KEEP=1 keeps it running)"
	@echo "make crds          regenerate crds/ from the pydantic models"
	@echo "make lint          ruff, mypy --strict and the layering contracts (.importlinter)"
	@echo "make controlplane  build (or reuse) kube-apiserver and etcd in \$$DRUID_ACCESS_CACHE"
	@echo "make druid         resolve (or reuse) a real Druid Coordinator from Maven Central"
	@echo "make helm          build (or reuse) helm from the Go module proxy"
	@echo "make manifests     render deploy/ from the Helm chart"
	@echo "make image         build the operator's container image (needs Docker)"
	@echo "make testing-image build the image of the fake Coordinator and fake Pivot (needs Docker)"
	@echo "make kind-e2e      e2e suite against a kind cluster with the image and chart (needs Docker + kind)"

# Two distributions, both editable: the operator (druid-access-operator, `druid-access`) and its
# test servers and launchers (druid-access-testing in testing/, `druid-access-testing`; the
# druid_access.testing package), which the operator's wheel and image do not carry.
$(BIN)/.installed: pyproject.toml testing/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]' -e './testing[tls]'
	touch $@

.PHONY: venv
venv: $(BIN)/.installed

.PHONY: controlplane
controlplane:
	hack/build-controlplane.sh

# Every supported Druid version is built for the tests; DRUID_VERSION=x.y.z builds only that one.
DRUID_VERSIONS ?= 27.0.0 37.0.0
.PHONY: druid
druid:
	for v in $(or $(DRUID_VERSION),$(DRUID_VERSIONS)); do DRUID_VERSION=$$v hack/build-druid.sh; done

# slapd and the LDAP client tools from Debian's packages, for the LDAP tests.
.PHONY: ldap
ldap:
	hack/install-slapd.sh

HELM_VERSION ?= v3.19.0
HELM := $(DRUID_ACCESS_CACHE)/helm-$(HELM_VERSION)/bin/helm
CHART := helm/druid-access-operator
IMAGE ?= druid-access-operator:dev
TESTING_IMAGE ?= druid-access-testing:dev

.PHONY: helm
helm:
	HELM_VERSION=$(HELM_VERSION) hack/build-helm.sh

# deploy/ is rendered from the chart (one source); a test fails when they differ.
.PHONY: manifests
manifests: helm
	cp crds/*.yaml $(CHART)/crds/
	$(HELM) template druid-access-operator $(CHART) --namespace druid-access \
		| sed '/^# Source:/d' > deploy/druid-access-operator.yaml
	$(HELM) template druid-access-operator $(CHART) --namespace druid-access \
		--show-only templates/serviceaccount.yaml --show-only templates/rbac.yaml \
		| sed '/^# Source:/d' > deploy/rbac.yaml

.PHONY: image
image:
	docker build -t $(IMAGE) .

# The fake Coordinator and fake Pivot (druid-access-testing), the Dockerfile's `testing` target.
.PHONY: testing-image
testing-image:
	docker build --target testing -t $(TESTING_IMAGE) .

# Needs Docker and kind; not part of `make test` (no Docker engine on CI machines).
.PHONY: kind-e2e
kind-e2e: venv helm
	IMAGE=$(IMAGE) TESTING_IMAGE=$(TESTING_IMAGE) HELM=$(HELM) hack/kind-e2e.sh

.PHONY: crds
crds: venv
	$(BIN)/druid-access crds --out crds

.PHONY: lint
lint: venv
	$(BIN)/ruff check operator testing tests bench kind hack
	$(BIN)/ruff format --check operator testing tests bench kind hack
	$(BIN)/mypy
	$(BIN)/python hack/lint_imports.py --no-logo

.PHONY: test
test: venv controlplane druid ldap helm lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The demo runs the newest Druid only (DRUID=fake: none).
DEMO_DRUID_VERSION ?= $(lastword $(DRUID_VERSIONS))
.PHONY: demo
demo: venv controlplane
	$(if $(filter fake,$(DRUID)),,$(MAKE) --no-print-directory druid DRUID_VERSION=$(DEMO_DRUID_VERSION))
	$(BIN)/python -m druid_access.testing.demo $(if $(KEEP),--keep) --druid $(or $(DRUID),real)
