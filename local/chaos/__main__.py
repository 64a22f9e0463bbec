"""``python -m local.chaos [--scenarios N] [--first SEED] [--jobs J] [--seed SEED] [--verbose]`` (``make chaos``).

Plays scenarios ``first .. first+N-1`` (one scenario each seed, spread over ``J`` processes, default one per core)
and prints the table; ``--seed`` replays one, with its steps printed (``--verbose``: and the product's log).
Exits 1 when any scenario failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from local.chaos import plan
from local.chaos.report import failures, table
from local.chaos.runner import Outcome, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", type=int, default=500, help="how many scenarios (default 500)")
    parser.add_argument("--first", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes (default: one per core)")
    parser.add_argument("--seed", type=int, help="replay this one scenario, printing its steps")
    parser.add_argument("--verbose", action="store_true", help="the product's log too (INFO)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.CRITICAL, format="%(name)s: %(message)s")
    seeds = range(args.seed, args.seed + 1) if args.seed is not None else range(args.first, args.first + args.scenarios)
    if args.seed is not None:
        for step in plan.generate(args.seed).steps:
            print(f"  {step}")
    started = time.perf_counter()
    outcomes: list[Outcome] = []
    jobs = max(1, min(args.jobs, len(seeds)))
    if jobs == 1:
        outcomes = [run(seed) for seed in seeds]
    else:
        with ProcessPoolExecutor(jobs, initializer=_quiet, initargs=(args.verbose,)) as pool:
            for n, outcome in enumerate(pool.map(run, seeds, chunksize=10), 1):
                outcomes.append(outcome)
                if n % 500 == 0:
                    print(f"... {n} scenarios", file=sys.stderr, flush=True)
    print(table(outcomes, time.perf_counter() - started))
    failed = failures(outcomes)
    if failed:
        print(failed)
        return 1
    return 0


def _quiet(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.CRITICAL, format="%(name)s: %(message)s")


if __name__ == "__main__":
    raise SystemExit(main())
