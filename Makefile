# The two commands of the README:
#   make demo   set up if needed, then run the embedded default recipe (egs2/synth_en/distill1)
#   make test   set up if needed, then run the whole test suite
#   make test-fast   the suite without the recipe and multi-process runs (marked slow)
#   make lint   ruff (ruff.toml: line length 120, pycodestyle, pyflakes, bugbear, import order)
SHELL := /bin/bash
VENV ?= $(CURDIR)/tools/venv
export ESPNET_DISTILL_VENV := $(VENV)
DEMO_STAGES ?= --stage 1 --stop_stage 6
PYTEST_ARGS ?=
# pytest-xdist workers: the tests run single-threaded (OMP_NUM_THREADS=1), so one per core; one test
# handed out at a time, in the order of test/conftest.py (the longest first)
TEST_JOBS ?= 2

.PHONY: setup demo test test-fast lint clean-demo

setup:
	tools/install.sh --venv $(VENV)

demo: setup
	cd egs2/synth_en/distill1 && ./run.sh $(DEMO_STAGES)

test: setup
	$(VENV)/bin/python -m pytest test -n $(TEST_JOBS) --dist load --maxschedchunk 1 $(PYTEST_ARGS)

test-fast: setup
	$(VENV)/bin/python -m pytest test -m "not slow" -n $(TEST_JOBS) --dist load --maxschedchunk 1 $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

clean-demo:
	rm -rf egs2/synth_en/distill1/{data,exp,dump,downloads}
