# Each target sets itself up on a fresh machine: a virtual environment with torch (CPU build) and this package.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo featurize-demo test lint bench clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: a bare `torch` requirement would pull a multi-GB CUDA build
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)  ## the main job: finetune on the embedded ESOL sample (small preset from the shipped checkpoint, scaffold split, 3 seeds)
	HF_HUB_OFFLINE=1 $(VENV)/bin/moleblend finetune --train_file modeling_moleblend/data/esol.csv --label_columns logS \
		--config_name small --split scaffold --seeds 0 1 2 --output_dir outputs/esol --overwrite_output_dir --quiet

featurize-demo: $(STAMP)  ## featurize the embedded sample (2D + generated conformers) and report
	HF_HUB_OFFLINE=1 $(VENV)/bin/moleblend featurize --input modeling_moleblend/data/esol.csv --label_columns logS \
		--output_dir outputs/featurize --bad_input_demo

test: $(STAMP)  ## the whole test suite (offline)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

lint: $(STAMP)  ## ruff: lint and format check
	$(VENV)/bin/ruff check modeling_moleblend tokenization hub_card scripts tests
	$(VENV)/bin/ruff format --check modeling_moleblend tokenization hub_card scripts tests

bench: $(STAMP)  ## featurizer throughput (run by hand, not in CI)
	$(PY) scripts/benchmark_featurizer.py

clean:
	rm -rf $(VENV) outputs build *.egg-info
