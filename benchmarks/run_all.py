"""`make bench`: every benchmark, one after another, on this machine.

python -m benchmarks.run_all [--quick]    # --quick: spot checks in under 10 minutes
"""

from __future__ import annotations

import argparse
import time

from benchmarks import accuracy, core_ops, memory, offline


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    started = time.time()
    flags = ["--quick"] if args.quick else []
    offline.main(flags)
    core_ops.main(flags)
    accuracy.main(flags)
    memory.main()  # three CLI runs, under two minutes: no quick variant
    print(f"\nAll benchmarks took {time.time() - started:.0f} s; results in benchmarks/results/.")


if __name__ == "__main__":
    main()
