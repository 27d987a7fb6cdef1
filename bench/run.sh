#!/usr/bin/env bash
# Runs every benchmark program that is already built; builds nothing.
#
#   bench/run.sh [WHERE] [ARGS...]
#
# WHERE is one of:
#   - a build directory: <dir>/bench/benchmarks.txt (written by bench/CMakeLists.txt) lists the
#     programs, else every bench_* executable in <dir>/bin or <dir> itself is run;
#   - the benchmarks.txt list itself (what `make bench` passes);
# default: build/release. ARGS go to every program (e.g. --reps=11, or --quick for a smoke test).
#
# The benchmarks want a quiet machine: with 2 cores, one busy neighbour halves a pool of 2
# workers. The load average is printed before and after; above 1.5 the figures are suspect.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
where=${1:-$repo/build/release}
[[ $# -gt 0 ]] && shift

programs=()
add_list() {
  local line
  while IFS= read -r line || [[ -n $line ]]; do
    [[ -n $line ]] && programs+=("$line")
  done <"$1"
}
add_dir() {
  local program
  for program in "$1"/bench_*; do
    [[ -f $program && -x $program ]] && programs+=("$program")
  done
}

if [[ -f $where ]]; then
  add_list "$where"
elif [[ -d $where ]]; then
  if [[ -f $where/bench/benchmarks.txt ]]; then
    add_list "$where/bench/benchmarks.txt"
  elif [[ -d $where/bin ]]; then
    add_dir "$where/bin"
  else
    add_dir "$where"
  fi
else
  echo "run.sh: $where: no such build directory or list (build with: make bench)" >&2
  exit 2
fi
if [[ ${#programs[@]} -eq 0 ]]; then
  echo "run.sh: no benchmark programs found in $where (build with: make bench)" >&2
  exit 2
fi

read -r load _ </proc/loadavg || load=unknown
echo "load average before: $(cut -d" " -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
if [[ $load != unknown ]] && awk -v l="$load" 'BEGIN { exit !(l > 1.5) }'; then
  echo "warning: load average $load > 1.5; other processes will skew the figures" >&2
fi

status=0
for program in "${programs[@]}"; do
  echo
  echo "==> $program $*"
  if [[ ! -x $program ]]; then
    echo "run.sh: $program is not built; skipped" >&2
    continue
  fi
  if ! "$program" "$@"; then
    echo "run.sh: $program failed" >&2
    status=1
  fi
done
# Seed (b) on threads once more with jemalloc preloaded (Debian's libjemalloc2, in the bench group
# of scripts/install-deps.sh): its 200,000 small results are allocated by the workers and freed
# by the iterating thread, which glibc's malloc serialises on an arena lock; this row shows what
# another allocator changes (README, "Choosing an allocator"). Skipped when jemalloc is absent.
jemalloc=$(compgen -G '/usr/lib/*/libjemalloc.so.2' | head -n 1 || true)
for program in "${programs[@]}"; do
  [[ $(basename "$program") == bench_thread_pool && -x $program ]] || continue
  if [[ -z $jemalloc ]]; then
    echo "run.sh: libjemalloc.so.2 not found; the jemalloc row of seed (b) is skipped" >&2
    break
  fi
  echo
  echo "==> LD_PRELOAD=$jemalloc $program --filter=factorize --tag=jemalloc $*"
  if ! LD_PRELOAD=$jemalloc "$program" --filter=factorize --tag=jemalloc "$@"; then
    echo "run.sh: $program with jemalloc failed" >&2
    status=1
  fi
done
# The large-value rows of the process pool once more with glibc's malloc asked for transparent
# huge pages (glibc.malloc.hugetlb=1, glibc 2.35 and later): a worker's fresh 64 MiB result is
# then faulted in 2 MiB at a time instead of 4 KiB (README, "Choosing an allocator"). Rows marked
# [hugetlb].
for program in "${programs[@]}"; do
  [[ $(basename "$program") == bench_process_pool && -x $program ]] || continue
  tunables="${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}glibc.malloc.hugetlb=1"
  echo
  echo "==> GLIBC_TUNABLES=$tunables $program --filter=64MiB --tag=hugetlb $*"
  if ! GLIBC_TUNABLES=$tunables "$program" --filter=64MiB --tag=hugetlb "$@"; then
    echo "run.sh: $program with glibc.malloc.hugetlb=1 failed" >&2
    status=1
  fi
done
echo
echo "load average after: $(cut -d" " -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
exit $status
