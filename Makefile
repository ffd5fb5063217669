PY ?= python3

.PHONY: install test demo bench lint fuzz

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

# Nightly-size container fuzzing: thousands of damaged MP4/WebM/MKV files through the reader, and
# hundreds of batches through detect and preprocess (FORENSIGHT_FUZZ_READER / _PIPELINE set counts).
fuzz:
	FORENSIGHT_FUZZ=nightly HF_HUB_OFFLINE=1 $(PY) -m pytest -q -p no:cacheprovider tests/test_fuzz_containers.py
