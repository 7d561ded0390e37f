# Two commands on a fresh machine:  `make app`  and  `make test`.  (`make labs` opens the labs.)
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
# Linux laptop without a GPU and no local torch wheel: TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
HOST ?= 127.0.0.1
PORT ?= 7860
LABS_PORT ?= 8888
# extra JupyterLab flags, e.g. LABS_ARGS=--no-browser
LABS_ARGS ?=
# JupyterLab refuses to run as root without --allow-root (containers, cloud notebooks)
AS_ROOT := $(filter 0,$(shell id -u))

.PHONY: setup app test labs bench clean-venv

# torch first: on a machine without CUDA this is the CPU build, so that installing the
# project afterwards finds torch satisfied and never downloads a CUDA build.
$(BIN)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

setup: $(BIN)/.installed

app: setup
	$(BIN)/moss-lab app --host $(HOST) --port $(PORT)

test: setup
	bash .ci/browser-deps
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

labs: setup
	$(BIN)/jupyter lab --ServerApp.ip=$(HOST) --ServerApp.port=$(LABS_PORT) \
		$(if $(AS_ROOT),--allow-root) $(LABS_ARGS) labs/

bench: setup
	for b in benchmarks/*.py; do $(BIN)/python $$b; done

clean-venv:
	rm -rf $(VENV)
