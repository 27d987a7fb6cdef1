#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages needed to build, test, benchmark and document cfutures.
# Does nothing (and prints one line) when they are all installed already, so `make` can call it
# every time. Set CFUTURES_SKIP_DEPS=1 to skip it, e.g. on a system without apt.
set -euo pipefail

packages=(
  # toolchain
  cmake ninja-build make g++ clang libclang-rt-14-dev clang-format python3 python3-joblib
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # the library (cereal: serializing user types for the process pool)
  libcereal-dev
  # benchmark anchors and the demo
  libboost-dev libtbb-dev libfmt-dev libcli11-dev
  # the charts of `make bench`
  gnuplot-nox fonts-dejavu-core
  # the API reference (make docs)
  doxygen
)

if [[ "${CFUTURES_SKIP_DEPS:-0}" == 1 ]]; then
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

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages are installed"
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
