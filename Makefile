# make test: install what the tests need (Fashion-MNIST included) and run the suite.
# make demo: the main job (train LeNet-5 on Fashion-MNIST, prune, retrain, report).
# make tutorials: run the notebooks in tutorials/ and store their outputs.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
# numba threads + BLAS threads must not exceed the cores (2 here)
export NUMBA_NUM_THREADS ?= 2

.PHONY: install install-test data test demo bench tutorials clean

install:
	$(PIP) install -q -e .

install-test:
	$(PIP) install -q -e ".[test]"

# Debian/Ubuntu package where apt exists, otherwise a SHA-256-checked download to ~/.cache
data:
	@$(PYTHON) -c "from minidnn.data import load_fashion_mnist as l; l('train'); l('test')" >/dev/null 2>&1 \
	|| (command -v apt-get >/dev/null && { [ "$$(id -u)" = 0 ] && SUDO= || SUDO=sudo; \
	     $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist; }) \
	|| $(PYTHON) -m minidnn.data.download fashion-mnist

test: install-test data
	$(PYTHON) -m pytest -q

demo: install data
	$(PYTHON) -m admm demo --out runs/demo

# the tutorial notebooks on their full budget, outputs stored in them (no Jupyter needed)
tutorials: install data
	$(PYTHON) tutorials/run.py --write tutorials/*.ipynb

bench: install
	$(PYTHON) benchmarks/train_speed.py --json

clean:
	rm -rf build dist *.egg-info .pytest_cache .hypothesis runs
