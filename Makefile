# Each target does its own set-up on a fresh machine (scripts/setup_venv.sh is a no-op when done).
VENV := .venv
PY := $(VENV)/bin/python
OUT ?= output/demo

.PHONY: setup test test-quick demo demo-quick bench clean

setup:
	@bash scripts/setup_venv.sh

test: setup
	$(PY) -m pytest -q tests

test-quick: setup  # all but the tests marked slow (the end-to-end demo)
	$(PY) -m pytest -q -m "not slow" tests

demo: setup
	$(VENV)/bin/mae-transfer demo --out $(OUT)

demo-quick: setup
	$(VENV)/bin/mae-transfer demo --quick --out $(OUT)-quick

bench: setup
	$(PY) -m benchmarks.pretrain_speed

clean:
	rm -rf $(VENV) .cache output
