"""mpi4py.futures.MPIPoolExecutor on static ranks, the Python half of the comparison with
cfutures' MPIPoolExecutor (bench/bench_mpi.cpp; bench/mpi_compare.py runs both alternately).
The same workloads, sizes, warm-up and output as bench_mpi, in the same order:

    mpiexec -n 3 /usr/bin/python3 -m mpi4py.futures bench/mpi4py_bench.py [--reps=N] [--quick]

Rank 0 runs this file; ranks 1 and 2 are the pool's workers (mpi4py.futures' static mode, as
bench_mpi's). The seed workloads are the articles' own Python functions (bench_mpi runs the C++
versions in demo/seeds.hpp), on a new pool, against Python's serial loop. Prints one line per
figure, "name value unit", the median of --reps samples (default 5). mpi4py's own settings are
left at their defaults (MPI4PY_FUTURES_BACKOFF and the rest). A wrong result exits with status 1.
"""
import math
import statistics
import sys
import time

from mpi4py import MPI
from mpi4py.futures import MPIPoolExecutor

PRIME_CANDIDATES = [112272535095293, 112582705942171, 112272535095293, 115280095190773,
                    115797848077099, 1099726899285419]
PRIMES_AMONG_CANDIDATES = 5
FACTORIZE_UP_TO = 200_000
FACTOR_COUNT = 699_499
GCD_PAIRS = [(1963309, 2265973), (2030677, 3814172), (1551645, 2229620), (2039045, 2020802),
             (1823712, 1924928), (2293129, 1020491), (1281238, 2273782), (3823812, 4237281),
             (3812741, 4729139), (1292391, 2123811)]
GCD_SUM = 74


def ident(x):
    return x


# The Python documentation's is_prime.
def is_prime(n):
    if n < 2:
        return False
    if n == 2:
        return True
    if n % 2 == 0:
        return False
    sqrt_n = int(math.floor(math.sqrt(n)))
    for i in range(3, sqrt_n + 1, 2):
        if n % i == 0:
            return False
    return True


# Eli Bendersky's factorize_naive.
def factorize_naive(n):
    if n < 2:
        return []
    factors = []
    p = 2
    while True:
        if n == 1:
            return factors
        r = n % p
        if r == 0:
            factors.append(p)
            n = n // p
        elif p * p >= n:
            factors.append(n)
            return factors
        elif p > 2:
            p += 2
        else:
            p += 1


# "Effective Python" item 64's gcd.
def gcd_countdown(pair):
    a, b = pair
    low = min(a, b)
    for i in range(low, 0, -1):
        if a % i == 0 and b % i == 0:
            return i
    return 0


def wrong_result(what):
    print(f"WRONG RESULT: {what}", file=sys.stderr)
    sys.exit(1)


def report(name, value, unit):
    print(f"{name} {value:.6g} {unit}", flush=True)


def throughput(ex, tasks):
    t0 = time.perf_counter()
    fs = [ex.submit(ident, i) for i in range(tasks)]
    total = sum(f.result() for f in fs)
    rate = tasks / (time.perf_counter() - t0)
    if total != tasks * (tasks - 1) // 2:
        wrong_result("throughput sum")
    return rate


def round_trip_us(ex, trips):
    us = []
    for i in range(trips):
        t0 = time.perf_counter()
        back = ex.submit(ident, i).result()
        us.append((time.perf_counter() - t0) * 1e6)
        if back != i:
            wrong_result("round trip value")
    return statistics.median(us)


def map_rate(ex, items):
    t0 = time.perf_counter()
    total = 0
    for x in ex.map(ident, items, chunksize=1000):
        total += x
    rate = len(items) / (time.perf_counter() - t0)
    n = len(items)
    if total != n * (n - 1) // 2:
        wrong_result("map sum")
    return rate


def seed_a(ex):
    if ex is None:
        primes = sum(is_prime(n) for n in PRIME_CANDIDATES)
    else:
        primes = sum(ex.map(is_prime, PRIME_CANDIDATES))
    if primes != PRIMES_AMONG_CANDIDATES:
        wrong_result("is_prime")


def seed_b(numbers):
    def run(ex):
        factors = 0
        if ex is None:
            for n in numbers:
                factors += len(factorize_naive(n))
        else:
            for f in ex.map(factorize_naive, numbers, chunksize=1000):
                factors += len(f)
        if len(numbers) == FACTORIZE_UP_TO and factors != FACTOR_COUNT:
            wrong_result("factorize")
        if factors == 0:
            wrong_result("factorize: no factors")
    return run


def seed_c(ex):
    if ex is None:
        total = sum(gcd_countdown(p) for p in GCD_PAIRS)
    else:
        total = sum(ex.map(gcd_countdown, GCD_PAIRS))
    if total != GCD_SUM:
        wrong_result("gcd")


def warm_seeds(ex):
    if not ex.submit(is_prime, 97).result():
        wrong_result("warm-up is_prime")
    if len(ex.submit(factorize_naive, 12).result()) != 3:
        wrong_result("warm-up factorize")
    if ex.submit(gcd_countdown, (12, 18)).result() != 6:
        wrong_result("warm-up gcd")


def main():
    reps = 5
    tasks, round_trips, map_items, factorize_up_to = 20_000, 1_000, 1_000_000, FACTORIZE_UP_TO
    for arg in sys.argv[1:]:
        if arg.startswith("--reps="):
            reps = max(1, int(arg[7:]))
        elif arg == "--quick":
            tasks, round_trips, map_items, factorize_up_to = 2_000, 100, 100_000, 20_000
        else:
            sys.exit("usage: mpiexec -n 3 python3 -m mpi4py.futures mpi4py_bench.py "
                     "[--reps=N] [--quick]")
    if MPI.COMM_WORLD.Get_size() != 3:
        sys.exit("mpi4py_bench: run me as mpiexec -n 3 python3 -m mpi4py.futures "
                 f"(2 worker ranks); this job has {MPI.COMM_WORLD.Get_size()}")

    items = list(range(map_items))
    warm_items = items[:map_items // 10]
    with MPIPoolExecutor() as pool:  # static mode: every other rank is a worker
        throughput(pool, tasks // 10)
        round_trip_us(pool, round_trips // 10)
        map_rate(pool, warm_items)
        report("throughput", statistics.median(throughput(pool, tasks) for _ in range(reps)),
               "tasks/s")
        report("round_trip",
               statistics.median(round_trip_us(pool, round_trips) for _ in range(reps)), "us")
        report("map_chunk1000", statistics.median(map_rate(pool, items) for _ in range(reps)),
               "items/s")

    # The seeds on a new pool, as bench_mpi does; serial and pool runs alternate.
    numbers = list(range(1, factorize_up_to + 1))
    with MPIPoolExecutor() as pool:
        warm_seeds(pool)
        for name, run in (("seed_a_is_prime", seed_a), ("seed_b_factorize", seed_b(numbers)),
                          ("seed_c_gcd", seed_c)):
            times = {None: [], pool: []}
            for r in range(reps):
                for ex in ((None, pool) if r % 2 == 0 else (pool, None)):
                    t0 = time.perf_counter()
                    run(ex)
                    times[ex].append(time.perf_counter() - t0)
            serial = statistics.median(times[None])
            parallel = statistics.median(times[pool])
            report(name + "_serial", serial, "s")
            report(name + "_mpi", parallel, "s")
            report(name + "_mpi_speedup", serial / parallel, "x")


if __name__ == "__main__":
    main()
