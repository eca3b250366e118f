# `make demo`, `make test` and `make bench` each create .venv when it is missing and install what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[all,test]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/resnet-parity demo

# The whole suite on Keras' TensorFlow backend in one process. Beside it, tests/backends on
# TensorFlow, JAX and PyTorch in turn, each backend in one process of its own: the main suite
# spends most of its time in Python (building Keras graphs) on one core, so they take the other.
# Their output is printed when they end; a failure anywhere fails `make test`.
TEST_LOGS := .test-logs
BACKENDS := tensorflow jax torch

test: $(STAMP)
	@rm -rf $(TEST_LOGS) && mkdir -p $(TEST_LOGS)
	@( for backend in $(BACKENDS); do \
	     KERAS_BACKEND=$$backend $(PY) -m pytest -q -p no:cacheprovider tests/backends \
	       > $(TEST_LOGS)/$$backend.log 2>&1; echo $$? > $(TEST_LOGS)/$$backend.status; \
	   done ) & \
	KERAS_BACKEND=tensorflow $(PY) -m pytest -q --ignore=tests/backends; status=$$?; wait; \
	for backend in $(BACKENDS); do \
	  echo; echo "== tests/backends on Keras' $$backend backend"; cat $(TEST_LOGS)/$$backend.log; \
	  [ "$$(cat $(TEST_LOGS)/$$backend.status)" = 0 ] || status=1; \
	done; exit $$status

bench: $(STAMP)
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) build *.egg-info
