"""Every ratio issue 10 sets a target for, under a stable name, from one run's results.

    python -m benchmarks.summary [--quick] [--readme]

Reads `offline.json` and `core_ops.json` (or their `_quick` variants) from benchmarks/results/
and writes `summary.json` (or `summary_quick.json`) and a markdown table. Each ratio pairs
repeat i of the numerator with repeat i of the denominator (they ran side by side) and reports
the median and the spread of those pairs. The quick run has no memory-scaling run and only a
few single ops, so two ratios are absent there. `--readme` (or `--docs`: the block moved from the
README to the docs; the flag keeps its name) rewrites the benchmark block of docs/benchmarks.md
(between its BENCHMARKS markers) from these results, and from `phases.json` the stage profile
at 224 px when it has one, so the published figures are always a run's.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import statistics

from benchmarks.common import RESULTS_DIR, machine
from benchmarks.memory import scaling_ratios
from benchmarks.offline import CODEC, FLOOR, HANDWRITTEN, OUR_CONFIGS, OURS, PEER_CONFIGS
from benchmarks.workloads import PROJECT_ROOT

# name -> (comparison, target, before this work (issue 10's "now"; "-" for a figure set after
# it), what it is). "Best" is the configuration with the highest median copies/s at that size.
TARGETS = {
    "offline_224_over_peer": (
        ">=",
        1.0,
        "-",
        "224 px `standard` copies/s, our best configuration / the peer's best (albumentations +"
        " OpenCV, 1 or 2 processes); moonshot 1.5",
    ),
    "offline_32_over_peer": (
        ">=",
        1.0,
        "-",
        "32 px `standard` copies/s, our best configuration / the peer's best",
    ),
    "offline_224_over_handwritten": (
        ">=",
        3.0,
        "1.17-1.40",
        "224 px `standard` copies/s (in-memory) / hand-written tf.data + Keras 3 copies/s",
    ),
    "floor_224_over_codec": (
        ">=",
        0.7,
        "0.19-0.25",
        "224 px empty-policy copies/s / plain decode+encode images/s (parallel tf.data)",
    ),
    "online_standard_over_keras_32": (
        ">=",
        1.5,
        "0.58-0.70",
        "online `standard` img/s / the Keras 3 chain, 32 px",
    ),
    "online_standard_over_keras_224": (
        ">=",
        1.5,
        "1.79-2.17",
        "online `standard` img/s / the Keras 3 chain, 224 px",
    ),
    "online_min_single_op_over_keras": (
        ">=",
        0.8,
        "0.09",
        "the lowest single op with a Keras 3 counterpart, ours / Keras, 32 and 224 px",
    ),
    "cores_busy_best_offline": (
        ">=",
        1.8,
        "-",
        "cores busy (of 2) of our best 224 px configuration: CPU seconds of its process tree /"
        " wall-clock seconds",
    ),
    "rss_20k_over_2k": (
        "<=",
        1.15,
        "1.31",
        "peak RSS at 20,000 inputs / at 2,000 (32 px, in-memory)",
    ),
    "rss_12k_over_1k_224": (
        "<=",
        1.15,
        "2.21 (1,720 / 779 MiB here; issue 19: 2.09)",
        "peak RSS at 12,000 inputs / at 1,000 (224 px JPEG, empty policy, K=4, in-memory)",
    ),
    "rss_12k_over_1k_224_balanced": (
        "<=",
        1.15,
        "1.32 at 6,000 / 1,000 (1,262 / 959 MiB)",
        "the same with classes balanced (`--balance equal`): the class counts read the input again",
    ),
}


def _paired(numerator: list[float], denominator: list[float]) -> dict:
    ratios = [a / b for a, b in zip(numerator, denominator, strict=True)]
    return {
        "median": round(statistics.median(ratios), 2),
        "min": round(min(ratios), 2),
        "max": round(max(ratios), 2),
    }


def ratios(offline: dict, core_ops: dict, memory: dict | None = None) -> dict:
    found: dict[str, dict] = {}
    scaling = (memory or {}).get("scaling", {})
    for name, value in scaling_ratios(scaling.get("rows", [])).items():
        if name in TARGETS:  # one run each: no spread
            found[name] = {"median": value, "min": value, "max": value, "inputs": [1000, 12000]}
    if offline:
        rows = offline["rows"]
        main_inputs = {
            w: max(r["inputs"] for r in rows if r["workload"] == w)
            for w in {r["workload"] for r in rows}
        }

        def rates(workload: str, config: str, inputs: int | None = None) -> list[float]:
            inputs = inputs or main_inputs[workload]
            (row,) = [
                r
                for r in rows
                if r["workload"] == workload and r["config"] == config and r["inputs"] == inputs
            ]
            return row["repeats"]

        def best(workload: str, configs: tuple[str, ...]) -> dict | None:
            """The row of `configs` with the highest median at the workload's main size."""
            present = [
                r
                for r in rows
                if r["workload"] == workload
                and r["config"] in configs
                and r["inputs"] == main_inputs[workload]
            ]
            return max(present, key=lambda r: r["per_second"]["median"], default=None)

        small, large = "32x32 PNG", "224x224 JPEG"
        for size, workload in ((224, large), (32, small)):
            ours, peer = best(workload, OUR_CONFIGS), best(workload, PEER_CONFIGS)
            if ours and peer:
                found[f"offline_{size}_over_peer"] = {
                    **_paired(ours["repeats"], peer["repeats"]),
                    "ours": ours["config"],
                    "peer": peer["config"],
                }
        found["offline_224_over_handwritten"] = _paired(
            rates(large, OURS), rates(large, HANDWRITTEN)
        )
        found["floor_224_over_codec"] = _paired(rates(large, FLOOR), rates(large, CODEC))
        ours = best(large, OUR_CONFIGS)
        if ours:
            busy = ours.get("cores_busy_repeats") or [ours["cores_busy"]]  # older results: median
            found["cores_busy_best_offline"] = {
                "median": ours["cores_busy"],
                "min": min(busy),
                "max": max(busy),
                "config": ours["config"],
            }
        rss = {
            r["inputs"]: r["peak_rss_mib"]
            for r in rows
            if r["workload"] == small and r["config"] == OURS
        }
        if len(rss) == 2:
            few, many = sorted(rss)
            found["rss_20k_over_2k"] = {
                "median": round(rss[many]["median"] / rss[few]["median"], 2),
                "min": round(rss[many]["min"] / rss[few]["max"], 2),
                "max": round(rss[many]["max"] / rss[few]["min"], 2),
                "inputs": [few, many],
            }
    if core_ops:
        by = {(r["size"], r["op"]): r for r in core_ops["rows"]}
        for size in (32, 224):
            if (size, "standard") in by and by[(size, "standard")]["ratio"]:
                found[f"online_standard_over_keras_{size}"] = by[(size, "standard")]["ratio"]
        singles = [r for r in core_ops["rows"] if r["op"] != "standard" and r["ratio"]]
        if singles and not core_ops["command"].endswith("--quick"):
            worst = min(singles, key=lambda r: r["ratio"]["median"])
            found["online_min_single_op_over_keras"] = {
                **worst["ratio"],
                "op": worst["op"],
                "size": worst["size"],
            }
    return found


