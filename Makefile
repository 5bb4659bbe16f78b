# Two commands set everything up on a fresh machine (Python 3.11, 3.12 or 3.13 on PATH):
#   make run    create .venv, install, fetch + convert the demo model once, open the app
#   make test   create .venv, install, run the whole test suite headless
# .venv gets exactly the versions in locks/ for this platform (what the tests passed with);
# pyproject.toml keeps the ranges, and `make lock` re-resolves the locks from them on purpose.
PYTHON ?=  # empty: scripts/pick_python.sh takes python3.13, 3.12 or 3.11, the first that runs
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PLATFORM ?= $(shell uname -s)-$(shell uname -m)
LOCK_Linux-x86_64 := locks/linux-x86_64.txt
LOCK_Darwin-arm64 := locks/macos-arm64.txt
LOCK ?= $(LOCK_$(PLATFORM))
# torch's Linux CPU build (torch==X+cpu in the Linux lock) is not on PyPI: pip takes it from its own
# sources when they have it (a wheel folder in pip's config), otherwise from PyTorch's CPU wheels here.
TORCH_CPU_WHEELS ?= https://download.pytorch.org/whl/cpu/torch/

.PHONY: run test lint bench package lock notarize clean

$(STAMP): pyproject.toml $(LOCK)
	@if [ -z "$(LOCK)" ]; then \
		if [ "$(PLATFORM)" = Darwin-x86_64 ]; then \
			echo "error: Intel Macs are not supported: PyTorch publishes no wheels for x86_64 macOS after torch 2.2.2, and the converter needs torch 2.7 or newer. Use an Apple silicon Mac (a Terminal running under Rosetta reports x86_64 too: try arch -arm64 make ...)." >&2; \
		else \
			echo "error: no lock for $(PLATFORM): locks/ has Linux-x86_64 and Darwin-arm64. Elsewhere install unlocked: python3.12 -m venv .venv && .venv/bin/pip install -e '.[convert,dev]'" >&2; \
		fi; exit 1; fi
	python=$$(sh scripts/pick_python.sh $(PYTHON)) && "$$python" -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	torch=$$(grep '^torch==' $(LOCK)) && { $(PY) -m pip install --quiet --no-deps "$$torch" 2>/dev/null || { \
		echo "$$torch: not in pip's own sources; from $(TORCH_CPU_WHEELS)"; \
		$(PY) -m pip install --quiet --no-deps --find-links $(TORCH_CPU_WHEELS) "$$torch"; }; }
	# --no-deps: the lock is the whole set, nothing beside it; pip check proves it is complete.
	$(PY) -m pip install --quiet --no-deps -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m app.conversion.demo_setup
	$(PY) -m app

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check app engine converter tests benchmarks scripts packaging
	$(PY) -m ruff format --check app engine converter tests benchmarks scripts packaging

# Every benchmark (offscreen: no display needed), each figure then compared with its goal: the
# summary at the end says which fall short (benchmarks/_goals.py); exit 1 only if one crashed.
bench: $(STAMP)
	@summary=$$(mktemp); crashed=""; \
	for b in benchmarks/[!_]*.py; do echo "== $$b"; \
		QT_QPA_PLATFORM=offscreen COREML_CHAT_BENCH_SUMMARY=$$summary $(PY) $$b || crashed="$$crashed $$b"; \
	done; \
	$(PY) benchmarks/_goals.py summary $$summary $$crashed; status=$$?; rm -f $$summary; exit $$status

# The frozen build, then its smoke test: the frozen executable converts the demo GGUF (--convert)
# and answers from that conversion (--self-test), headless.
package: $(STAMP)
	$(PY) -m PyInstaller --noconfirm --clean build_app.spec
	$(PY) packaging/smoke_test.py $(if $(filter Darwin,$(shell uname)),dist/coreml-chat.app,dist/coreml-chat)

# Re-resolve both locks from pyproject.toml's ranges: the newest versions they allow, each with a
# wheel for its platform. uv resolves for another platform than its own (pip-tools cannot), and
# in a second. Keep the pins a lock already has (after a pyproject.toml edit): LOCK_UPGRADE=
# Resolved with Python 3.11's markers: 3.12 and 3.13 resolve the same set (checked when made).
UV_VERSION := 0.13.8
UV_VENV := .cache/uv-$(UV_VERSION)
LOCK_UPGRADE ?= --upgrade
LOCK_COMPILE = $(UV_VENV)/bin/uv pip compile pyproject.toml --extra convert --extra dev \
	--python-version 3.11 --only-binary :all: $(LOCK_UPGRADE) --quiet \
	--custom-compile-command "make lock"
lock:
	@test -x $(UV_VENV)/bin/uv || { python=$$(sh scripts/pick_python.sh $(PYTHON)) && \
		"$$python" -m venv $(UV_VENV) && $(UV_VENV)/bin/pip install --quiet uv==$(UV_VERSION); }
	# Linux: glibc 2.34+ (PySide6 6.10+ wheels need it); torch's CPU build from TORCH_CPU_WHEELS.
	$(LOCK_COMPILE) --python-platform x86_64-manylinux_2_34 --find-links $(TORCH_CPU_WHEELS) \
		-o locks/linux-x86_64.txt
	# macOS: arm64 wheels for macOS 15, the app's minimum (torch 2.12+ ships macOS 14+ wheels only).
	MACOSX_DEPLOYMENT_TARGET=15.0 $(LOCK_COMPILE) --python-platform aarch64-apple-darwin \
		-o locks/macos-arm64.txt
	@grep -q '^torch==.*+cpu' locks/linux-x86_64.txt || { \
		echo "error: locks/linux-x86_64.txt pins torch's CUDA build: give TORCH_CPU_WHEELS a folder or page with the +cpu wheel" >&2; exit 1; }

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

# The machine report (README: "Running on a Mac for the first time"): doctor-report.json and
# doctor-report.txt in this folder. Converts the demo model's two weight forms the first time.
.PHONY: doctor
doctor: $(STAMP)
	$(PY) -m app --doctor $(if $(MODEL),--model "$(MODEL)")
