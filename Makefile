# Two commands set everything up on a fresh machine (Python 3.11+ on PATH as python3):
#   make run    create .venv, install, fetch + convert the demo model once, open the app
#   make test   create .venv, install, run the whole test suite headless
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint bench package clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch pinned: the CPU wheel; an unpinned torch pulls a multi-GB CUDA build on Linux.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[convert,dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m app.conversion.demo_setup
	$(PY) -m app

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check app engine converter tests benchmarks scripts packaging
	$(PY) -m ruff format --check app engine converter tests benchmarks scripts packaging

bench: $(STAMP)
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# The frozen build, then its smoke test: the frozen executable converts the demo GGUF (--convert)
# and answers from that conversion (--self-test), headless.
package: $(STAMP)
	$(PY) -m PyInstaller --noconfirm --clean build_app.spec
	$(PY) packaging/smoke_test.py $(if $(filter Darwin,$(shell uname)),dist/coreml-chat.app,dist/coreml-chat)

clean:
	rm -rf build dist .pytest_cache .ruff_cache
