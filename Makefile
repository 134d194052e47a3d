# make train: set up, then train the default beta-VAE on MNIST into runs/<name>.
# make test:  set up (headless Chromium too), then run every test, one real MNIST epoch included.
# make bench: the benchmarks under bench/ (they print their figures).
VENV := .venv/bin

.PHONY: setup browser train test unit bench

setup:
	EXTRAS=$(EXTRAS) bash scripts/setup.sh

train: setup
	$(VENV)/betavae train $(ARGS)

unit:
	$(VENV)/python -m pytest -q $(PYTEST_ARGS)

browser:
	bash scripts/browser.sh

test: EXTRAS = ray
test: setup browser
	BETAVAE_REAL_DATA=1 $(VENV)/python -m pytest -q -rs $(PYTEST_ARGS)

bench: setup
	$(VENV)/python bench/training.py
	$(VENV)/python bench/figures.py
