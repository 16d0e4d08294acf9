# Two commands set up everything: `make pipeline` and `make test` (see README.md).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# A venv is stamped with the hash of the requirements it was installed from, not compared by file times: a fresh
# clone (newer files) or a clone whose .venv links to another clone's venv does not reinstall what is there. An
# install removes the other stamps: the venv no longer holds what they describe.
STAMP := $(VENV)/.installed-$(shell sha256sum requirements.lock 2>/dev/null | cut -c1-16)

# DVC runs stage commands through the shell: they must find the venv's python first.
export PATH := $(BIN):$(PATH)
export BENTOML_DO_NOT_TRACK := True
export DVC_NO_ANALYTICS := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help venv params params-check pipeline repro serve replay monitor ct ct-matrix ct-fetch ct-publish manifests manifests-check \
  promote rollback deploy-status register registry-login registry-sync images release-prs pr-report pr-comment policy-venv workflows-check site \
  docs-serve browser test lint typecheck bench lock clean
PORT ?= # default: the system's serving.port (adult 3000, hmda 3001)
# SYSTEM=<name> limits pipeline, site and serve to one system (a key of `systems` in params.yaml); empty: all.
SYSTEM ?=
SCENARIO ?= # make replay: a key of <system>.monitor.replay.scenarios (none, covariate, ...)
URL ?= # make replay: the service (default http://127.0.0.1:<serving.port>)
ROWS ?= # make replay: rows per window (default <system>.monitor.replay.rows)
SIMULATE ?= # make replay: 1 scores in process through the service's schema instead of over HTTP
ENV ?= # make promote / rollback: staging | prod
VERSION ?= # make promote (rollback: optional): a registered version, v1.0.3
BASE ?= # make pr-report: the revision to compare with (origin/main)
PR ?= # make pr-comment: the pull request's number
DRY_RUN ?= # 1: ct-publish, images, release-prs and pr-comment print what they would do
DRY := $(if $(filter 1 yes true,$(DRY_RUN)),--dry-run,)
TARGETS := $(if $(SYSTEM),report@$(SYSTEM),)
SITE_SYSTEMS := $(if $(SYSTEM),--systems $(SYSTEM),)

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# The venv is created when missing and refreshed when the pinned requirements change.
$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock 2>&1 \
	  | { grep -v "is ignored: it is neither a file nor a directory" || true; }
	@rm -f $(VENV)/.installed*
	@touch $@

venv: $(STAMP) ## create or refresh .venv from requirements.lock

params: $(STAMP) ## compose params.yaml from conf/ (Hydra)
	$(BIN)/python -m pipelines.compose

params-check: $(STAMP) ## fail when params.yaml is not what conf/ composes
	$(BIN)/python -m pipelines.compose --check

pipeline: params ## set up and run the DVC pipeline of every system (or SYSTEM=<name>), ending with the site
	@if [ -n "$${SYSTEM-}" ]; then $(BIN)/python -m pipelines.systems --check="$$SYSTEM" >/dev/null; fi
	$(BIN)/python -m pipelines.repro $${SYSTEM:+"report@$$SYSTEM"}
	$(BIN)/python -m pipelines.site $${SYSTEM:+--systems="$$SYSTEM"}
	@echo "site: $(CURDIR)/site/build/index.html (make docs-serve to preview)"

repro: $(STAMP) ## dvc repro without recomposing params.yaml (prints which stages ran and which were up to date)
	$(BIN)/python -m pipelines.repro

serve: $(STAMP) ## serve a system's champion and challenger (SYSTEM=<name>, default the first; PORT=<n>)
	$(BIN)/python -m services.serve $${SYSTEM:+--system="$$SYSTEM"} $${PORT:+--port="$$PORT"}

replay: $(STAMP) ## send a replay scenario through the running service (SYSTEM= SCENARIO= [URL= ROWS= SIMULATE=1])
	@[ -n "$${SYSTEM-}" ] && [ -n "$${SCENARIO-}" ] || { echo "usage: make replay SYSTEM=<name> SCENARIO=<name>" >&2; exit 2; }
	$(BIN)/python -m pipelines.systems --check="$$SYSTEM" >/dev/null
	$(BIN)/python -m pipelines.replay --system="$$SYSTEM" --scenario="$$SCENARIO" $${URL:+--url="$$URL"} $${ROWS:+--rows="$$ROWS"} $(if $(filter 1 yes true,$(SIMULATE)),--simulate,)

