# Each target does its own set-up on a fresh machine (scripts/setup_venv.sh is a no-op when done).
VENV := .venv
PY := $(VENV)/bin/python
OUT ?= output/demo

.PHONY: setup test demo demo-quick bench clean

setup:
	@bash scripts/setup_venv.sh

test: setup
	$(PY) -m pytest -q tests

demo: setup
	$(VENV)/bin/mae-transfer demo --out $(OUT)

demo-quick: setup
	$(VENV)/bin/mae-transfer demo --quick --out $(OUT)-quick

bench: setup
	$(PY) -m benchmarks.pretrain_speed

clean:
	rm -rf $(VENV) .cache output
