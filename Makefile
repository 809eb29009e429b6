# Two commands for a new user: `make demo` and `make test`. Everything else is a step of those.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: venv compiled broker broker-stop demo test unit lint bench bench-venv bench-quick bench-latency \
	bench-soak bench-drain rpk helm clean alertmanager alertmanager-stop notifier
VENV_BENCH := .venv-bench

venv: $(VENV)/.installed

# The pinned set first, then the project itself, editable (its packages importable from anywhere,
# so scripts/ and bench/ need no sys.path edits, and the sensor-* console scripts). --no-deps:
# requirements.txt already installed the exact tested versions; letting pip resolve
# pyproject's ranges again could only move them.
$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	$(PY) -c "from dataflow.model.columns import warm; warm()"  # the scorer's loop, compiled
	$(PY) -c "from dataflow.lane import warm; warm()"  # and the shard's lane's loops
	touch $@

# The shard's modules compiled by mypyc (dataflow/__init__.py says when they are used), rebuilt
# when any module of the package changes: about seven minutes of CPU here (bench/RESULTS.md).
COMPILED_STAMP := build/compiled/STAMP

compiled: $(COMPILED_STAMP)

$(COMPILED_STAMP): $(VENV)/.installed $(shell find dataflow -name '*.py' -not -path '*/__pycache__/*')
	scripts/compile.sh

broker: venv
	scripts/broker.sh start

broker-stop:
	scripts/broker.sh stop

demo: venv broker
	$(PY) scripts/demo.py

# bench-venv: tests/integration/test_bench_harness.py runs the benchmark harness, Quix peer too.
# test: the suite runs the compiled shard (scripts/test.sh sets DATAFLOW_COMPILED=require), and
# tests/unit/dataflow/test_compiled.py holds it to the source.
test: venv bench-venv compiled
	scripts/test.sh

unit: venv
	$(PY) -m pytest -q tests/unit

lint: venv
	scripts/lint.sh

# Benchmarks: their figures by hand, never in CI; `make test` runs the harness once on a tiny
# load, for its structure only. The Quix Streams peer needs its own venv (it pins an older
# confluent-kafka than the project), without the project: bench/offsets.py is what it shares.
bench-venv: $(VENV_BENCH)/.installed

$(VENV_BENCH)/.installed: bench/requirements-bench.txt
	test -x $(VENV_BENCH)/bin/python || $(PYTHON) -m venv $(VENV_BENCH)
	$(VENV_BENCH)/bin/python -m pip install --quiet --disable-pip-version-check -r bench/requirements-bench.txt
	touch $@

bench: venv bench-venv compiled broker
	$(PY) bench/harness.py $(BENCH_ARGS)

bench-quick: venv bench-venv compiled broker
	$(PY) bench/harness.py --runs 1 --messages 200000

bench-latency: venv broker
	$(PY) bench/latency.py
	$(PY) bench/latency.py --rate 10000

bench-soak: venv broker
	$(PY) bench/soak.py $(SOAK_ARGS)

bench-drain: venv broker
	$(PY) bench/drain.py

rpk:
	scripts/rpk.sh build

# Helm, for the chart in charts/sensor-anomaly (docs/kubernetes.md); the tests build it too.
helm:
	scripts/helm.sh build

# The local Alertmanager (Debian's prometheus-alertmanager) on 127.0.0.1:$(ALERTMANAGER_PORT), and
# the notifier feeding it from the local broker's anomalies topic.
ALERTMANAGER_PORT ?= 9094

alertmanager:
	ALERTMANAGER_PORT=$(ALERTMANAGER_PORT) scripts/alertmanager.sh start

alertmanager-stop:
	scripts/alertmanager.sh stop

notifier: venv broker alertmanager
	ALERTMANAGER_URL=$${ALERTMANAGER_URL:-http://127.0.0.1:$(ALERTMANAGER_PORT)} $(PY) -m notifier

clean: broker-stop alertmanager-stop
	rm -rf .broker .alertmanager build/compiled