monitor: $(STAMP) ## collect the live logs, run the monitor stage and the system's documents (SYSTEM=<name>, default all)
	@if [ -n "$${SYSTEM-}" ]; then $(BIN)/python -m pipelines.systems --check="$$SYSTEM" >/dev/null; fi
	@for s in $${SYSTEM:-$$($(BIN)/python -m pipelines.systems)}; do \
	  $(BIN)/python -m pipelines.monitor --system $$s --collect || exit 1; \
	  $(BIN)/dvc repro report@$$s >/dev/null || exit 1; \
	  echo "monitor@$$s: $$(cat reports/$$s/monitor/decision.txt)"; \
	done

ct: $(STAMP) ## continuous training: monitor, and on retrain build a candidate on a branch (SYSTEM=<name>)
	@[ -n "$${SYSTEM-}" ] || { echo "usage: make ct SYSTEM=<name>" >&2; exit 2; }
	$(BIN)/python -m pipelines.systems --check="$$SYSTEM" >/dev/null
	$(BIN)/python -m pipelines.ct --system="$$SYSTEM"

ct-matrix: $(STAMP) ## print list=<JSON> of the systems (or SYSTEM=<name>) for a workflow's job matrix
	@$(BIN)/python -m pipelines.systems --matrix="$${SYSTEM-}"

ct-fetch: $(STAMP) ## copy a system's production logs from CT_SOURCE/<system>/ into logs/ (SYSTEM=<name>)
	@[ -n "$${SYSTEM-}" ] && [ -n "$${CT_SOURCE-}" ] || { echo "usage: make ct-fetch SYSTEM=<name> CT_SOURCE=<folder>" >&2; exit 2; }
	$(BIN)/python -m pipelines.systems --check="$$SYSTEM" >/dev/null
	$(BIN)/python -m pipelines.ct --system="$$SYSTEM" --fetch="$$CT_SOURCE"

ct-publish: $(STAMP) ## act on make ct's result with gh: a pull request (retrain) or an issue (block, rollback)
	@[ -n "$${SYSTEM-}" ] || { echo "usage: make ct-publish SYSTEM=<name> [DRY_RUN=1]" >&2; exit 2; }
	$(BIN)/python -m pipelines.systems --check="$$SYSTEM" >/dev/null
	$(BIN)/python -m pipelines.ct --system="$$SYSTEM" --publish $(DRY)

manifests: $(STAMP) ## render services/k8s (bases, overlays, Argo CD Applications) from conf/deploy
	$(BIN)/python -m pipelines.deploy manifests

manifests-check: $(STAMP) policy-venv ## manifests current, then every overlay: kustomize, schemas, checkov, consistency
	$(BIN)/python -m pipelines.deploy manifests --check
	$(BIN)/python -m pipelines.deploy validate

promote: $(STAMP) ## point an environment at a registered version (SYSTEM= ENV=staging|prod VERSION=v1.0.3 [BASE=origin/main])
	@[ -n "$${SYSTEM-}" ] && [ -n "$${ENV-}" ] && [ -n "$${VERSION-}" ] || { echo "usage: make promote SYSTEM=<name> ENV=staging|prod VERSION=<v> [BASE=<main line>]" >&2; exit 2; }
	$(BIN)/python -m pipelines.deploy promote --system="$$SYSTEM" --env="$$ENV" --version="$$VERSION" $${BASE:+--base="$$BASE"}

rollback: $(STAMP) ## point an environment back at the version it served before (SYSTEM= ENV= [VERSION=] [BASE=])
	@[ -n "$${SYSTEM-}" ] && [ -n "$${ENV-}" ] || { echo "usage: make rollback SYSTEM=<name> ENV=staging|prod [VERSION=<v>] [BASE=<main line>]" >&2; exit 2; }
	$(BIN)/python -m pipelines.deploy rollback --system="$$SYSTEM" --env="$$ENV" $${VERSION:+--version="$$VERSION"} $${BASE:+--base="$$BASE"}

deploy-status: $(STAMP) ## what every system serves in every environment (the desired state in git)
	@$(BIN)/python -m pipelines.deploy status

