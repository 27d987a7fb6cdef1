#!/usr/bin/python3
"""Process pools compared in one run: cfutures' ProcessPoolExecutor (bench_process_pool) beside
CPython's concurrent.futures.ProcessPoolExecutor, multiprocessing.Pool and loky (the copy
vendored by Debian's python3-joblib), 2 workers each, same workloads. Prints a Markdown table
of medians with the goals of the process-pool issue; with the environment variable
CFUTURES_BENCH_OUT set to a directory, also writes anchors_process.csv there (for the charts).

    bench/compare.py BUILD_BIN_DIR [--reps=N] [--quick]

Python's per-task figures are rates, measured on 20,000 tasks rather than 100,000 (at its
rate that would take minutes per repetition); everything else uses the same sizes as ours.
"""
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from joblib.externals import loky


def ident(x):
    return x


def length(b):
    return len(b)


def make_bytes(n):
    return b"x" * n


def measure(reps, once):
    return statistics.median(once() for _ in range(reps))


def python_figures(make_pool, submit, pool_map, reps, scale):
    tasks = 20_000 // scale
    items = 10_000_000 // scale
    big = (64 << 20) // scale
    out = {}
    pool = make_pool()

    def get(f):
        return f.result() if hasattr(f, "result") else f.get()

    get(submit(pool, ident, 0))  # workers up

    def throughput():
        t0 = time.perf_counter()
        fs = [submit(pool, ident, i) for i in range(tasks)]
        for f in fs:
            get(f)
        return tasks / (time.perf_counter() - t0)

    def round_trip():
        rt = []
        for i in range(500):
            t0 = time.perf_counter()
            get(submit(pool, ident, i))
            rt.append((time.perf_counter() - t0) * 1e6)
        return statistics.median(rt)

    def mapped():
        t0 = time.perf_counter()
        total = sum(pool_map(pool, ident, range(items), 1000))
        assert total >= 0
        return items / (time.perf_counter() - t0)

    payload = b"x" * big

    def arg_in():
        t0 = time.perf_counter()
        get(submit(pool, length, payload))
        return big / (time.perf_counter() - t0) / 1e9

    def result_out():
        t0 = time.perf_counter()
        n = len(get(submit(pool, make_bytes, big)))
        return n / (time.perf_counter() - t0) / 1e9

    out["throughput"] = measure(reps, throughput)
    out["round_trip"] = measure(reps, round_trip)
    out["map_chunk1000"] = measure(reps, mapped)
    out["arg_64MiB"] = measure(reps, arg_in)
    out["result_64MiB"] = measure(reps, result_out)
    if hasattr(pool, "shutdown"):
        pool.shutdown()
    else:
        pool.close()
        pool.join()
    return out


def startup(method, reps):
    def once():
        t0 = time.perf_counter()
        with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context(method)) as ex:
            ex.submit(ident, 1).result()
        return (time.perf_counter() - t0) * 1e3

    return measure(reps, once)


def ours(bin_dir, args):
    run = subprocess.run([os.path.join(bin_dir, "bench_process_pool"), *args],
                         check=True, capture_output=True, text=True)
    figures = {}
    for line in run.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3:
            figures[parts[0]] = float(parts[1])
    return figures


GOALS = [  # name, unit, goal text, goal value, whether higher is better
    ("throughput", "tasks/s", ">= 200,000", 200_000, True),
    ("round_trip", "us (median)", "<= 25", 25, False),
    ("map_chunk1000", "items/s", ">= 20M", 20e6, True),
    ("arg_64MiB", "GB/s", ">= 2", 2, True),
    ("result_64MiB", "GB/s", ">= 2", 2, True),
    ("startup_fork", "ms", "<= 2", 2, False),
    ("startup_forkserver", "ms", "<= 2", 2, False),
    ("startup_spawn", "ms", "<= 10", 10, False),
    # Issue 10's goal: the FIFO ceiling of one task per number is about 1.77x.
    ("seed_a_is_prime", "x serial", ">= 1.74", 1.74, True),
    ("seed_b_factorize", "x serial", ">= 1.8", 1.8, True),
    ("seed_b_factorize_chunk1000", "x serial", ">= 1.6", 1.6, True),
    ("seed_c_gcd", "x serial", ">= 1.8", 1.8, True),
]

