# EchoStream — see README.md. All targets set up .venv first when it is missing or stale.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.echostream-setup

.PHONY: setup test test-fast demo clean-data

setup: $(STAMP)

$(STAMP): requirements.txt requirements-asr-bleu.txt constraints.txt setup.py scripts/setup_env.sh
	bash scripts/setup_env.sh
	touch $(STAMP)

# the whole suite, slow end-to-end tests included (CI runs exactly this)
test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

# the main job on the bundled default
demo: setup
	$(VENV)/bin/echostream-demo

clean-data:
	rm -rf data runs
