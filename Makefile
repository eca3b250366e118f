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

# The whole suite on Keras' TensorFlow backend, then tests/backends once on each backend, each
# backend in one process.
test: $(STAMP)
	KERAS_BACKEND=tensorflow $(PY) -m pytest -q --ignore=tests/backends
	for backend in tensorflow jax torch; do KERAS_BACKEND=$$backend $(PY) -m pytest -q tests/backends || exit 1; done

bench: $(STAMP)
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) build *.egg-info
