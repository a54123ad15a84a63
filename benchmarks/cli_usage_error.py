"""How long `image-augment` takes to say no: usage errors answer before TensorFlow loads.

    python -m benchmarks.cli_usage_error [--repeats 5]

Times whole processes (interpreter start included) for four usage errors and writes
benchmarks/results/cli_usage_error.{json,md}. Target (issue 18): well under 2 s each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
CASES = {
    "bad setting (--copies 0)": ["run", "--input", "in/*", "--output", "out", "--copies", "0"],
    "unknown policy": ["run", "--input", "in/*", "--output", "out", "--policy", "nosuch"],
    "input matches nothing": ["run", "--input", "missing/*", "--output", "out"],
    "output is a file": ["run", "--input", "in/*", "--output", "in/data.tfrecord"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "in").mkdir()
        (Path(folder) / "in" / "data.tfrecord").write_bytes(b"")
        for name, argv in CASES.items():
            seconds = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                result = subprocess.run(
                    [sys.executable, "-m", "tfx_image_augment.cli", *argv],
                    cwd=folder,
                    capture_output=True,
                    text=True,
                )
                seconds.append(time.perf_counter() - started)
                assert result.returncode == 2, result.stderr
            rows[name] = {
                "median_s": round(statistics.median(seconds), 2),
                "max_s": round(max(seconds), 2),
            }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cli_usage_error.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["| usage error | median (s) | max (s) |", "|---|---:|---:|"]
    lines += [f"| {name} | {row['median_s']} | {row['max_s']} |" for name, row in rows.items()]
    (RESULTS / "cli_usage_error.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
