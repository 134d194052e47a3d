# make train: set up, then train the default beta-VAE on MNIST into runs/<name>.
# make test:  set up, then run the unit tests and one real epoch on MNIST.
VENV := .venv/bin

.PHONY: setup train test unit real-epoch bench

setup:
	bash scripts/setup.sh

train: setup
	$(VENV)/betavae train $(ARGS)

unit:
	$(VENV)/python -m pytest -q $(PYTEST_ARGS)

real-epoch:
	$(VENV)/python scripts/real_epoch_check.py

test: setup unit real-epoch

bench: setup
	$(VENV)/python bench/throughput.py