def _met(name: str, value: dict) -> bool:
    comparison, target = TARGETS[name][:2]
    return value["median"] >= target if comparison == ">=" else value["median"] <= target


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--readme",
        "--docs",
        dest="readme",
        action="store_true",
        help="rewrite the benchmark block of docs/benchmarks.md (it was the README's)",
    )
    args = parser.parse_args(argv)
    suffix = "_quick" if args.quick else ""

    def load(name: str) -> dict:
        path = RESULTS_DIR / f"{name}{suffix}.json"
        return json.loads(path.read_text()) if path.exists() else {}

    offline, core_ops, memory = load("offline"), load("core_ops"), load("memory")
    found = ratios(offline, core_ops, memory)
    summary = {
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "sources": {
            "offline": offline.get("command"),
            "core_ops": core_ops.get("command"),
            "memory": memory.get("command"),
        },
        "ratios": {
            name: {
                **found[name],
                "target": f"{TARGETS[name][0]} {TARGETS[name][1]}",
                "met": _met(name, found[name]),
                "before": TARGETS[name][2],
            }
            for name in TARGETS
            if name in found
        },
    }
    (RESULTS_DIR / f"summary{suffix}.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [
        "| figure | name in summary.json | before | now: median (min-max) | target | met |",
        "|---|---|---:|---:|---:|---|",
    ]
    for name, (comparison, target, before, what) in TARGETS.items():
        if name not in found:
            continue
        value = found[name]
        extra = ""
        if "op" in value:
            extra = f" ({value['op']}, {value['size']} px)"
        elif "peer" in value:
            extra = f" ({value['ours']} / {value['peer']})"
        elif "config" in value:
            extra = f" ({value['config']})"
        lines.append(
            f"| {what}{extra} | `{name}` | {before} | "
            f"{value['median']:.2f} ({value['min']:.2f}-{value['max']:.2f}) | "
            f"{comparison} {target} | {'yes' if _met(name, value) else 'no'} |"
        )
    table = "\n".join(lines)
    (RESULTS_DIR / f"summary{suffix}.md").write_text(
        f"Command: `python -m benchmarks.summary{' --quick' if args.quick else ''}` "
        f"(from `{offline.get('command')}`, `{core_ops.get('command')}` and "
        f"`{memory.get('command')}`), "
        f"{summary['date']}.\n\n{table}\n"
    )
    print(table)
    if args.readme:
        update_readme(summary, table, offline, core_ops, load("phases"))
    return summary