register: $(STAMP) ## CD: register (GTO) every system whose champion changed; PUSH=1 pushes them (after make images)
	$(BIN)/python -m pipelines.deploy register $(if $(filter 1 yes true,$(PUSH)),--push,)

registry-login: $(STAMP) ## CD: docker login to the image registries as GITHUB_ACTOR, the token (GH_TOKEN) on stdin
	@$(BIN)/python -m pipelines.deploy registry-login

registry-sync: $(STAMP) ## CD: the registry's stages (GTO tags) follow the merged desired state; PUSH=1 pushes them
	$(BIN)/python -m pipelines.deploy sync-registry $(if $(filter 1 yes true,$(PUSH)),--push,)

images: $(STAMP) ## CD: build and push the image of every newly registered version from its bento [DRY_RUN=1]
	$(BIN)/python -m pipelines.deploy images $(DRY)

release-prs: $(STAMP) ## CD: a pull request promoting each newly registered version to staging [DRY_RUN=1] [BASE=]
	$(BIN)/python -m pipelines.deploy release-prs $(DRY) $${BASE:+--base="$$BASE"}

pr-report: $(STAMP) ## Markdown report of what the change does to each system against BASE=<rev> (var/pr-report.md)
	@[ -n "$${BASE-}" ] || { echo "usage: make pr-report BASE=<rev>" >&2; exit 2; }
	$(BIN)/python -m pipelines.pr_report --base="$$BASE"

pr-comment: $(STAMP) ## post var/pr-report.md on pull request PR=<n> with gh [DRY_RUN=1]
	@[ -n "$${PR-}" ] || { echo "usage: make pr-comment PR=<number>" >&2; exit 2; }
	$(BIN)/python -m pipelines.pr_report --comment="$$PR" $(DRY)

# checkov pins packages this project also uses (at other versions): it gets a virtual environment of its own.
POLICY_VENV := .venv-policy
POLICY_STAMP := $(POLICY_VENV)/.installed-$(shell sha256sum requirements-policy.lock 2>/dev/null | cut -c1-16)
$(POLICY_STAMP):
	@test -x $(POLICY_VENV)/bin/python || $(PYTHON) -m venv $(POLICY_VENV)
	$(POLICY_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-policy.lock 2>&1 \
	  | { grep -v "is ignored: it is neither a file nor a directory" || true; }
	@rm -f $(POLICY_VENV)/.installed*
	@touch $@

policy-venv: $(POLICY_STAMP) ## install checkov (the manifests' policy scan) into .venv-policy

workflows-check: $(STAMP) ## zizmor (offline) on .github/workflows: no finding allowed
	$(BIN)/zizmor --offline --no-progress .github/workflows

site: $(STAMP) ## build the documentation site into site/build (runs what it needs)
	@if [ -n "$${SYSTEM-}" ]; then $(BIN)/python -m pipelines.systems --check="$$SYSTEM" >/dev/null; fi
	$(BIN)/dvc repro $$(for s in $${SYSTEM:-$$($(BIN)/python -m pipelines.systems)}; do echo "report@$$s"; done)
	$(BIN)/python -m pipelines.site $${SYSTEM:+--systems="$$SYSTEM"}

docs-serve: site ## preview the built site on http://127.0.0.1:8000
	$(BIN)/python -m http.server 8000 --bind 127.0.0.1 --directory site/build

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The site tests drive Debian's chromium; `make test` installs it when missing (apt-get, through sudo when not root).
CHROMIUM ?= /usr/bin/chromium
export CHROMIUM

browser: ## install Debian's chromium for the site tests when it is missing
	@tests/site/install_chromium.sh

test: lint browser policy-venv ## set up (venv, browser), lint and run the test suite
	$(BIN)/python -m pytest

bench: $(STAMP) ## run the benchmarks; writes benchmarks/results/
	$(BIN)/python -m benchmarks.run

lock: $(STAMP) ## rewrite requirements.lock from the current .venv
	{ echo '# Exact versions tested together; `make lock` regenerates this file from a working .venv.'; \
	  $(BIN)/python -m pip freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu$$/torch==\1/'; } > requirements.lock

clean: ## remove the venv and DVC-produced files (the DVC cache stays)
	rm -rf $(VENV) data/interim data/validated data/processed
