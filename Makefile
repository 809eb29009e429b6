# Two commands for a new user: `make demo` and `make test`. Everything else is a step of those.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: venv broker broker-stop demo test unit lint bench rpk clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

broker: venv
	scripts/broker.sh start

broker-stop:
	scripts/broker.sh stop

demo: venv broker
	$(PY) scripts/demo.py

test: venv
	scripts/test.sh

unit: venv
	$(PY) -m pytest -q tests/unit

lint: venv
	$(VENV)/bin/ruff check .

bench: venv broker
	$(PY) bench/drain.py

rpk:
	scripts/rpk.sh build

clean: broker-stop
	rm -rf .broker
