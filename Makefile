# The two commands of the README:
#   make demo   set up if needed, then run the embedded default recipe (egs2/synth_en/distill1)
#   make test   set up if needed, then run the whole test suite
SHELL := /bin/bash
VENV ?= $(CURDIR)/tools/venv
export ESPNET_DISTILL_VENV := $(VENV)
DEMO_STAGES ?= --stage 1 --stop_stage 6
PYTEST_ARGS ?=

.PHONY: setup demo test clean-demo

setup:
	tools/install.sh --venv $(VENV)

demo: setup
	cd egs2/synth_en/distill1 && ./run.sh $(DEMO_STAGES)

test: setup
	$(VENV)/bin/python -m pytest test $(PYTEST_ARGS)

clean-demo:
	rm -rf egs2/synth_en/distill1/{data,exp,dump,downloads}
