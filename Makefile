# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_CPU_VERSION ?= 2.13.0

.PHONY: demo test test-fast docs docs-check lint format bench install clean

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
# sphinx-gallery runs the tutorials in docs/tutorials/ and renders them, with their output
# and figures, into docs/auto_tutorials/. They run at CI size (SKLSS_SMALL=1: seconds each,
# meaningless numbers); `make docs SKLSS_SMALL=0` renders them at full size (far slower).
SKLSS_SMALL ?= 1
docs: $(VENV)/.installed
	SKLSS_SMALL=$(SKLSS_SMALL) $(VENV)/bin/sphinx-build -W --keep-going -b html docs docs/_build/html

# Checks the built pages in headless Chromium (no console errors, figures and output shown,
# no code cut off) and saves screenshots into docs/_build/screenshots. Not part of CI: it
# needs a Chromium, by default Debian's /usr/bin/chromium (`apt-get install chromium`; set
# CHROMIUM=/path/to/chrome for another). Run `make docs` first.
docs-check: $(VENV)/.installed
	$(PY) docs/check_pages.py docs/_build/screenshots

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Every benchmark, one after the other, rewriting every file in benchmarks/results/ (a few
# hours on two cores, most of it the alanine dipeptide MD). BENCH=name runs one script.
BENCH ?= bench_walls bench_four_well bench_sampling bench_decoding bench_decoder_fidelity \
	bench_encoder bench_scoring bench_propagators bench_simulator bench_training \
	bench_alanine_dipeptide
bench: $(VENV)/.installed
	@for name in $(BENCH); do \
		echo "== benchmarks/$$name.py"; \
		$(PY) benchmarks/$$name.py || exit 1; \
		if [ $$name = bench_alanine_dipeptide ]; then \
			echo "== benchmarks/$$name.py --case fast"; \
			$(PY) benchmarks/$$name.py --case fast || exit 1; \
		fi; \
		if [ $$name = bench_decoder_fidelity ]; then \
			echo "== benchmarks/$$name.py --beads 20"; \
			$(PY) benchmarks/$$name.py --beads 20 \
				--output benchmarks/results/decoder_fidelity_20_beads.json || exit 1; \
		fi; \
	done

clean:
	rm -rf $(VENV) build *.egg-info docs/_build docs/api docs/auto_tutorials docs/sg_execution_times.rst
	@# What the tutorials write when sphinx-gallery runs them in docs/tutorials/.
	cd docs/tutorials && rm -rf box *.png *.dcd *.npy *.sklss
