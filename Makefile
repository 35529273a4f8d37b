# The two commands of the README: `make book` builds the executed HTML book, `make test` runs the
# tests. Both set everything up first (scripts/setup.sh), so each works on a fresh clone.
VENV ?= .venv
PYTHON_VENV := $(VENV)/bin/python

.PHONY: setup book test clean

setup:
	VENV=$(VENV) bash scripts/setup.sh

book: setup
	bash scripts/build_book.sh

test: setup
	$(PYTHON_VENV) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf _build
