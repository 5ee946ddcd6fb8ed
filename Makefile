# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_CPU_VERSION ?= 2.13.0

.PHONY: demo test test-fast docs lint format bench install clean

# The stamp file records that the environment was built; delete it (or `make clean`) to rebuild.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip >/dev/null
	@# Without a GPU, install the CPU build of torch first so pip never pulls CUDA packages.
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
		echo "GPU found: installing the default torch build"; \
	else \
		echo "No GPU: installing torch==$(TORCH_CPU_VERSION) (CPU build)"; \
		$(PIP) install "torch==$(TORCH_CPU_VERSION)"; \
	fi
	$(PIP) install -e ".[test,md,dask,bench,docs]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m sklss demo

test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q

# For development: everything but the tests marked slow (a few minutes instead of about ten).
test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow"

# The documentation, with warnings as errors; the API pages are generated into docs/api/.
docs: $(VENV)/.installed
	$(VENV)/bin/sphinx-build -W --keep-going -b html docs docs/_build/html

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Every benchmark, one after the other, rewriting every file in benchmarks/results/ (a few
# hours on two cores, most of it the alanine dipeptide MD). BENCH=name runs one script.
BENCH ?= bench_walls bench_four_well bench_sampling bench_decoding bench_decoder_fidelity \
	bench_encoder bench_scoring bench_propagators bench_simulator alanine_dipeptide
bench: $(VENV)/.installed
	@for name in $(BENCH); do \
		echo "== benchmarks/$$name.py"; \
		$(PY) benchmarks/$$name.py || exit 1; \
	done

clean:
	rm -rf $(VENV) build *.egg-info docs/_build docs/api
