# Two commands: `make run` (the tour) and `make test` (the whole suite).
# Both create .venv on first use and reuse it afterwards (stamp file, no reinstall).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.facelab-installed

.PHONY: setup run test test-fast lab bench results clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[course,dev,onnx]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/facelab tour

test: $(STAMP)
	$(PY) -m pytest --nbval-lax tests notebooks

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow and not notebook" tests

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

results: $(STAMP)
	$(PY) benchmarks/make_results.py

# `make bench`: every benchmark writes benchmarks/results/NAME.json, then docs/results.md is rendered from them.
# `make bench-NAME results` reruns one (e.g. `make bench-synth results`).  Run on a quiet machine: the figures
# are timings.  bench_notebooks re-executes the course in place and exits 1 when a notebook is over its budget
# (its JSON is written all the same, so `make bench` goes on).
BENCHES := synth analyze descriptors training video peers notebooks
BENCH_ARGS_training := --threads 2
BENCH_STATUS_notebooks := || echo "bench_notebooks: over the time budget (figures written)"

bench: $(addprefix bench-,$(BENCHES))
	$(PY) benchmarks/make_results.py

bench-%: $(STAMP)
	$(PY) benchmarks/bench_$*.py $(BENCH_ARGS_$*) --json benchmarks/results/$*.json $(BENCH_STATUS_$*)

.NOTPARALLEL:

clean:
	rm -rf build .pytest_cache
