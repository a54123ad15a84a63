"""`make bench`: every benchmark, one after another, on this machine.

python -m benchmarks.run_all [--quick]    # --quick: spot checks in under 10 minutes

Writes every result to benchmarks/results/ (JSON and markdown), then summary.json (the ratios
issue 10 set targets for) and the charts.
"""

from __future__ import annotations

import argparse
import time

from benchmarks import accuracy, core_ops, memory, offline, phases, plots, sink, summary


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    started = time.time()
    flags = ["--quick"] if args.quick else []
    offline.main(flags)
    core_ops.main(flags)
    sink.main()
    phases.main(flags)  # the stage profile the docs block shows
    if not args.quick:  # training runs and the 49 MP image: minutes each, not spot checks
        accuracy.main(flags)
        memory.main([])
    summary.main(flags + ([] if args.quick else ["--readme"]))
    plots.main(flags)
    print(f"\nAll benchmarks took {time.time() - started:.0f} s; results in benchmarks/results/.")


if __name__ == "__main__":
    main()
