"""Offline throughput and memory: ImageAugment's Beam pipeline against its floor, a
hand-written tf.data script, a peer (albumentations + OpenCV in a process pool) and two
references, on real-image workloads, in one run on one machine.

    python -m benchmarks.offline [--quick] [--repeats 3]

Each configuration runs in a fresh process (the `image-augment` CLI, the hand-written script,
`benchmarks/peer_albumentations.py` with 1 and 2 processes, or `benchmarks/references.py`: Beam
reading and writing the records untouched, and a parallel tf.data decode+encode of every image)
on the same input files, `--repeats` times, interleaved. Throughput is augmented copies written
per second of the expansion (the Beam pipeline alone, not the model export; the peer's: its
pool's work, imports done); peak memory is the process's max RSS (for the peer, its largest
process). The full run adds the in-memory configuration at 10x fewer inputs, for memory against
dataset size. The peer needs benchmarks/requirements-peer.txt (`make bench` installs it).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks import workloads
from benchmarks.common import write_results

COPIES = 4
BEAM_CONFIGS = {
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


def _measure(command: list[str]) -> tuple[str, float, float]:
    """(combined output, peak RSS MiB of the command's largest process, cores it kept busy: CPU
    seconds of its whole process tree over its wall-clock seconds)."""
    wrapped = [
        sys.executable,
        "-c",
        (
            "import os, resource, subprocess, sys, time\n"
            "started = time.perf_counter()\n"
            "code = subprocess.call(sys.argv[1:])\n"
            "wall = time.perf_counter() - started\n"
            "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
            "print(f'PEAK_RSS_KB {usage.ru_maxrss}', file=sys.stderr)\n"
            "print(f'CORES_BUSY {(usage.ru_utime + usage.ru_stime) / wall:.3f}', file=sys.stderr)\n"
            "sys.exit(code)\n"
        ),
        *command,
    ]
    result = subprocess.run(wrapped, capture_output=True, text=True, cwd=workloads.PROJECT_ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed:\n{result.stderr[-3000:]}")
    rss_kb = int(result.stderr.rsplit("PEAK_RSS_KB", 1)[1].split()[0])
    cores = float(result.stderr.rsplit("CORES_BUSY", 1)[1].split()[0])
    return result.stdout + result.stderr, rss_kb / 1024.0, cores


def run_ours(pattern: str, output: pathlib.Path, policy: str, beam_args: list[str]) -> dict:
    command = [
        sys.executable,
        "-m",
        "tfx_image_augment.cli.commands",
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
    _, peak, cores = _measure(command)
    summary = json.loads((output / "augment_summary.json").read_text())
    return {
        "items": summary["copies_written"],
        "seconds": summary["expansion_seconds"],
        "peak_rss_mib": round(peak),
        "cores_busy": cores,
    }


def _run_script(module_and_args: list[str], marker: str) -> dict:
    """Runs a benchmark script (`python -m ...`) that prints `<marker> <items> <seconds>`."""
    out, peak, cores = _measure([sys.executable, "-m", *module_and_args])
    line = next(x for x in out.splitlines() if x.startswith(marker + " "))
    items, seconds = line.split()[1:]
    return {
        "items": int(items),
        "seconds": float(seconds),
        "peak_rss_mib": round(peak),
        "cores_busy": cores,
    }


def run_handwritten(pattern: str, output: pathlib.Path) -> dict:
    args = ["benchmarks.handwritten_tfdata", pattern, str(output), str(COPIES)]
    return _run_script(args, "HANDWRITTEN")


def run_peer(pattern: str, output: pathlib.Path, processes: int) -> dict:
    args = ["benchmarks.peer_albumentations", pattern, str(output), str(COPIES)]
    return _run_script([*args, "--processes", str(processes)], "PEER")


OURS = "ours, in-memory"
MP1 = "ours, multi-processing 1 worker"
MP2 = "ours, multi-processing 2 workers"
FLOOR = "floor: empty policy, in-memory"
HANDWRITTEN = "hand-written tf.data + Keras 3 layers"
PEER1 = "peer: albumentations + OpenCV, 1 process"
PEER2 = "peer: albumentations + OpenCV, 2 processes"
# Our configurations (the empty-policy floor is not one: it augments nothing) and the peer's:
# summary.py sets the best of each against the other.
OUR_CONFIGS = (OURS, MP1, MP2)
PEER_CONFIGS = (PEER1, PEER2)
PEER_REQUIREMENTS = "benchmarks/requirements-peer.txt"
BEAM_COPY = "reference: Beam read+write, no parse"
CODEC = "reference: decode+encode, parallel tf.data"
# What each configuration counts per second.
UNITS = {BEAM_COPY: "records/s", CODEC: "images/s"}


def runners() -> dict:
    """Configuration name -> run(pattern, output folder) -> {items, seconds, peak_rss_mib}."""
    return {
        OURS: lambda p, o: run_ours(p, o, "standard", BEAM_CONFIGS[OURS]),
        MP1: lambda p, o: run_ours(p, o, "standard", BEAM_CONFIGS[MP1]),
        MP2: lambda p, o: run_ours(p, o, "standard", BEAM_CONFIGS[MP2]),
        FLOOR: lambda p, o: run_ours(p, o, "none", BEAM_CONFIGS[OURS]),
        HANDWRITTEN: run_handwritten,
        PEER1: lambda p, o: run_peer(p, o, 1),
        PEER2: lambda p, o: run_peer(p, o, 2),
        BEAM_COPY: lambda p, o: _run_script(
            ["benchmarks.references", "beam-copy", p, str(o)], "REFERENCE"
        ),
        CODEC: lambda p, o: _run_script(["benchmarks.references", "codec", p], "REFERENCE"),
    }


def spread(values: list[float]) -> dict:
    """median, min and max of repeated measurements."""
    return {
        "median": round(statistics.median(values), 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
    }


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--only", nargs="+", metavar="CONFIG", help="run these configurations only (exact names)"
    )
    parser.add_argument(
        "--name", help="results file name (default offline or offline_quick), e.g. for a before run"
    )
    args = parser.parse_args(argv)
    peer_wanted = not args.only or any(name in args.only for name in PEER_CONFIGS)
    missing = [m for m in ("albumentations", "cv2") if importlib.util.find_spec(m) is None]
    if peer_wanted and missing:
        raise SystemExit(
            f"The peer rows need {', '.join(missing)}: `make bench` installs them, or "
            f"`{sys.executable} -m pip install -c constraints.txt -r {PEER_REQUIREMENTS}` "
            "(never a dependency of the package); or leave the peer out with --only."
        )
    started = time.time()
    cores = os.cpu_count() or 1
    sizes = {
        "32x32 PNG": 4000 if args.quick else 20000,
        "224x224 JPEG": 400 if args.quick else 2000,
    }
    measured: dict[tuple[str, int, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        inputs = {
            ("32x32 PNG", sizes["32x32 PNG"]): workloads.cifar_png(root / "in", sizes["32x32 PNG"]),
            ("224x224 JPEG", sizes["224x224 JPEG"]): workloads.photo_jpeg(
                root / "in", sizes["224x224 JPEG"]
            ),
        }
        if not args.quick:  # memory against dataset size: the same workload at 10x fewer inputs
            inputs[("32x32 PNG", 2000)] = workloads.cifar_png(root / "in", 2000)
        # Repeats interleave the configurations, so a slow minute of the machine spreads over
        # all of them instead of sinking one.
        for repeat in range(args.repeats):
            for (workload, count), pattern in inputs.items():
                configs = runners() if count == sizes[workload] else {OURS: runners()[OURS]}
                if args.quick:  # the quick run must stay under 10 min; the ratios take the
                    configs.pop(MP1, None)  # best row of each side that ran
                    configs.pop(PEER1, None)
                if args.only:
                    configs = {k: v for k, v in configs.items() if k in args.only}
                for name, run in configs.items():
                    output = root / "out"
                    result = run(pattern, output)
                    shutil.rmtree(output, ignore_errors=True)
                    measured.setdefault((workload, count, name), []).append(result)
                    rate = result["items"] / result["seconds"]
                    print(
                        f"[{repeat + 1}/{args.repeats}] {workload} x{count} {name}: "
                        f"{rate:,.0f}/s, {result['peak_rss_mib']} MiB",
                        file=sys.stderr,
                    )
    rows = []
    for (workload, count, name), results in measured.items():
        rates = [r["items"] / r["seconds"] for r in results]
        rows.append(
            {
                "workload": workload,
                "inputs": count,
                "config": name,
                "unit": UNITS.get(name, "copies/s"),
                "items": results[0]["items"],
                "per_second": spread(rates),
                "per_second_per_core": round(statistics.median(rates) / cores),
                "peak_rss_mib": spread([r["peak_rss_mib"] for r in results]),
                "cores_busy": round(statistics.median(r["cores_busy"] for r in results), 2),
                "cores_busy_repeats": [round(r["cores_busy"], 2) for r in results],
                "repeats": [round(x, 1) for x in rates],
            }
        )
    write_results(
        args.name or "offline" + ("_quick" if args.quick else ""),
        rows,
        table(rows),
        "python -m benchmarks.offline" + (" --quick" if args.quick else ""),
        started,
    )
    return rows


def _cell(spread_: dict, digits: int = 0) -> str:
    return (
        f"{spread_['median']:,.{digits}f} ({spread_['min']:,.{digits}f}-"
        f"{spread_['max']:,.{digits}f})"
    )


def table(rows: list[dict]) -> str:
    lines = [
        "Each figure: median (min-max) of the repeats, each repeat a fresh process.",
        "",
        "Cores busy: CPU seconds of the whole process tree over its wall-clock seconds (start-up"
        " and export included), the median repeat's.",
        "",
        "| workload | inputs | configuration | per second | unit | per core | cores busy |"
        " peak RSS MiB |",
        "|---|---:|---|---:|---|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['workload']} | {row['inputs']:,} | {row['config']} | "
            f"{_cell(row['per_second'])} | {row['unit']} | {row['per_second_per_core']:,} | "
            f"{row['cores_busy']:.2f} | {_cell(row['peak_rss_mib'])} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
