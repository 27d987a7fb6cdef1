#!/usr/bin/env bash
# Draws the benchmark charts (PNG, with gnuplot) from the CSV files the benchmarks write into
# $CFUTURES_BENCH_OUT:
#
#   bench/plot.sh CSV_DIR [PNG_DIR]      (PNG_DIR defaults to bench/plots)
#
#   scaling.png    speed-up against workers, seed workloads, each executor   (scaling.csv)
#   overhead.png   cost per item against chunksize, each executor            (overhead.csv)
#   anchors.png    ours against each anchor, as "times better"               (anchors_*.csv)
#
# A chart whose CSV is missing is skipped with a message (e.g. anchors_process.csv comes from
# bench/compare.py, which needs Debian's python3-joblib; anchors_mpi.csv from
# bench/mpi_compare.py, which needs Open MPI and python3-mpi4py).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
csv=${1:?usage: bench/plot.sh CSV_DIR [PNG_DIR]}
png=${2:-$repo/bench/plots}
mkdir -p "$png"
command -v gnuplot >/dev/null || {
  echo "plot.sh: gnuplot is not installed (apt-get install gnuplot-nox)" >&2
  exit 1
}

# Font, size and colours shared by every chart; noenhanced keeps '_' and '^' literal in labels.
common='
set terminal pngcairo size 1000,560 font "DejaVu Sans,10" noenhanced
set datafile separator comma
set key top left box opaque
set grid lc rgb "#dddddd"
set linetype 1 lc rgb "#1f77b4" lw 2 pt 7 ps 1.2
set linetype 2 lc rgb "#d62728" lw 2 pt 5 ps 1.2
set linetype 3 lc rgb "#2ca02c" lw 2 pt 9 ps 1.4
set linetype 4 lc rgb "#7f7f7f" lw 1.5 dt 2
'
drawn=()

if [[ -f $csv/scaling.csv ]]; then
  max_workers=$(awk -F, 'NR > 1 && $3 > m { m = $3 } END { print m + 0 }' "$csv/scaling.csv")
  # The CPUs of the machine that ran the benchmark, not of this one.
  cpus=$(awk -F, 'NR == 2 { print $7 + 0 }' "$csv/scaling.csv")
  # The workloads' names, in the order of the file, as a gnuplot array initializer.
  names=$(awk -F, 'NR > 1 && !seen[$2]++ { printf "%s\"%s\"", n++ ? ", " : "", $2 }' \
    "$csv/scaling.csv")
  gnuplot <<EOF
$common
set output "$png/scaling.png"
set multiplot layout 1,2 title "Seed workloads: speed-up over the serial loop against workers ($cpus CPUs)"
set xlabel "workers"
set ylabel "speed-up (serial time / executor time)"
set xrange [0.8:$max_workers + 0.2]
set xtics 1
set yrange [0:$cpus * 1.25]
set key bottom right
array workload = [$names]
do for [executor in "ThreadPoolExecutor ProcessPoolExecutor"] {
  set title executor
  plot for [i = 1:|workload|] "$csv/scaling.csv" skip 1 \
         using (strcol(1) eq executor && strcol(2) eq workload[i] ? \$3 : NaN):6 \
         with linespoints title workload[i], \
       (x < $cpus ? x : $cpus) with lines lt 4 title "ideal: min(workers, CPUs)"
}
unset multiplot
EOF
  drawn+=("$png/scaling.png")
else
  echo "plot.sh: $csv/scaling.csv not found; scaling.png not drawn" >&2
fi

