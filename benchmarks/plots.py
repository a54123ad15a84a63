"""The benchmark charts, drawn by matplotlib from the JSON results (never by hand).

    python -m benchmarks.plots [--quick]

throughput.png: offline configurations per second at both image sizes (ours, the floor, the
hand-written tf.data script and the albumentations + OpenCV peer), bars at the median of the
repeats, error bars from the slowest to the fastest repeat, and the two references (Beam
read+write, parallel decode+encode) as dashed lines. accuracy.png: held-out accuracy per
training condition, every run as a dot, the mean as a square with +-1 standard deviation.
"""

from __future__ import annotations

import argparse
import json

from benchmarks.common import RESULTS_DIR

# Bars in this order, in these colours (ours blue, the floor grey, the scripts a user would
# write instead orange and green); the references are lines, not bars.
BAR_CONFIGS = {
    "ours, in-memory": "tab:blue",
    "ours, multi-processing 1 worker": "tab:blue",
    "ours, multi-processing 2 workers": "tab:blue",
    "floor: empty policy, in-memory": "tab:gray",
    "hand-written tf.data + Keras 3 layers": "tab:orange",
    "peer: albumentations + OpenCV, 1 process": "tab:green",
    "peer: albumentations + OpenCV, 2 processes": "tab:green",
}
REFERENCE_LINES = {
    "reference: Beam read+write, no parse": ("records/s, Beam read+write", "tab:red"),
    "reference: decode+encode, parallel tf.data": ("images/s, decode+encode", "tab:purple"),
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on a build machine
    import matplotlib.pyplot as plt

    return plt


def throughput_chart(rows: list[dict], path, caption: str) -> None:
    plt = _pyplot()
    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    figure, axes = plt.subplots(1, len(workloads), figsize=(6 * len(workloads), 5))
    for axis, workload in zip(axes, workloads, strict=True):
        by = {
            r["config"]: r
            for r in rows
            if r["workload"] == workload
            and r["inputs"] == max(x["inputs"] for x in rows if x["workload"] == workload)
        }
        names = [n for n in BAR_CONFIGS if n in by]
        medians = [by[n]["per_second"]["median"] for n in names]
        low = [m - by[n]["per_second"]["min"] for n, m in zip(names, medians, strict=True)]
        high = [by[n]["per_second"]["max"] - m for n, m in zip(names, medians, strict=True)]
        positions = range(len(names))
        colours = [BAR_CONFIGS[n] for n in names]
        axis.barh(positions, medians, xerr=[low, high], color=colours, capsize=3)
        axis.set_yticks(list(positions), [n.replace(", ", ",\n", 1) for n in names], fontsize=8)
        axis.invert_yaxis()
        for name, (label, colour) in REFERENCE_LINES.items():
            if name in by:
                value = by[name]["per_second"]["median"]
                axis.axvline(
                    value, color=colour, linestyle="--", linewidth=1, label=f"{label}: {value:,.0f}"
                )
        axis.legend(loc="lower right", fontsize=7, title="references", title_fontsize=7)
        axis.set_xlim(0, None)
        axis.set_xlabel("augmented copies written per second (axis starts at 0)")
        axis.set_title(f"{workload}, {by[names[0]]['inputs']:,} inputs, K=4, `standard`")
    figure.text(0.01, 0.01, caption, fontsize=7, wrap=True)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    figure.savefig(path, dpi=120)
    plt.close(figure)


def accuracy_chart(rows: list[dict], path, title: str) -> None:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    names = [r["condition"] for r in rows]
    means = [r["mean"] for r in rows]
    stds = [r["std"] for r in rows]
    # Points, not bars: the axis does not start at 0 (the differences are a few points), and a
    # bar's length would suggest it does.
    axis.errorbar(
        range(len(rows)),
        means,
        yerr=stds,
        fmt="s",
        color="tab:blue",
        capsize=5,
        markersize=8,
        label="mean +-1 std",
    )
    for i, row in enumerate(rows):
        axis.scatter(
            [i + 0.12] * len(row["runs"]),
            row["runs"],
            color="black",
            s=12,
            zorder=3,
            label="one seed" if i == 0 else None,
        )
    axis.legend(fontsize=8, loc="lower right")
    lowest = min(min(r["runs"]) for r in rows)
    floor = max(0.0, round(lowest - 0.03, 2))
    axis.set_ylim(floor, 1.0)
    axis.set_xlim(-0.5, len(rows) - 0.5)
    # "offline_mixup" -> two lines: six conditions fit side by side.
    axis.set_xticks(range(len(rows)), [name.replace("_", "\n") for name in names])
    axis.set_xlabel("training data (augmentation)")
    axis.set_ylabel(f"held-out accuracy (axis starts at {floor:.2f})")
    axis.set_title(title, fontsize=9)
    figure.text(
        0.01,
        0.01,
        "squares: mean over seeds; error bars: +-1 standard deviation; dots: each seed's run",
        fontsize=7,
    )
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    suffix = "_quick" if args.quick else ""
    offline = RESULTS_DIR / f"offline{suffix}.json"
    if offline.exists():
        record = json.loads(offline.read_text())
        machine = record["machine"]
        caption = (
            f"Bars: median of {len(record['rows'][0]['repeats'])} repeats, each a fresh process; "
            "error bars: slowest to fastest repeat. Dashed: references on the same files. "
            f"{machine['cores']} cores, {machine['cpu']}, TF {machine['tensorflow']}, "
            f"Beam {machine['apache_beam']}. `{record['command']}`"
        )
        throughput_chart(record["rows"], RESULTS_DIR / f"throughput{suffix}.png", caption)
    accuracy = RESULTS_DIR / f"accuracy{suffix}.json"
    if accuracy.exists():
        record = json.loads(accuracy.read_text())
        accuracy_chart(
            record["rows"],
            RESULTS_DIR / f"accuracy{suffix}.png",
            f"digits 32x32, held out; `{record['command']}`",
        )


if __name__ == "__main__":
    main()
