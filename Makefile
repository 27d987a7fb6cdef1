# Entry points for people and CI. The build itself is CMake (CMakePresets.json); each target here
# is a short, fixed sequence of `cmake --preset`, `cmake --build --preset` and `ctest --preset`.
#
#   make demo                      install the demo's deps, build it (release) and run it
#   make demo-mpi                  the same with an MPI pool column, under mpiexec -n 3
#   make test                      release tests, then the sanitizer suites in $(SANITIZERS)
#   make test SANITIZERS="tsan asan"
#   make bench                     build the benchmarks (release), run them, draw bench/plots/*.png
#   make bench BENCH_ARGS=--quick  the same with small sizes (a smoke test; figures meaningless)
#   make bench-mpi                 MPIPoolExecutor beside mpi4py.futures under mpiexec -n 3
#   make soak                      the 30-minute soak (README "Reliability"): 1,000,000 tasks
#   make soak SOAK_MINUTES=2       the same mix at the same rate for 2 minutes (CI)
#   make check-<preset>            configure, build and test one preset (release, debug, asan,
#                                  tsan, clang)
#   make docs                      the API reference from the headers' comments (Doxygen):
#                                  build/docs/html/index.html
#   make package                   the Debian packages of the library (CPack), in build/:
#                                  libcfutures-dev, and libcfutures-mpi-dev when MPI is found
#   make fuzz                      build the libFuzzer targets (fuzz/), run each for FUZZ_SECONDS
#                                  (600; CI runs 30); fails on any finding
#   make fuzz-corpus               rewrite the seed corpora fuzz/corpus/ from the encoders
#   make format | format-check | clean
#   make deps | deps-<group>       install what every target (or one group: demo, mpi, test,
#                                  bench, package, fuzz, docs, format) needs; see
#                                  scripts/install-deps.sh
#
# JOBS (default: the number of CPUs) sets build and test parallelism.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build
MAKEFLAGS += --no-print-directory

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
SANITIZERS ?= tsan
CLANG_FORMAT ?= clang-format

BUILD_DIR := build
RELEASE_BIN := $(BUILD_DIR)/release/bin
BENCH_OUT := $(BUILD_DIR)/bench-results
BENCH_ARGS ?=
# The committed charts are redrawn only by a full run; a --quick one draws into $(BENCH_OUT).
BENCH_PLOTS = $(if $(findstring --quick,$(BENCH_ARGS)),$(BENCH_OUT)/plots,bench/plots)
# Doxyfile's OUTPUT_DIRECTORY.
DOCS_DIR := $(BUILD_DIR)/docs
SOURCE_DIRS = $(wildcard include src tests bench examples demo fuzz)
FUZZ_SECONDS ?= 600
FUZZ_DIR := $(BUILD_DIR)/fuzz

.PHONY: help deps build demo demo-mpi test bench bench-compare bench-mpi soak fuzz fuzz-corpus \
  docs package format format-check clean

help:
	@sed -n '4,27p' Makefile | sed 's/^# \{0,1\}//'

# Each target asks scripts/install-deps.sh for its own group only: `make demo` on a fresh system
# installs the demo's few packages, not the test, benchmark and documentation tools.
deps:
	@bash scripts/install-deps.sh all

deps-%:
	@bash scripts/install-deps.sh $*

build: deps-test
	cmake --preset release
	cmake --build --preset release -j $(JOBS)

# The release tree is configured without the tests, whose GoogleTest the demo does not need; the
# preset turns them back on for the next `make test` or `make build` (a reconfigure, not a
# rebuild).
demo: deps-demo
	cmake --preset release -DCFUTURES_BUILD_TESTS=OFF
	cmake --build --preset release -j $(JOBS) --target cfutures_demo
	./$(RELEASE_BIN)/cfutures_demo