if [[ -f $csv/overhead.csv ]]; then
  items=$(awk -F, 'NR == 2 { print $3 }' "$csv/overhead.csv")
  # The y range from the data, with a margin: gnuplot's log autoscale would put points on the edge.
  yrange=$(awk -F, 'NR > 1 { if (lo == "" || $5 < lo) lo = $5; if ($5 > hi) hi = $5 }
    END { printf "[%g:%g]", lo / 1.6, hi * 1.6 }' "$csv/overhead.csv")
  gnuplot <<EOF
$common
set output "$png/overhead.png"
set title "map(increment, $items ints) on 2 workers: time per item against chunksize"
set xlabel "chunksize (items per task)"
set ylabel "ns per item (log scale)"
set logscale xy 2
set format y "%g"
set key top right
set xrange [1:8192]
set yrange $yrange
array executor = ["ThreadPoolExecutor", "ProcessPoolExecutor"]
plot for [i = 1:2] "$csv/overhead.csv" skip 1 \
       using (strcol(1) eq executor[i] && \$2 > 0 ? \$2 : NaN):5 \
       with linespoints lt i title executor[i], \
     for [i = 1:2] "$csv/overhead.csv" skip 1 \
       using (strcol(1) eq executor[i] && \$2 == 0 ? 1 : NaN):5:(8191):(0) \
       with vectors nohead lt i dt 2 lw 1.5 title executor[i] . ", chunksize 0 (automatic)"
EOF
  drawn+=("$png/overhead.png")
else
  echo "plot.sh: $csv/overhead.csv not found; overhead.png not drawn" >&2
fi

# One bar per (measurement, anchor), from 1x (parity) to how many times better ours is, on a log
# scale: right of the line ours wins, left it loses. The goal, restated as a speed-up over that
# anchor, is a black mark. Rows whose anchor is the serial loop are in scaling.png instead.
anchors=()
for name in anchors_thread anchors_process anchors_mpi; do
  [[ -f $csv/$name.csv ]] && anchors+=("$csv/$name.csv")
done
if ((${#anchors[@]} > 0)); then
  bars=$csv/anchors.dat
  awk -F, -v OFS='\t' '
    FNR == 1 {
      if (FILENAME ~ /mpi/) { pool = "MPI ranks"; colour = 3 }
      else if (FILENAME ~ /process/) { pool = "processes"; colour = 2 }
      else { pool = "threads"; colour = 1 }
      next
    }
    $2 == "serial loop" { next }
    {
      what = $1
      sub(/[:;].*/, "", what)
      gsub(/_/, " ", what)
      anchor = $2
      gsub(/;/, ",", anchor)
      print pool ": " what " vs " anchor, $6, $7, colour
    }' "${anchors[@]}" >"$bars"
  rows=$(wc -l <"$bars")
  height=$((120 + 26 * rows))
  gnuplot <<EOF
$common
set terminal pngcairo size 1100,$height font "DejaVu Sans,10" noenhanced
set output "$png/anchors.png"
set title "cfutures against each anchor, measured in the same run\ntimes better (log scale): right of 1x cfutures is faster, left of it slower"
set logscale x 10
set xrange [0.1:1000]
set format x "%gx"
set xtics add ("1x" 1)
set yrange [$rows - 0.3:-0.7]
set ytics scale 0
set grid x
set key top right
set style fill solid 0.85 noborder
set datafile separator "\t"
plot "$bars" using (1):(\$0):(\$2 < 1 ? \$2 : 1):(\$2 > 1 ? \$2 : 1):(\$0 - 0.35):(\$0 + 0.35):(\$4):ytic(1) \
       with boxxyerror lc variable notitle, \
     "" using (\$2):(\$0):(sprintf(" %.3gx", \$2)) with labels left font ",9" notitle, \
     "" using (\$3 > 0 ? \$3 : NaN):(\$0) with points pt 2 ps 1.5 lc rgb "black" title "goal", \
     NaN with boxes lc 1 title "ThreadPoolExecutor", NaN with boxes lc 2 title "ProcessPoolExecutor", \
     NaN with boxes lc 3 title "MPIPoolExecutor"
EOF
  drawn+=("$png/anchors.png")
else
  echo "plot.sh: no anchors_*.csv in $csv; anchors.png not drawn" >&2
fi

for file in "${drawn[@]}"; do echo "plot.sh: wrote $file"; done
