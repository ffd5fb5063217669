PY ?= python3

.PHONY: install test demo bench lint

install:
	$(PY) -m pip install -q -e ".[test]"

# The test command of the README and of CI.
test: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

demo: install
	forensight demo

lint:
	ruff check src tests benchmarks

bench:
	$(PY) benchmarks/preprocess.py
	$(PY) benchmarks/lipforensics_speed.py
	$(PY) benchmarks/train_throughput.py