# Our large-value rows and the floor each is set beside (see bench_process_pool.cpp).
LARGE = [
    ("arg_64MiB", "GB/s", "floor_memcpy_warm_64MiB"),
    ("arg_64MiB", "GB/s", "floor_socketpair_64MiB"),
    ("arg_64MiB", "GB/s", "floor_memcpy_fresh_64MiB"),
    ("result_64MiB", "GB/s", "make_bytes_64MiB_local"),
    ("result_64MiB", "GB/s", "floor_memcpy_fresh_64MiB"),
    ("shared_array_pass_1GiB", "us", "round_trip"),
    ("shared_array_write_64MiB", "GB/s", "floor_memset_shared_local_64MiB"),
]


def times_better(ours_value, theirs, higher_is_better):
    """How many times better ours is than theirs (> 1: ours wins); 0 when a figure is 0."""
    if ours_value <= 0 or theirs <= 0:
        return 0
    return ours_value / theirs if higher_is_better else theirs / ours_value


def write_csv(path, mine, anchors):
    """Ours against each anchor, one row per (measurement, anchor), for bench/plot.sh.
    goal_speedup is the goal restated as a speed-up over that anchor."""
    with open(path, "w") as out:
        out.write("measurement,anchor,unit,ours,anchor_value,speedup,goal_speedup\n")
        for name, unit, _, goal, higher in GOALS:
            if name not in mine:
                continue
            for anchor, figures in anchors:
                if name not in figures:
                    continue
                value, theirs = mine[name], figures[name]
                out.write(f"{name},{anchor},{unit},{value:.6g},{theirs:.6g},"
                          f"{times_better(value, theirs, higher):.4g},"
                          f"{times_better(goal, theirs, higher):.4g}\n")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    bin_dir = sys.argv[1]
    reps = 3
    scale = 1
    for a in sys.argv[2:]:
        if a.startswith("--reps="):
            reps = max(1, int(a[7:]))
        if a == "--quick":
            scale = 10
    args = [f"--reps={reps}"] + (["--quick"] if scale > 1 else [])
    print("load average before:", " ".join(open("/proc/loadavg").read().split()[:3]))
    mine = ours(bin_dir, args)
    ppe = python_figures(lambda: ProcessPoolExecutor(2),
                         lambda p, f, *a: p.submit(f, *a),
                         lambda p, f, it, cs: p.map(f, it, chunksize=cs), reps, scale)
    mp = python_figures(lambda: multiprocessing.Pool(2),
                        lambda p, f, *a: p.apply_async(f, a),
                        lambda p, f, it, cs: p.imap(f, it, chunksize=cs), reps, scale)
    lk = python_figures(lambda: loky.get_reusable_executor(max_workers=2),
                        lambda p, f, *a: p.submit(f, *a),
                        lambda p, f, it, cs: p.map(f, it, chunksize=cs), reps, scale)
    for method in ("fork", "forkserver", "spawn"):
        ppe["startup_" + method] = startup(method, reps)
    print("load average after: ", " ".join(open("/proc/loadavg").read().split()[:3]))
    print()
    print("| measurement | unit | cfutures | CPython PPE | mp.Pool | loky | cfutures vs PPE (times better) | goal | |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, unit, goal, goal_value, higher in GOALS:
        value = mine.get(name)
        if value is None:
            continue
        cells = []
        for figures in (ppe, mp, lk):
            cells.append(f"{figures[name]:.4g}" if name in figures else "")
        ratio = ""
        if name in ppe:
            ratio = f"{times_better(value, ppe[name], higher):.1f}x"
        met = value >= goal_value if higher else value <= goal_value
        print(f"| {name} | {unit} | {value:.4g} | {' | '.join(cells)} | {ratio} | {goal} | "
              f"{'met' if met else 'MISSED'} |")
    # Large values beside this machine's floors, all from the same bench_process_pool run.
    print()
    print("| large values (bench_process_pool) | unit | cfutures | floor in the same run | "
          "cfutures / floor |")
    print("|---|---|---|---|---|")
    for name, unit, floor in LARGE:
        if name in mine and floor in mine and mine[floor] > 0:
            print(f"| {name} | {unit} | {mine[name]:.4g} | {floor} {mine[floor]:.4g} | "
                  f"{mine[name] / mine[floor]:.3g} |")
    out_dir = os.environ.get("CFUTURES_BENCH_OUT")
    if out_dir:
        write_csv(os.path.join(out_dir, "anchors_process.csv"), mine,
                  [("CPython ProcessPoolExecutor", ppe), ("multiprocessing.Pool", mp),
                   ("loky", lk)])


if __name__ == "__main__":
    main()
