# commerce-mesh: one target per job. `make run` and `make test` set everything up.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-runtime.txt requirements-edge.txt package.json 2>/dev/null | md5sum | cut -c1-8)
# The Python client package (gen/python), reinstalled whenever gen/python changes.
CLIENT := $(VENV)/.client-$(shell find gen/python -type f -not -path '*/__pycache__/*' 2>/dev/null | LC_ALL=C sort | xargs cat 2>/dev/null | md5sum | cut -c1-8)

# gRPC fork handlers crash children forked by our launchers (grpc/grpc#43055).
export GRPC_ENABLE_FORK_SUPPORT ?= false

.PHONY: setup gen lint test run bench chaos envoy-config clean-data lock

$(STAMP): requirements.txt requirements-runtime.txt requirements-edge.txt package.json
	@echo "==> creating $(VENV) and installing pinned dependencies (first run takes a minute)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	@printf '%s\n' "$(CURDIR)" > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/commerce_mesh.pth"
	@if command -v npm >/dev/null; then echo "==> installing buf, redocly and the Node gRPC client (npm)"; npm install --silent --no-audit --no-fund >/dev/null; fi
	@rm -f $(VENV)/.installed-* $(VENV)/.client-*; touch $(STAMP)

$(CLIENT): $(STAMP)
	@echo "==> installing the Python client package (gen/python) into $(VENV)"
	@$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation --force-reinstall ./gen/python
	@rm -f $(VENV)/.client-*; touch $(CLIENT)

setup: $(STAMP) $(CLIENT)

gen: $(STAMP)  ## regenerate gen/ from proto/ (and reinstall the Python client package)
	$(PY) scripts/gen_protos.py
	@$(MAKE) --no-print-directory setup

lint: $(STAMP) $(CLIENT)  ## ruff, mypy --strict, buf build/lint/breaking (against main), Redocly on the OpenAPI
	$(VENV)/bin/ruff check services tests scripts bench
	$(VENV)/bin/mypy services bench tests
	$(PY) scripts/check_protos.py
	npx --no-install redocly lint --extends recommended gen/openapi/commerce.openapi.json

test: $(STAMP) $(CLIENT)  ## the whole suite: starts its own PostgreSQL, NATS and Envoy
	$(PY) -m pytest $(PYTEST_ARGS)

run: $(STAMP) $(CLIENT)  ## the whole mesh on this machine, with a demo tenant
	$(PY) -m services.devmesh run

BENCHMARKS := getproduct placeorder search tracing
bench: $(STAMP) $(CLIENT)  ## benchmarks (figures; exits 1 only when a consistency check fails); `make bench search` runs one
	$(PY) -m bench $(filter $(BENCHMARKS),$(MAKECMDGOALS))

ifeq ($(firstword $(MAKECMDGOALS)),bench)
$(BENCHMARKS):  # names given after `make bench`: arguments, not targets
	@:
endif

chaos: $(STAMP) $(CLIENT)  ## checkout under load while processes die and servers go away (CHAOS_ARGS=--short: CI's version)
	$(PY) -m bench chaos $(CHAOS_ARGS)

envoy-config: $(STAMP) $(CLIENT)  ## render envoy/envoy.yaml from the settings
	$(PY) -m services.edge.render --out envoy/envoy.yaml

lock: $(STAMP)  ## the container image's hashed lock files, from requirements-runtime.txt and requirements-edge.txt
	for f in runtime edge; do $(VENV)/bin/pip-compile --quiet --generate-hashes --no-header --allow-unsafe \
	  --strip-extras --no-emit-index-url --no-emit-find-links -o requirements-$$f.lock requirements-$$f.txt; done

clean-data:  ## forget the local PostgreSQL/NATS data of `make run`
	rm -rf .data
