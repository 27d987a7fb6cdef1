#!/usr/bin/env bash
# Draws the benchmark charts from the CSV files next to this script (the output of one
# `make bench BENCH_ARGS=--quick` run, so the figures mean nothing) and checks that bench/plot.sh
# wrote each of them as a PNG image: the charts of `make bench` are not run in CI otherwise.
#
#   check_plot.sh REPO_DIR WORK_DIR
set -euo pipefail
repo=$1
work=$2
rm -rf "$work"
mkdir -p "$work/csv"
cp "$repo"/tests/plot/*.csv "$work/csv/"
bash "$repo/bench/plot.sh" "$work/csv" "$work/png"
status=0
for chart in scaling overhead anchors; do
  file=$work/png/$chart.png
  if [[ ! -s $file ]] || [[ $(head -c 8 "$file" | od -An -tx1 | tr -d ' \n') != 89504e470d0a1a0a ]]; then
    echo "check_plot: $chart.png was not written as a PNG image" >&2
    status=1
  fi
done
# Every anchor row but the serial-loop ones becomes one bar.
expected=$(cat "$work"/csv/anchors_*.csv | grep -vc -e '^measurement,' -e ',serial loop,')
bars=$(wc -l <"$work/csv/anchors.dat")
if [[ $bars != "$expected" ]]; then
  echo "check_plot: $bars bars drawn, expected $expected" >&2
  status=1
fi
exit $status
