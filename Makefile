# Two entry points on a fresh machine:  `make demo`  and  `make test`.
# Both create .venv (Python 3.11) and install requirements.txt the first time.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= runs/demo

.PHONY: setup test demo clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps resemblyzer==0.1.4  # its webrtcvad comes as webrtcvad-wheels
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

test: setup
	$(PY) -m pytest

demo: setup
	$(PY) -m styletts2.demo --out $(DEMO_DIR)

clean:
	rm -rf $(VENV) runs/demo
