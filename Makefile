# Two commands set everything up on a fresh machine (Python 3.11+ on PATH as python3):
#   make run    create .venv, install, fetch + convert the demo model once, open the app
#   make test   create .venv, install, run the whole test suite headless
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint bench package notarize clean

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

# Notarise the .app for other people's Macs, then staple the ticket so Gatekeeper accepts it offline.
# Needs `make package` run with COREML_CHAT_CODESIGN_IDENTITY (a Developer ID identity: notarisation
# refuses ad hoc signatures) and COREML_CHAT_NOTARY_PROFILE: a keychain profile made once with
#   xcrun notarytool store-credentials coreml-chat --apple-id ME --team-id TEAM --password APP_PASSWORD
# Without them it says what is missing and does nothing (exit 0).
NOTARY_APP := dist/coreml-chat.app
NOTARY_ZIP := dist/coreml-chat-notarize.zip
notarize:
	@if [ -z "$$COREML_CHAT_CODESIGN_IDENTITY" ] || [ -z "$$COREML_CHAT_NOTARY_PROFILE" ]; then \
		echo "notarize: skipped: set COREML_CHAT_CODESIGN_IDENTITY (Developer ID identity, for make package) and COREML_CHAT_NOTARY_PROFILE (xcrun notarytool store-credentials)"; \
		exit 0; fi; \
	if [ "$$(uname)" != Darwin ]; then \
		echo "notarize: skipped: notarisation runs on macOS (xcrun notarytool)"; exit 0; fi; \
	if [ ! -d "$(NOTARY_APP)" ]; then echo "notarize: no $(NOTARY_APP): run make package first"; exit 1; fi; \
	set -e; \
	codesign --verify --strict --deep "$(NOTARY_APP)"; \
	ditto -c -k --keepParent "$(NOTARY_APP)" "$(NOTARY_ZIP)"; \
	xcrun notarytool submit "$(NOTARY_ZIP)" --keychain-profile "$$COREML_CHAT_NOTARY_PROFILE" --wait; \
	xcrun stapler staple "$(NOTARY_APP)"; \
	spctl --assess --type execute --verbose "$(NOTARY_APP)"; \
	rm -f "$(NOTARY_ZIP)"

clean:
	rm -rf build dist .pytest_cache .ruff_cache
