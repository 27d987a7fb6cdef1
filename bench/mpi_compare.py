#!/usr/bin/python3
"""cfutures' MPIPoolExecutor beside mpi4py.futures' MPIPoolExecutor, both on static ranks under
the same `mpiexec -n 3` (rank 0 measures, ranks 1 and 2 are the workers), same workloads. Prints
Markdown tables of medians, ratios and the goals of the MPI issue; with the environment variable
CFUTURES_BENCH_OUT set to a directory, also writes anchors_mpi.csv there (for the charts).

    bench/mpi_compare.py BUILD_BIN_DIR [--reps=N] [--quick]

The two programs, BUILD_BIN_DIR/bench_mpi and bench/mpi4py_bench.py (run with Debian's
/usr/bin/python3 -m mpi4py.futures), alternate N times (default 5), which one goes first
alternating too. Each run measures every workload 3 times after its warm-up (--reps=3) and
reports the medians; each figure here is the median of the N runs' medians. The seeds' speed-ups
are the median serial time over the median pool time. --quick: one run of each, one sample, a
tenth of the sizes: a smoke test whose figures mean nothing.

For each run the script also reports the CPU time other processes took while it ran (the busy
time of /proc/stat less the CPU time of the mpiexec job itself): with 2 vCPUs for 3 ranks, a busy
neighbour changes every figure.
"""
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"

GOALS = [  # name, title, unit, higher is better, goal as "times better" than mpi4py
    ("throughput", "trivial tasks: submit N, result() each", "tasks/s", True, 20),
    ("round_trip", "one task's round trip (median)", "us", False, 10),
    ("map_chunk1000", "map, chunksize 1000, 1M ints", "items/s", True, 5),
]
SEEDS = [
    ("seed_a_is_prime", "(a) is_prime x6, one task each"),
    ("seed_b_factorize", "(b) factorize 1..200000, map chunksize 1000"),
    ("seed_c_gcd", "(c) gcd_countdown x10, one task each"),
]
SEED_GOAL = 0.9  # the MPI pool's speed-up over the process pool's


def mpiexec():
    flags = ["--oversubscribe"]
    if os.geteuid() == 0:
        flags.append("--allow-run-as-root")
    return ["mpiexec", *flags, "-n", "3"]


