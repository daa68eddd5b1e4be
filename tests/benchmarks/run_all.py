"""Run every benchmark and print one Markdown table per benchmark.

    python -m tests.benchmarks.run_all [--quick] [--only b1,b3,...]

The machine (CPU, cores, library versions, theanine's modes) is printed first.
"""

from __future__ import annotations

import importlib
import sys
import time

from tests.benchmarks.common import machine_header, markdown_table

BENCHMARKS = [
    ("b1", "tests.benchmarks.bench_b1_call_overhead"),
    ("b2", "tests.benchmarks.bench_b2_elementwise"),
    ("b2b", "tests.benchmarks.bench_b2b_theano_paper"),
    ("b3", "tests.benchmarks.bench_b3_mlp"),
    ("b6", "tests.benchmarks.bench_b6_compile_time"),
    ("b7", "tests.benchmarks.bench_b7_churn_step"),
    ("b8", "tests.benchmarks.bench_b8_cnn"),
    ("b9", "tests.benchmarks.bench_b9_rnn"),
    ("b10", "tests.benchmarks.bench_b10_lstm"),
]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    quick = "--quick" in argv
    only = None
    for i, a in enumerate(argv):
        if a == "--only" and i + 1 < len(argv):
            only = {s.strip().lower() for s in argv[i + 1].split(",")}
        elif a.startswith("--only="):
            only = {s.strip().lower() for s in a.split("=", 1)[1].split(",")}
    print(f"# theanine benchmarks{' (quick)' if quick else ''}\n")
    print(machine_header())
    start = time.perf_counter()
    for key, modname in BENCHMARKS:
        if only is not None and key not in only:
            continue
        t0 = time.perf_counter()
        module = importlib.import_module(modname)
        rows = module.run(quick)
        print(markdown_table(rows, **module.TABLE))
        print(f"_{key}: {time.perf_counter() - t0:.1f} s_\n", flush=True)
    print(f"_total: {time.perf_counter() - start:.1f} s_")


if __name__ == "__main__":
    main()
