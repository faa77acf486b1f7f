# EchoStream — see README.md. All targets set up .venv first when it is missing or stale.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.echostream-setup

.PHONY: setup test test-fast demo bench clean-data

setup: $(STAMP)

$(STAMP): requirements.txt requirements-asr-bleu.txt constraints.txt setup.py scripts/setup_env.sh
	bash scripts/setup_env.sh
	touch $(STAMP)

# the whole suite, slow end-to-end tests included (CI runs exactly this)
test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

# the main job on the bundled default: stream the example wavs through the shipped model
DEMO_OUT ?= runs/demo
demo: setup
	$(VENV)/bin/echostream-demo --out $(DEMO_OUT)

# per-chunk cost of the streaming engine vs re-computing the prefix (default: the shipped model,
# its example wavs laid end to end)
CHECKPOINT ?= assets/model/checkpoint.pt
DATA ?= assets/model
CORPUS ?= assets/examples/examples.tsv
bench: setup
	$(PY) bench/chunk_cost.py --checkpoint $(CHECKPOINT) --data-dir $(DATA) --corpus $(CORPUS)

clean-data:
	rm -rf data runs
