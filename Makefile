# ImageLab: `make run` opens the dashboard, `make test` runs every test.
# Both set everything up first; running them again is fast.

PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
HOST    ?= 127.0.0.1
PORT    ?= 8501
export IMAGELAB_HOME ?= $(CURDIR)/workspace

.PHONY: setup setup-dev browser run samples test lint bench soak guide-images clean-workspace help

help:
	@echo "make run    set up, prepare the built-in samples, open the dashboard on http://$(HOST):$(PORT)"
	@echo "make test   set up (Python packages and Debian's chromium) and run every test"
	@echo "make lint   ruff (pyflakes, import order, bugbear); make test runs it first"
	@echo "make bench  measure speed: prints a table of ratios and writes bench/results.json"
	@echo "make soak   robustness: 100k images, training and editing under random kills"

# A stamp per requirements file: pip runs only when a requirements file changed.
$(VENV)/.runtime-installed: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	@touch $@

$(VENV)/.dev-installed: $(VENV)/.runtime-installed requirements-dev.txt
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	@touch $@

setup: $(VENV)/.runtime-installed

setup-dev: $(VENV)/.dev-installed browser

# Browser tests drive Debian's chromium; never a downloaded browser.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
	  || { echo "error: could not install chromium (needs root or passwordless sudo)"; exit 1; }; }

samples: setup
	$(PY) -m core samples ensure

run: setup
	@$(PY) -m dashboard.launch --host $(HOST) --port $(PORT) --check
	$(PY) -m core samples ensure
	$(PY) -m dashboard.launch --host $(HOST) --port $(PORT)

test: setup-dev lint
	$(PY) -m pytest

# pyflakes, import sorting and bugbear (pyproject.toml [tool.ruff]); part of make test.
lint: setup-dev
	$(VENV)/bin/ruff check .

bench: setup
	$(PY) -m bench

# Robustness: 100k images, a training job, two editing sessions, random kills (~10 min).
soak: setup
	$(PY) -m bench.soak

# Re-take the user guide's pictures with the journey test.
# The photo pictures need the shared cats-dogs photos (../shared/data/cats-dogs).
guide-images: setup-dev
	$(PY) -m pytest tests/browser/test_journey.py -k new_user_journey -q
	rm -f docs/images/journey/*.png && cp tests/artifacts/journey/*.png docs/images/journey/
	$(PY) -m pytest tests/browser/test_explore.py tests/browser/test_active_queue.py tests/browser/test_queue_proof.py -q
	cp tests/artifacts/explore/02-hover-thumbnail.png docs/images/explore-hover.png
	cp tests/artifacts/active-queue.png docs/images/label-active-queue.png
	cp tests/artifacts/label-queue-pays.png docs/images/label-queue-pays.png
	@test -d ../shared/data/cats-dogs || { echo "error: ../shared/data/cats-dogs is absent: the photo pictures cannot be re-taken"; exit 1; }
	$(PY) -m pytest tests/browser/test_photo_journey.py -q
	mkdir -p docs/images/photo_journey && rm -f docs/images/photo_journey/*.png \
	  && cp tests/artifacts/photo_journey/*.png docs/images/photo_journey/

clean-workspace:
	rm -rf "$(IMAGELAB_HOME)"
