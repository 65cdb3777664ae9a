# Set-up and jobs of earlyexit. `make figures` (main job) and `make test` create everything they need.
# the first of python3.11, python3.12, python3.13 on PATH (the shipped results were made on 3.11), or PYTHON=...
PYTHON ?= $(firstword $(foreach v,3.11 3.12 3.13,$(shell command -v python$(v) 2>/dev/null)))
VENV ?= .venv
PROFILE ?= cpu
DATA_DIR ?= $(HOME)/.cache/earlyexit/data
SHARED_DATA ?= ../shared/data
export EARLYEXIT_DATA := $(DATA_DIR)
# without the offline copy, let torchvision download the datasets
export EARLYEXIT_DOWNLOAD ?= $(if $(wildcard $(SHARED_DATA)/unpack.py),0,1)

BIN := $(VENV)/bin
# pip installs the lock: it reads the machine's pip configuration (a local index or wheel folder), which uv ignores
# (benchmarks/results/install-uv-vs-pip-*.txt); uv, at this version, only writes the lock (make lock)
UV_VERSION ?= 0.13.9


BOOK_VENV ?= .venv-book
BOOK_HTML := build/book/_build/html

.PHONY: figures pipeline test setup lint smoke nbval unit data benchmark lab book book-check clean lock gpu-bundle

## main job: regenerate every figure and table from the committed artifacts (no training)
figures: $(VENV)/.installed data
	$(BIN)/python -m earlyexit.pipeline --profile cpu --figures-only

## the whole pipeline of one profile (trains what is missing or stale): make pipeline PROFILE=paper
pipeline: $(VENV)/.installed data
	$(BIN)/python -m earlyexit.pipeline --profile $(PROFILE)

## tests: lint and format, unit tests, the smoke pipeline on real data slices, nbval over the figure notebooks, the
## book; one line per phase with its duration
TEST_PHASES := setup lint unit smoke nbval book-check
test:
	@start=$$(date +%s); for phase in $(TEST_PHASES); do begin=$$(date +%s); \
		$(MAKE) --no-print-directory $$phase || exit 1; \
		echo "make test: $$phase took $$(( $$(date +%s) - begin )) s"; done; \
	echo "make test: all phases took $$(( $$(date +%s) - start )) s"

## the environment and the data
setup: $(VENV)/.installed data

## ruff (configured in pyproject.toml): lint and format check of the library, tests, benchmarks and book builder
lint: $(VENV)/.installed
	$(BIN)/ruff check lib tests benchmarks book
	$(BIN)/ruff format --check lib tests benchmarks book

## unit tests and nbval run on TEST_WORKERS processes (pytest-xdist), each with its share of the cores
TEST_WORKERS ?= 2
TEST_THREADS := $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n > $(TEST_WORKERS) ? n / $(TEST_WORKERS) : 1 )))
PARALLEL_TESTS = OMP_NUM_THREADS=$(TEST_THREADS) MKL_NUM_THREADS=$(TEST_THREADS) $(BIN)/pytest -q -n $(TEST_WORKERS)
unit: $(VENV)/.installed data
	$(PARALLEL_TESTS) --durations=15 tests

## the smoke pipeline runs TEST_WORKERS notebooks at once (--jobs), each on its share of the cores
smoke: $(VENV)/.installed data
	$(BIN)/python -m earlyexit.pipeline --profile smoke --force --jobs $(TEST_WORKERS)

## nbval runs copies of the figure notebooks in build/nbval (artifacts linked, figures written to a copy of
## figures/ there), so that the tests leave the work tree as they found it (the timing figures differ by machine)
NBVAL_DIR := build/nbval
nbval: $(VENV)/.installed data
	rm -rf $(NBVAL_DIR) && mkdir -p $(NBVAL_DIR) && cp -r notebooks figures $(NBVAL_DIR)/
	ln -s ../../artifacts $(NBVAL_DIR)/artifacts
	$(PARALLEL_TESTS) -p no:cacheprovider --dist loadfile --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg \
		$$($(BIN)/python -m earlyexit.pipeline --profile cpu --notebooks | sed 's|notebooks/|$(NBVAL_DIR)/notebooks/|g')

## refresh requirements/lock.txt from pyproject.toml (uv, in a throw-away environment): one universal lock for 3.11-3.13
lock:
	$(PYTHON) -m venv build/lock-venv && build/lock-venv/bin/pip install -qq uv==$(UV_VERSION)
	build/lock-venv/bin/uv pip compile pyproject.toml --extra test --python-version 3.11 --universal -q -o requirements/lock.txt

## the paper profile packed for a GPU machine without network (book/gpu.md): pieces of at most 60 MB, SHA256SUMS and
## run.sh in build/gpu-bundle, with the datasets DATASETS (default: both CIFARs) and artifacts/paper to resume from
DATASETS ?= cifar100 cifar10
gpu-bundle: $(VENV)/.installed
	$(BIN)/python -m earlyexit.bundle pack build/gpu-bundle --datasets $(DATASETS) --shared-data $(SHARED_DATA) \
		$(if $(wildcard artifacts/paper),--resume artifacts/paper)

## search-engine timings (Paper B Table I) and training throughput of every model, with cpu-job wall times
benchmark: $(VENV)/.installed data
	$(BIN)/python benchmarks/bench_search.py
	$(BIN)/python benchmarks/bench_training.py

## the notebooks as a static HTML book (shipped outputs, nothing executed): build/book/_build/html/index.html
book: $(BOOK_VENV)/.installed
	$(BOOK_VENV)/bin/python book/build.py

## open two rendered pages in headless Chromium (Debian's, installed here if missing) and check figures and equations
book-check: book $(VENV)/.installed
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| (echo "book-check needs Debian's chromium: apt-get install chromium" && exit 1)
	EARLYEXIT_BOOK=$(BOOK_HTML) $(BIN)/pytest -q -p no:cacheprovider tests/test_book_in_browser.py

$(BOOK_VENV)/.installed: book/requirements.txt
	$(PYTHON) -m venv $(BOOK_VENV)
	$(BOOK_VENV)/bin/pip install -qq --upgrade pip
	$(BOOK_VENV)/bin/pip install -qq -r book/requirements.txt
	touch $@

lab: $(VENV)/.installed data
	$(BIN)/jupyter lab notebooks/

## the environment: exact versions from requirements/lock.txt (universal: 3.11-3.13, every platform), then the project
$(VENV)/.installed: pyproject.toml requirements/lock.txt
	@test -n "$(PYTHON)" || { echo "earlyexit needs Python 3.11, 3.12 or 3.13: none of python3.11, python3.12," \
		"python3.13 is on PATH; install one, or pass PYTHON=/path/to/python"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' || { echo "$(PYTHON) is" \
		"Python $$($(PYTHON) -c 'import platform; print(platform.python_version())'); earlyexit needs 3.11, 3.12 or 3.13:" \
		"pass PYTHON=/path/to/python3.1x"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -qq --upgrade pip
	$(BIN)/pip install -qq -r requirements/lock.txt
	$(BIN)/pip install -qq --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (earlyexit)"
	touch $@

## offline data from ../shared/data when it is there; otherwise torchvision downloads on first use
data: $(VENV)/.installed
	@if [ -f $(SHARED_DATA)/unpack.py ]; then $(BIN)/python $(SHARED_DATA)/unpack.py $(DATA_DIR); \
	else echo "no $(SHARED_DATA): datasets will be downloaded into $(DATA_DIR) on first use"; fi

clean:
	rm -rf runs artifacts/smoke build/book build/book-src
