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

# Two processes at a time, one per core, each backend's tests in one process of its own:
# - Keras on TensorFlow: the whole suite, tests/backends included (one process, so built models
#   are shared between all of its tests), but for what the side processes run;
# - beside it, Keras on JAX and then on PyTorch: tests/backends, and also, so that both cores stay
#   busy to the end, tests/imports in the JAX process (its fresh processes each pick their own
#   backend) and in the PyTorch process the PyTorch builder's tests, which use no Keras at all.
# The side processes' output is printed when they end; a failure anywhere fails `make test`.
TEST_LOGS := .test-logs
# Each side process: backend:tests it runs beside tests/backends (the main process ignores them).
SIDES := jax:tests/imports torch:tests/builders/test_torch_models.py
SIDE_BACKENDS := $(foreach side,$(SIDES),$(firstword $(subst :, ,$(side))))
SIDE_TESTS := $(foreach side,$(SIDES),$(lastword $(subst :, ,$(side))))
PYTEST := $(PY) -m pytest -q -p no:cacheprovider

test: $(STAMP)
	@rm -rf $(TEST_LOGS) && mkdir -p $(TEST_LOGS)
	@( for side in $(SIDES); do \
	     backend=$${side%%:*}; \
	     KERAS_BACKEND=$$backend $(PYTEST) $${side#*:} tests/backends \
	       > $(TEST_LOGS)/$$backend.log 2>&1; echo $$? > $(TEST_LOGS)/$$backend.status; \
	   done ) & \
	KERAS_BACKEND=tensorflow $(PYTEST) $(addprefix --ignore=,$(SIDE_TESTS)); status=$$?; wait; \
	for backend in $(SIDE_BACKENDS); do \
	  echo; echo "== tests on Keras' $$backend backend"; cat $(TEST_LOGS)/$$backend.log; \
	  [ "$$(cat $(TEST_LOGS)/$$backend.status)" = 0 ] || status=1; \
	done; exit $$status

bench: $(STAMP)
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) build *.egg-info
