PY ?= python3

.PHONY: install test demo bench bench-report bench-demo lint fuzz docs docs-serve

install:
	$(PY) -m pip install -q -e ".[test]"

# The test command of the README and of CI.
test: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

# The manual (MkDocs, Material theme): a broken link, anchor or page missing from the nav fails the build.
docs:
	$(PY) -m pip install -q -e ".[docs]"
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

docs-serve:
	$(PY) -m pip install -q -e ".[docs]"
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs serve

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

# The demo's wall time end to end (about 14 min on 2 cores), then the table.
bench-demo:
	$(PY) benchmarks/demo_time.py
	$(PY) benchmarks/report.py

# Nightly-size container fuzzing: thousands of damaged MP4/WebM/MKV files through the reader, and
# hundreds of batches through detect and preprocess (FORENSIGHT_FUZZ_READER / _PIPELINE set counts).
fuzz:
	FORENSIGHT_FUZZ=nightly HF_HUB_OFFLINE=1 $(PY) -m pytest -q -p no:cacheprovider tests/test_fuzz_containers.py
