#!/usr/bin/env bash
# Runs every fuzz target the build made, one after the other, for a fixed time each:
#
#   run.sh <fuzz build dir> <seconds per target>
#
# Each target starts from its committed seeds (fuzz/corpus/<target>/) and its dictionary
# (fuzz/<target>.dict, when there is one). New inputs go to <build>/work/<target>/corpus and
# findings to <build>/work/<target>/findings: the repository is only read. The limits make a
# finding of what would otherwise pass unnoticed: -malloc_limit_mb, one allocation larger than a
# decoder could need for inputs of at most -max_len bytes (a length it trusted); -rss_limit_mb, the
# process growing without bound; -timeout, one input taking seconds. Exits non-zero when any
# target found something (crash, leak, out-of-memory, timeout), after running all of them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

build=${1:?usage: run.sh <fuzz build dir> <seconds per target>}
seconds=${2:?usage: run.sh <fuzz build dir> <seconds per target>}
targets_file="$build/fuzz/targets.txt"
[[ -s "$targets_file" ]] || { echo "run.sh: no $targets_file; build the fuzz preset first" >&2; exit 2; }

failed=()
while read -r target; do
  [[ -n "$target" ]] || continue
  work="$build/work/$target"
  mkdir -p "$work/corpus" "$work/findings"
  args=(-max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048 -malloc_limit_mb=64
        -timeout=10 -print_final_stats=1 -artifact_prefix="$work/findings/")
  [[ -f "fuzz/$target.dict" ]] && args+=(-dict="fuzz/$target.dict")
  echo "==> $target: ${seconds}s"
  status=0
  "$build/bin/$target" "${args[@]}" "$work/corpus" "fuzz/corpus/$target" >"$work/log" 2>&1 || status=$?
  grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$work/log" | tr '\n' ' ' || true
  echo
  if ((status != 0)) || compgen -G "$work/findings/*" >/dev/null; then
    echo "$target: FOUND something (exit $status); log: $work/log, inputs: $work/findings/" >&2
    grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz:)' "$work/log" | head -n 5 >&2 || true
    failed+=("$target")
  fi
done <"$targets_file"

if ((${#failed[@]} > 0)); then
  echo "fuzz: findings in ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: nothing found ($(wc -l <"$targets_file") targets, ${seconds}s each)"
