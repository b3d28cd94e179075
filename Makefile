# One command each on a fresh clone: `make audit` runs the audits on the built-in bench,
# `make test` runs the project's own tests. Both create .venv and install into it when needed.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install audit test lint bench bench-peers bench-models clean

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

test: lint browser
	$(VENV)/bin/pytest $(ARGS)

bench: $(STAMP)
	$(PY) -m benchmarks.run $(ARGS)

# Quantus, for W3's peer column, in its own virtualenv (its TensorFlow extra pins keras<3).
bench-peers:
	test -x .venv-quantus/bin/python || python3 -m venv .venv-quantus
	.venv-quantus/bin/pip install --quiet quantus tensorflow==2.21.0

# Retrains the committed bench models (about 2.5 minutes each on 2 CPU cores).
bench-models: $(STAMP)
	$(PY) -m heatcheck.fixtures.train_bench $(ARGS)

clean:
	rm -rf reports/*.html reports/*.json reports/*.npz reports/*.png .heatcheck_cache

# Headless Chromium for tests/e2e/test_report_browser.py: Debian's package (playwright's own
# browser download is never used). The leading '-' lets make go on if it cannot be installed
# (no root, no network): the browser test then skips and says why.
.PHONY: browser
browser:
	-command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
