"""Offline throughput and memory: ImageAugment's Beam pipeline against the floor and against a
hand-written tf.data script, on real-image workloads, in one run on one machine.

    python -m benchmarks.offline [--quick]

Each configuration runs in a fresh process (the `image-augment` CLI, or the hand-written script)
on the same input files. Throughput is augmented copies written per second of the expansion
(the Beam pipeline alone, not the model export); peak memory is the process's max RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

from benchmarks import workloads
from benchmarks.common import write_results

COPIES = 4
CONFIGS = {
    "ours, in-memory": ["--direct_num_workers=1"],
    "ours, multi-processing 1 worker": [
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=1",
    ],
    "ours, multi-processing 2 workers": [
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=2",
    ],
}


def _measure(command: list[str]) -> tuple[str, float]:
    """(combined output, peak RSS MiB of the command's process tree's largest process)."""
    wrapped = [
        sys.executable,
        "-c",
        (
            "import os, resource, subprocess, sys\n"
            "code = subprocess.call(sys.argv[1:])\n"
            "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
            "print(f'PEAK_RSS_KB {rss}', file=sys.stderr)\n"
            "sys.exit(code)\n"
        ),
        *command,
    ]
    result = subprocess.run(wrapped, capture_output=True, text=True, cwd=workloads.PROJECT_ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed:\n{result.stderr[-3000:]}")
    rss_kb = int(result.stderr.rsplit("PEAK_RSS_KB", 1)[1].split()[0])
    return result.stdout + result.stderr, rss_kb / 1024.0


def run_ours(pattern: str, output: pathlib.Path, policy: str, beam_args: list[str]) -> dict:
    command = [
        sys.executable,
        "-m",
        "tfx_image_augment.cli",
        "run",
        "--input",
        pattern,
        "--output",
        str(output),
        "--policy",
        policy,
        "--copies",
        str(COPIES),
        "--seed",
        "1",
        "--key-feature",
        "id",
        "--",
        *beam_args,
    ]
    _, peak = _measure(command)
    summary = json.loads((output / "augment_summary.json").read_text())
    return {
        "copies": summary["copies_written"],
        "seconds": summary["expansion_seconds"],
        "peak_rss_mib": round(peak),
    }


def run_handwritten(pattern: str, output: pathlib.Path) -> dict:
    command = [
        sys.executable,
        "-m",
        "benchmarks.handwritten_tfdata",
        pattern,
        str(output),
        str(COPIES),
    ]
    out, peak = _measure(command)
    line = next(x for x in out.splitlines() if x.startswith("HANDWRITTEN "))
    written, seconds = line.split()[1:]
    return {"copies": int(written), "seconds": float(seconds), "peak_rss_mib": round(peak)}


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    started = time.time()
    cores = os.cpu_count() or 1
    sizes = {
        "32x32 PNG": 4000 if args.quick else 20000,
        "224x224 JPEG": 400 if args.quick else 2000,
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        inputs = {
            "32x32 PNG": workloads.cifar_png(root / "in", sizes["32x32 PNG"]),
            "224x224 JPEG": workloads.photo_jpeg(root / "in", sizes["224x224 JPEG"]),
        }
        for workload, pattern in inputs.items():
            results = {}
            for name, beam_args in CONFIGS.items():
                results[name] = run_ours(
                    pattern, root / f"out_{len(rows)}_{name[-8:]}", "standard", beam_args
                )
                print(workload, name, results[name], file=sys.stderr)
            results["floor: empty policy, in-memory"] = run_ours(
                pattern, root / f"floor_{len(rows)}", "none", CONFIGS["ours, in-memory"]
            )
            results["hand-written tf.data + Keras 3 layers"] = run_handwritten(
                pattern, root / f"hand_{len(rows)}"
            )
            for name, result in results.items():
                rate = result["copies"] / result["seconds"]
                rows.append(
                    {
                        "workload": workload,
                        "inputs": sizes[workload],
                        "config": name,
                        **result,
                        "images_per_s": round(rate),
                        "images_per_s_per_core": round(rate / cores),
                    }
                )
            print(rows[-1], file=sys.stderr)
    if not args.quick:  # memory against dataset size, at 10x fewer inputs
        with tempfile.TemporaryDirectory() as tmp:
            root = pathlib.Path(tmp)
            small = workloads.cifar_png(root / "in", 2000)
            result = run_ours(small, root / "mem_small", "standard", CONFIGS["ours, in-memory"])
            rows.append(
                {
                    "workload": "32x32 PNG",
                    "inputs": 2000,
                    "config": "ours, in-memory",
                    "main": False,
                    **result,
                    "images_per_s": round(result["copies"] / result["seconds"]),
                    "images_per_s_per_core": round(result["copies"] / result["seconds"] / cores),
                }
            )
    write_results(
        "offline" + ("_quick" if args.quick else ""),
        rows,
        table(rows),
        "python -m benchmarks.offline" + (" --quick" if args.quick else ""),
        started,
    )
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| workload | inputs | configuration | copies/s | per core | peak RSS MiB |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['workload']} | {row['inputs']:,} | {row['config']} | "
            f"{row['images_per_s']:,} | {row['images_per_s_per_core']:,} | "
            f"{row['peak_rss_mib']:,} |"
        )
    lines.append("")
    lines.append("| workload | ours / floor | ours / hand-written | 2 workers / 1 worker |")
    lines.append("|---|---:|---:|---:|")
    main_runs = [r for r in rows if r.get("main", True)]
    for workload in dict.fromkeys(r["workload"] for r in main_runs):
        by = {r["config"]: r["images_per_s"] for r in main_runs if r["workload"] == workload}
        ours = by["ours, in-memory"]
        scaling = by["ours, multi-processing 2 workers"] / by["ours, multi-processing 1 worker"]
        lines.append(
            f"| {workload} | {ours / by['floor: empty policy, in-memory']:.2f} | "
            f"{ours / by['hand-written tf.data + Keras 3 layers']:.2f} | "
            f"{scaling:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
