# The two entry points of the README. Each sets up its own virtual environment on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
PYTEST_WORKERS ?= 2

$(VENV)/.installed: pyproject.toml setup.py
	python3 -m venv $(VENV)
	$(PY) -m pip install -q "setuptools>=64" wheel "$(TORCH)"
	$(PY) -m pip install -q --no-build-isolation -e ".[dev,hf]"
	touch $@

.PHONY: demo test
demo: $(VENV)/.installed  ## the main job: quantize the embedded model with every scheme, print the tables
	$(PY) -m qtorch demo

test: $(VENV)/.installed  ## the whole test suite on CPU (Triton kernels through the interpreter)
	TRITON_INTERPRET=1 $(PY) -m pytest -q -n $(PYTEST_WORKERS) tests
