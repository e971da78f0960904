# Two commands a newcomer needs: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PIP     = $(BIN)/python -m pip
# CPU-only torch pin; GPU users install without it to get their CUDA build.
CONSTRAINTS = -c constraints/cpu.txt

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed-demo: pyproject.toml constraints/cpu.txt | $(BIN)/python
	$(PIP) install -q $(CONSTRAINTS) -e ".[data,eval,trl]"
	touch $@

$(VENV)/.installed-dev: pyproject.toml constraints/cpu.txt | $(BIN)/python
	$(PIP) install -q $(CONSTRAINTS) -e ".[dev]"
	touch $@ $(VENV)/.installed-demo

demo: $(VENV)/.installed-demo
	$(BIN)/medgym demo

test: $(VENV)/.installed-dev
	OMP_NUM_THREADS=1 HYPOTHESIS_PROFILE=ci $(BIN)/python -m pytest -m "not slow and not gpu" -n 2 -q

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check medgym tests benchmarks
	$(BIN)/ruff format --check medgym tests benchmarks
	$(BIN)/mypy medgym

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/bench_tools.py
	$(BIN)/python benchmarks/bench_env.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
