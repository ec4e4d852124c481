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

# The demo transfers from the zoo's released encoders (zoo/: zoo:demo-mae, zoo:demo-supervised); add
# DEMO_ARGS=--pretrain to pretrain both here first, DEMO_ARGS=--recipe-search for the lr x layer-decay search.
DEMO_ARGS ?=

demo: setup  # the default plan, one seed (about 12 minutes on 2 cores)
	$(VENV)/bin/mae-transfer demo --out $(OUT) $(DEMO_ARGS)

demo-quick: setup  # the quick plan: every stage once, in minutes
	$(VENV)/bin/mae-transfer demo --quick --out $(OUT)-quick $(DEMO_ARGS)

bench: setup
	$(PY) -m benchmarks.pretrain_speed

clean:
	rm -rf $(VENV) .cache output