# The page that holds the BENCHMARKS block (it moved there from README.md).
BENCHMARKS_PAGE = PROJECT_ROOT / "docs" / "benchmarks.md"
README_BLOCK = re.compile(
    r"(<!-- BENCHMARKS:BEGIN.*?-->\n)(.*?)(<!-- BENCHMARKS:END -->)", re.DOTALL
)


def readme_block(
    summary: dict, table: str, offline: dict, core_ops: dict, phases: dict | None = None
) -> str:
    from benchmarks import offline as offline_benchmark

    facts = summary["machine"]
    lines = [
        f"Summarised {summary['date']} from `{offline['command']}` and `{core_ops['command']}` "
        f"(by `python -m benchmarks.summary --readme`; `make bench` runs them all) "
        f"on {facts['cores']} cores ({facts['cpu']}), TensorFlow {facts['tensorflow']}, Beam "
        f"{facts['apache_beam']}. Every figure is the median of 3 repeats with the slowest and "
        "fastest in brackets; ratios pair repeats that ran side by side. "
        f"`rss_12k_over_1k_224` and its `_balanced` twin are from "
        f"`{summary['sources'].get('memory')}`, one run per size. "
        "Raw data: `benchmarks/results/*.json`.",
        "",
        '**Against the targets** (`benchmarks/results/summary.json`; "before" is what issue 10 '
        "measured on the same machine kind, - for a figure set after it; the peer ratios set our "
        "best configuration against the peer's best; `cores_busy_best_offline` counts cores, "
        "not a ratio):",
        "",
        table,
        "",
        "**Offline** (K=4, `standard`, copies written per second of the Beam expansion; CIFAR-10's "
        "sample tiled to PNG records, and 224x224 JPEG crops of scikit-learn's photos; the peer "
        "rows are `benchmarks/peer_albumentations.py`, albumentations + OpenCV in a process pool, "
        "per second of its pool's work):",
        "",
        offline_benchmark.table(
            [
                r
                for r in offline["rows"]
                if r["inputs"]
                == max(x["inputs"] for x in offline["rows"] if x["workload"] == r["workload"])
            ]
        ),
        "",
        "![offline throughput](benchmarks/results/throughput.png)",
        "",
        "**Online** (`ImageAugmentation` in one `tf.data` map, batch 128, on the CPU):",
        "",
        "| size | `standard` img/s | Keras 3 chain img/s | ours / Keras |",
        "|---|---:|---:|---:|",
    ]
    for row in core_ops["rows"]:
        if row["op"] == "standard":
            lines.append(
                f"| {row['size']} | {_cell(row['ours'])} | {_cell(row['keras3'])} | "
                f"{_cell(row['ratio'], 2)} |"
            )
    lines.append("")
    lines.append("Every op: `benchmarks/results/core_ops.md`.")
    if phases and phases.get("stages_224"):
        lines += [
            "",
            f"**Where the 224 px time goes** (`{phases['command']}`, "
            f"{phases.get('date', 'undated')}; per-copy phases without Beam: "
            "`benchmarks/results/phases.md`):",
            "",
            stage_table(phases["stages_224"]),
        ]
    return "\n".join(lines) + "\n"


def stage_table(stages: list[dict]) -> str:
    """The stage profile of `python -m benchmarks.phases` as markdown (phases.md, the docs
    block)."""
    lines = [
        "Microseconds (wall clock) per 224x224 crop (uint8) of each stage of `standard`: ours "
        "in one core call of 64 images (the offline door's call at this size, which it splits "
        "in 4 threaded parts; TensorFlow's kernels on every core), the peer's albumentations "
        "transform image by image on the same crops (OpenCV single-threaded, as the peer runs "
        "it, one process per core): per core, the gap is about twice the ratio. Each "
        "photometric row pays its own uint8 -> float -> uint8 round trip, so the rows add up "
        "to more than the whole.",
        "",
        "| stage | ours | peer |",
        "|---|---:|---:|",
    ]
    for row in stages:
        peer = f"{row['peer_us']:,}" if "peer_us" in row else "-"
        lines.append(f"| {row['stage']} | {row['ours_us']:,} | {peer} |")
    return "\n".join(lines)


def _cell(spread: dict, digits: int = 0) -> str:
    return (
        f"{spread['median']:,.{digits}f} ({spread['min']:,.{digits}f}-{spread['max']:,.{digits}f})"
    )


def update_readme(
    summary: dict, table: str, offline: dict, core_ops: dict, phases: dict | None = None
) -> None:
    path = BENCHMARKS_PAGE
    text = path.read_text()
    if not README_BLOCK.search(text):
        raise SystemExit(f"{path.name} has no <!-- BENCHMARKS:BEGIN --> ... END block to rewrite.")
    block = readme_block(summary, table, offline, core_ops, phases)
    path.write_text(README_BLOCK.sub(lambda m: m.group(1) + block + m.group(3), text))
    print(f"rewrote the benchmark block of {path.name}")


if __name__ == "__main__":
    main()