# The demo with an MPI pool column: rank 0 runs the table, ranks 1 and 2 are the MPI workers.
MPIEXEC_FLAGS ?= --oversubscribe $(if $(filter 0,$(shell id -u)),--allow-run-as-root)
demo-mpi: deps-mpi
	cmake --preset release -DCFUTURES_BUILD_TESTS=OFF
	cmake --build --preset release -j $(JOBS) --target cfutures_demo_mpi
	mpiexec $(MPIEXEC_FLAGS) -n 3 ./$(RELEASE_BIN)/cfutures_demo_mpi --workers 2

# Configure, build and run the tests of one preset. CTest's output is kept in
# build/<preset>/ctest.log (and JUnit XML in build/<preset>/junit.xml) for the summary below.
check-%:
	cmake --preset $*
	cmake --build --preset $* -j $(JOBS)
	ctest --preset $* -j $(JOBS) --output-junit junit.xml 2>&1 | tee $(BUILD_DIR)/$*/ctest.log

test: deps-test
	@for preset in release $(SANITIZERS); do \
	  echo "==> $$preset"; \
	  $(MAKE) check-$$preset JOBS=$(JOBS); \
	done
	@echo "==> Summary"
	@for preset in release $(SANITIZERS); do \
	  printf '%-8s ' "$$preset"; grep -E 'tests passed|tests failed' $(BUILD_DIR)/$$preset/ctest.log || echo '(no summary)'; \
	done

# The release tree is reconfigured with the benchmarks on (the presets leave them off to keep
# test builds short). bench/run.sh, when present, decides what to run and how; it gets the list of
# built benchmark programs as its argument. Then the process pool is measured beside the Python
# pools (bench/compare.py), the MPI pool beside mpi4py.futures (bench/mpi_compare.py, at the same
# size as the rest: full, or --quick with BENCH_ARGS=--quick; skipped when MPI was not found), and
# bench/plot.sh draws the charts into bench/plots/ from the CSV files every program writes into
# $(BENCH_OUT). BENCH_ARGS go to every program, so only what all of them take: --quick, --reps=N.
bench: deps-bench
	cmake --preset release -DCFUTURES_BUILD_BENCH=ON
	cmake --build --preset release -j $(JOBS)
	mkdir -p $(BENCH_OUT)
	CFUTURES_BENCH_OUT=$(abspath $(BENCH_OUT)) \
	  bash bench/run.sh $(BUILD_DIR)/release/bench/benchmarks.txt $(BENCH_ARGS)
	CFUTURES_BENCH_OUT=$(abspath $(BENCH_OUT)) \
	  /usr/bin/python3 bench/compare.py $(RELEASE_BIN) $(BENCH_ARGS)
	if [[ -x $(RELEASE_BIN)/bench_mpi ]]; then \
	  CFUTURES_BENCH_OUT=$(abspath $(BENCH_OUT)) \
	    /usr/bin/python3 bench/mpi_compare.py $(RELEASE_BIN) $(BENCH_ARGS); \
	else \
	  echo "bench: bench_mpi not built (MPI not found); the MPI comparison is skipped"; \
	fi
	bash bench/plot.sh $(BENCH_OUT) $(BENCH_PLOTS)

# The process pool beside CPython's ProcessPoolExecutor, multiprocessing.Pool and loky (Debian's
# python3 with python3-joblib, not whichever python3 comes first on PATH).
bench-compare: deps-bench
	cmake --preset release -DCFUTURES_BUILD_BENCH=ON
	cmake --build --preset release -j $(JOBS) --target bench_process_pool
	/usr/bin/python3 bench/compare.py $(RELEASE_BIN)

# cfutures' MPIPoolExecutor beside mpi4py.futures' (Debian's python3-mpi4py), each under
# `mpiexec -n 3` (rank 0 measures, ranks 1 and 2 are the workers), runs alternating; see
# bench/mpi_compare.py. BENCH_ARGS=--quick for a smoke run, --reps=N for N runs of each.
bench-mpi: deps-bench
	cmake --preset release -DCFUTURES_BUILD_BENCH=ON
	cmake --build --preset release -j $(JOBS) --target bench_mpi
	mkdir -p $(BENCH_OUT)
	CFUTURES_BENCH_OUT=$(abspath $(BENCH_OUT)) \
	  /usr/bin/python3 bench/mpi_compare.py $(RELEASE_BIN) $(BENCH_ARGS)