def busy_cpu_seconds():
    """CPU time all processes have used since boot: /proc/stat's first line without idle and
    iowait."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(command):
    """Runs one program; returns its figures {name: value} and the share of the machine's CPU
    that other processes used meanwhile."""
    busy0, ours0, t0 = busy_cpu_seconds(), children_cpu_seconds(), time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True)
    busy1, ours1, t1 = busy_cpu_seconds(), children_cpu_seconds(), time.monotonic()
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        sys.exit(f"mpi_compare: {' '.join(command)} failed with status {done.returncode}")
    figures = {}
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and not line.startswith("|"):
            try:
                figures[parts[0]] = float(parts[1])
            except ValueError:
                pass
    others = max(0.0, (busy1 - busy0) - (ours1 - ours0)) / ((t1 - t0) * os.cpu_count())
    return figures, others


def times_better(ours, theirs, higher_is_better):
    if ours <= 0 or theirs <= 0:
        return 0
    return ours / theirs if higher_is_better else theirs / ours


def fmt(value):
    if value >= 1e6:
        return f"{value / 1e6:.3g}M"
    if value >= 1e3:
        return f"{value / 1e3:.3g}k"
    return f"{value:.3g}"


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    bin_dir = sys.argv[1]
    rounds, quick = 5, False
    for arg in sys.argv[2:]:
        if arg.startswith("--reps="):
            rounds = max(1, int(arg[7:]))
        elif arg == "--quick":
            quick = True
        else:
            sys.exit(__doc__)
    if quick:
        rounds = 1
    args = ["--reps=1", "--quick"] if quick else ["--reps=3"]
    ours_command = mpiexec() + [os.path.join(bin_dir, "bench_mpi"), *args]
    theirs_command = mpiexec() + [PYTHON, "-m", "mpi4py.futures",
                                  os.path.join(HERE, "mpi4py_bench.py"), *args]
    print("cfutures:", " ".join(ours_command))
    print("mpi4py:  ", " ".join(theirs_command))
    print("load average before:", " ".join(open("/proc/loadavg").read().split()[:3]))

    ours, theirs, others = [], [], []
    for r in range(rounds):
        order = [(ours_command, ours), (theirs_command, theirs)]
        if r % 2 == 1:
            order.reverse()
        for command, samples in order:
            figures, other_share = run(command)
            samples.append(figures)
            others.append(other_share)
        print(f"run {r + 1}/{rounds}: cfutures {ours[-1]['throughput']:.0f} tasks/s, "
              f"mpi4py {theirs[-1]['throughput']:.0f} tasks/s; other processes used "
              f"{100 * others[-2]:.0f}% / {100 * others[-1]:.0f}% of the CPUs", flush=True)
    print("load average after: ", " ".join(open("/proc/loadavg").read().split()[:3]))
    print(f"other processes' share of the CPUs during the runs: median "
          f"{100 * statistics.median(others):.0f}%, max {100 * max(others):.0f}%")

    def med(samples, name):
        return statistics.median(s[name] for s in samples)

    def spread(samples, name):
        return " ".join(fmt(s[name]) for s in samples)

    rows = []  # for the CSV: measurement, anchor, unit, ours, anchor value, speed-up, goal
    print(f"\nMedians of {rounds} runs of each, alternating ({' '.join(args)} each).\n")
    print("| measurement | unit | cfutures | mpi4py.futures | cfutures vs mpi4py (times better) "
          "| goal | status |")
    print("|---|---|---:|---:|---:|---|---|")
    for name, title, unit, higher, goal in GOALS:
        if quick:
            title = title.replace("1M ints", "100k ints")
        a, b = med(ours, name), med(theirs, name)
        better = times_better(a, b, higher)
        rows.append((name, "mpi4py.futures", unit, a, b, better, goal))
        print(f"| {title} | {unit} | {fmt(a)} | {fmt(b)} | {better:#.3g}x | >= {goal}x | "
              f"{'met' if better >= goal else 'MISSED'} |")

    print("\n| seed workload | cfutures serial ms | MPI pool x serial | ProcessPool(2) x serial "
          "| MPI / process | goal | status | mpi4py: Python serial s | mpi4py x serial |")
    print("|---|---:|---:|---:|---:|---|---|---:|---:|")
    for name, title in SEEDS:
        if quick:
            title = title.replace("200000", "20000")
        serial = med(ours, name + "_serial")
        mpi = serial / med(ours, name + "_mpi")
        process = serial / med(ours, name + "_process")
        py_serial = med(theirs, name + "_serial")
        py_mpi = py_serial / med(theirs, name + "_mpi")
        ratio = mpi / process
        rows.append((name, "ProcessPoolExecutor(2)", "x serial", mpi, process, ratio, SEED_GOAL))
        print(f"| {title} | {1e3 * serial:.1f} | {mpi:.2f}x | {process:.2f}x | {ratio:.2f} | "
              f">= {SEED_GOAL:.2f} | {'met' if ratio >= SEED_GOAL else 'MISSED'} | "
              f"{py_serial:.3f} | {py_mpi:.2f}x |")

    print("\nPer run (cfutures / mpi4py):")
    for name, _, unit, _, _ in GOALS:
        print(f"  {name} ({unit}): {spread(ours, name)} / {spread(theirs, name)}")
    for name, _ in SEEDS:
        print(f"  {name} serial s: {spread(ours, name + '_serial')} / "
              f"{spread(theirs, name + '_serial')}")
        print(f"  {name} MPI pool s: {spread(ours, name + '_mpi')} / "
              f"{spread(theirs, name + '_mpi')}")
        print(f"  {name} process pool s: {spread(ours, name + '_process')}")

    out_dir = os.environ.get("CFUTURES_BENCH_OUT")
    if out_dir:
        with open(os.path.join(out_dir, "anchors_mpi.csv"), "w") as out:
            out.write("measurement,anchor,unit,ours,anchor_value,speedup,goal_speedup\n")
            for row in rows:
                out.write("{},{},{},{:.6g},{:.6g},{:.4g},{:.4g}\n".format(*row))


if __name__ == "__main__":
    main()
