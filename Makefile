# The README's two commands: `make demo` and `make test`. Each creates or reuses .venv.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint format bench bench-mnist faults clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# A stamp per extra: reinstall only when pyproject.toml changes.
$(VENV)/.installed-demo: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[viz]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@ $(VENV)/.installed-demo

demo: $(VENV)/.installed-demo
	$(PY) -m cnnkit demo

test: $(VENV)/.installed-test
	$(PY) -m pytest

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples

format: $(VENV)/.installed-test
	$(VENV)/bin/ruff format src tests benchmarks examples
	$(VENV)/bin/ruff check --fix src tests benchmarks examples

bench: $(VENV)/.installed-test
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]' && $(PY) benchmarks/bench.py

# Full-data training, cnnkit next to PyTorch: the default mnist-bn with its recipe on MNIST
# (needs ../shared/data/mnist; >= 99.5 % within 5 minutes); LeNet-5: benchmarks/mnist_lenet.py.
bench-mnist: $(VENV)/.installed-test
	$(PY) benchmarks/mnist_modern.py

# The fault suite with its slow sweeps (a kill at every write of an epoch's end, and more).
faults: $(VENV)/.installed-test
	CNNKIT_FAULT_SWEEP=1 $(PY) -m pytest tests/faults

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .hypothesis