# Every libFuzzer target for FUZZ_SECONDS, one after the other, each from its seed corpus and
# dictionary (fuzz/run.sh: new inputs go to $(FUZZ_DIR)/work/, never into the repository). Any
# crash, leak, out-of-memory (a decoder allocating on a length it did not check) or timeout fails.
fuzz: deps-fuzz
	cmake --preset fuzz
	cmake --build --preset fuzz -j $(JOBS)
	bash fuzz/run.sh $(FUZZ_DIR) $(FUZZ_SECONDS)

# The seed corpora, rewritten from the library's own encoders (fuzz/make_corpus.cpp).
fuzz-corpus: deps-fuzz
	cmake --preset fuzz
	cmake --build --preset fuzz -j $(JOBS) --target fuzz_make_corpus
	rm -rf fuzz/corpus
	./$(FUZZ_DIR)/bin/fuzz_make_corpus fuzz/corpus

# The soak (soak/soak.cpp): SOAK_MINUTES of a seeded mix of normal tasks, map chunks, exceptions,
# crashes, timeouts and cancels, at 1,000,000 tasks per 30 minutes whatever the length; it fails
# on any wrong outcome or on a parent resource that does not stay flat. The program stops
# submitting at 1.5 x SOAK_MINUTES, and `timeout` bounds the whole run (4 x + 2 minutes) should it
# hang. Its report is kept in build/soak.log. SOAK_ARGS go to the program (--seed=S, --workers=W).
SOAK_MINUTES ?= 30
SOAK_TASKS ?= $(shell echo $$(( $(SOAK_MINUTES) * 100000 / 3 )))
SOAK_ARGS ?=
soak: deps-test
	cmake --preset release
	cmake --build --preset release -j $(JOBS) --target cfutures_soak
	timeout --kill-after=30 $$(( $(SOAK_MINUTES) * 240 + 120 )) \
	  ./$(RELEASE_BIN)/cfutures_soak --minutes=$(SOAK_MINUTES) --tasks=$(SOAK_TASKS) $(SOAK_ARGS) \
	  | tee $(BUILD_DIR)/soak.log

# The API reference from the public headers' comments (settings in Doxyfile). Any Doxygen warning
# fails it. Made afresh each time: Doxygen would leave the pages of removed symbols behind, and it
# creates only the last directory of its output path.
docs: deps-docs
	@command -v doxygen >/dev/null || { echo "docs: doxygen is not installed" >&2; exit 1; }
	rm -rf $(DOCS_DIR)
	mkdir -p $(DOCS_DIR)
	doxygen Doxyfile
	@echo "API reference: $(DOCS_DIR)/html/index.html"

# The Debian packages (cmake/cfutures-package.cmake) of the library alone, built in build/package
# by the `package` preset (release flags, no tests, installed under /usr so that the libraries go
# to Debian's multiarch directory); CPack stages them there, and the .deb files are moved to build/.
package: deps-package
	cmake --preset package
	cmake --build --preset package -j $(JOBS)
	rm -f $(BUILD_DIR)/package/*.deb
	cpack --config $(BUILD_DIR)/package/CPackConfig.cmake -B $(BUILD_DIR)/package
	mv -f $(BUILD_DIR)/package/*.deb $(BUILD_DIR)/
	@ls -1 $(BUILD_DIR)/*.deb

format:
	@find $(SOURCE_DIRS) -type f \( -name '*.hpp' -o -name '*.cpp' \) -print0 \
	  | xargs -0 -r $(CLANG_FORMAT) -i

format-check: deps-format
	@find $(SOURCE_DIRS) -type f \( -name '*.hpp' -o -name '*.cpp' \) -print0 \
	  | xargs -0 -r $(CLANG_FORMAT) --dry-run --Werror

clean:
	rm -rf $(BUILD_DIR)
