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

# Two worker processes, each test file on one of them (its module fixtures built once): most tests
# run on one thread, and two workers halve the suite's time on a 2-core machine. More workers would
# multiply the peak memory (the LJSpeech-size export tests hold about 5 GB each).
test: setup
	$(PY) -m pytest -n 2 --dist loadfile

demo: setup
	$(PY) -m styletts2.demo --out $(DEMO_DIR)

clean:
	rm -rf $(VENV) runs/demo
