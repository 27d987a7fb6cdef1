#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages one task of cfutures needs, or all of them:
#
#   install-deps.sh [--dry-run] [demo|mpi|test|bench|package|fuzz|docs|format|all]...
#
#   demo    build and run the demonstration (make demo): the toolchain, cereal, CLI11
#   mpi     the MPI component and its demo (make demo-mpi): adds Open MPI
#   test    build everything the release preset builds and run the suites, with GCC and Clang
#           (make test, make check-<preset>): adds GoogleTest, Clang and Open MPI (the MPI
#           tests run under mpiexec); gnuplot for the test that draws the benchmark charts;
#           dpkg-deb and pkg-config for the test that consumes the Debian packages
#   bench   build and run the benchmarks and draw their charts (make bench): adds Google
#           Benchmark, the anchors (Boost.Asio, oneTBB), CPython's pools (python3-joblib),
#           mpi4py (python3-mpi4py), jemalloc (one row is run with it preloaded), gnuplot
#   package the Debian packages (make package): the toolchain and Open MPI, for the MPI package
#           (CPack writes the .deb files itself)
#   fuzz    build and run the libFuzzer targets (make fuzz): Clang, its sanitizer runtimes and
#           libFuzzer; Open MPI for the MPI link's target
#   docs    the API reference (make docs): Doxygen
#   format  make format-check: clang-format
#   all     every group (the default, with no group named)
#
# Does nothing (and prints one line) when the packages are installed already, so `make` can call
# it every time. --dry-run prints the packages the groups select and which of them are missing,
# and installs nothing. Set CFUTURES_SKIP_DEPS=1 to skip it, e.g. on a system without apt.
set -euo pipefail

# What configuring and building the library needs, whatever the task.
toolchain=(cmake ninja-build make g++ libcereal-dev)

# Open MPI: the library and headers, and mpiexec.
mpi=(libopenmpi-dev openmpi-bin)

# Appends the packages of one group to `wanted`. Every make target that builds configures the whole
# release tree, so each group names what the tree's parts need: CLI11 for the demo, always;
# GoogleTest for the tests, except in the demo's group (`make demo` configures without the tests).
add_group() {
  case "$1" in
    demo) wanted+=("${toolchain[@]}" libcli11-dev) ;;
    mpi) wanted+=("${toolchain[@]}" libcli11-dev "${mpi[@]}") ;;
    test) wanted+=("${toolchain[@]}" libcli11-dev libgtest-dev libgmock-dev clang libclang-rt-14-dev
                   "${mpi[@]}" gnuplot-nox fonts-dejavu-core dpkg pkg-config) ;;
    bench) wanted+=("${toolchain[@]}" libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev
                    libboost-dev libtbb-dev python3 python3-joblib "${mpi[@]}" python3-mpi4py
                    libjemalloc2 gnuplot-nox fonts-dejavu-core) ;;
    package) wanted+=("${toolchain[@]}" "${mpi[@]}") ;;
    fuzz) wanted+=("${toolchain[@]}" clang libclang-rt-14-dev libfuzzer-14-dev "${mpi[@]}") ;;
    docs) wanted+=(doxygen) ;;
    format) wanted+=(clang-format) ;;
  esac
}
all_groups=(demo mpi test bench package fuzz docs format)

usage() {
  echo "usage: install-deps.sh [--dry-run] [demo|mpi|test|bench|package|fuzz|docs|format|all]..." >&2
  exit 2
}

dry_run=0
groups=()
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry_run=1 ;;
    all) groups+=("${all_groups[@]}") ;;
    demo | mpi | test | bench | package | fuzz | docs | format) groups+=("$arg") ;;
    *) usage ;;
  esac
done
((${#groups[@]} > 0)) || groups=("${all_groups[@]}")

# The packages of the selected groups, each once, in the order first named.
wanted=()
for group in "${groups[@]}"; do
  add_group "$group"
done
packages=()
declare -A seen=()
for package in "${wanted[@]}"; do
  if [[ -z "${seen[$package]:-}" ]]; then
    seen[$package]=1
    packages+=("$package")
  fi
done

if ((dry_run)); then
  echo "install-deps: groups: ${groups[*]}"
  echo "install-deps: packages: ${packages[*]}"
fi

if [[ "${CFUTURES_SKIP_DEPS:-0}" == 1 ]] && ((!dry_run)); then
  exit 0
fi

if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
  echo "install-deps: not a Debian-based system; make sure these (or their equivalents) are" \
       "installed: ${packages[*]}" >&2
  exit 0
fi

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
  if [[ "$status" != installed ]]; then
    missing+=("$package")
  fi
done

if ((dry_run)); then
  echo "install-deps: missing: ${missing[*]:-(none)}"
  exit 0
fi

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages for ${groups[*]} are installed"
  exit 0
fi

if ((EUID == 0)); then
  as_root=(env DEBIAN_FRONTEND=noninteractive)
elif command -v sudo >/dev/null; then
  as_root=(sudo env DEBIAN_FRONTEND=noninteractive)
else
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run this script as root or install sudo" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
"${as_root[@]}" apt-get update
"${as_root[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
