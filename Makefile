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

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do [ $$f = benchmarks/bench_video.py ] || $(PY) $$f || exit 1; done
	$(PY) benchmarks/bench_video.py --json benchmarks/results/video.json
	$(PY) benchmarks/make_results.py

clean:
	rm -rf build .pytest_cache
