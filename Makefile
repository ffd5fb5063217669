PY ?= python3

.PHONY: install test demo bench bench-report lint

install:
	$(PY) -m pip install -q -e ".[test]"

# The test command of the README and of CI.
test: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

demo: install
	forensight demo

lint:
	ruff check src tests benchmarks

# Runs the benchmarks that write benchmarks/results/*.json, then regenerates the performance table
# of docs/performance.md from that JSON (tests/test_performance_doc.py checks they agree).
bench:
	$(PY) benchmarks/preprocess.py
	$(PY) benchmarks/detect_latency.py
	$(PY) benchmarks/lipforensics_speed.py
	$(PY) benchmarks/report.py

bench-report:
	$(PY) benchmarks/report.py
