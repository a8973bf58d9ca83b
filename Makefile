# make demo: the main job end to end; make test: the test suite. Both set up .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test docs bench gpu-check install clean

install: $(STAMP)

$(STAMP): pyproject.toml examples/dsmnet-attnpool/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]' -e examples/dsmnet-attnpool
	@touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/dsmnet demo --out demo

# the documentation site (docs/, mkdocs.yml) into site/; open site/index.html
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

bench: $(STAMP)
	$(PY) -m bench

# a GPU set-up check in a few minutes (on a machine without CUDA it says so and exits 0)
gpu-check: $(STAMP)
	$(PY) -m bench.gpu

clean:
	rm -rf $(VENV) demo site build/docs-src .pytest_cache .hypothesis
