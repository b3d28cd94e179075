# One command each on a fresh clone: `make audit` runs the audits on the built-in bench,
# `make test` runs the project's own tests. Both create .venv and install into it when needed.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install audit test lint bench bench-models clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

audit: $(STAMP)
	$(VENV)/bin/pytest audits/ $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check heatcheck fixtures audits tests benchmarks conftest.py
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest $(ARGS)

bench: $(STAMP)
	$(PY) -m benchmarks.run $(ARGS)

# Retrains the committed bench models (about 2.5 minutes each on 2 CPU cores).
bench-models: $(STAMP)
	$(PY) -m fixtures.train_bench $(ARGS)

clean:
	rm -rf reports/*.html reports/*.json reports/*.npz reports/*.png .heatcheck_cache
