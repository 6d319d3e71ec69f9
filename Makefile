# dyadic: two commands do everything on a fresh Debian/Ubuntu machine.
#   make demo   set up, then serve the live engine on the embedded sample (prints the URL to open)
#   make replay set up, then replay the embedded sample dyad to out/replay.mp4
#   make test   set up, then lint (ruff), type-check (mypy) and run the test suite (pytest)
#   make bench  set up, then run the benchmarks (results: BENCHMARKS.md)
#   make weights  set up, then retrain the shipped models (models/weights/) on generated data
PY      := .venv/bin/python
STAMP   := .venv/.dyadic-installed

.PHONY: setup demo replay test lint bench weights clean
.DEFAULT_GOAL := demo

$(STAMP): pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh

setup: $(STAMP)

demo: setup
	$(PY) -m dyadic.engine.cli serve

replay: setup
	$(PY) -m dyadic.engine.cli replay --out out/replay.mp4

test: setup lint
	$(PY) -m pytest tests -q

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	bash scripts/typecheck.sh

bench: setup
	$(PY) bench/run_all.py

weights: setup
	$(PY) scripts/make_weights.py

clean:
	rm -rf out .pytest_cache
