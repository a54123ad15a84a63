"""Does balancing help the rare classes? Digits made imbalanced, then augmented three ways.

    python -m benchmarks.balance [--quick]

scikit-learn's real digits at 32x32: 40 training images of each class except two rare ones
(classes 3 and 8) cut to 4 each; everything else is held out. Conditions, each trained with
several seeds on the pipeline's CNN for the same number of steps:
- none: the originals only;
- uniform: offline K=4 copies of every example (`image-augment run --copies 4`);
- balanced: `--balance equal` (K=4 for the large classes; the rare ones brought up to the
  same count, at most 40 copies per example).
Reports the records per class each condition trains on, the rare classes' recall and the
overall held-out accuracy (mean +- std over seeds).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
from tfx_image_augment import environment

environment.configure()  # an entry point: Keras flavour and quiet logs, before TensorFlow
from benchmarks.common import write_results  # noqa: E402

PER_CLASS, RARE_CLASSES, RARE_COUNT = 40, (3, 8), 4
POLICY, COPIES = "no-flip", 4
CONDITIONS = {
    "none": None,
    "uniform": ["--copies", str(COPIES)],
    "balanced": ["--copies", str(COPIES), "--balance", "equal", "--max-copies", "40"],
}


def _split():
    from pipelines.data import digits_images

    images, labels = digits_images()
    order = np.random.default_rng(0).permutation(len(images))
    train, taken = [], {}
    for i in order:
        limit = RARE_COUNT if labels[i] in RARE_CLASSES else PER_CLASS
        if taken.get(labels[i], 0) < limit:
            taken[labels[i]] = taken.get(labels[i], 0) + 1
            train.append(i)
    held_out = np.setdiff1d(order, train)
    return images[train], labels[train], images[held_out], labels[held_out]


def _augmented(images, labels, args, seed, workdir: pathlib.Path):
    import tensorflow as tf
    from tfx_image_augment.io.reader import read_images

    from pipelines.data import image_example

    source = workdir / "in" / "train.tfrecord"
    source.parent.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(source)) as writer:
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            writer.write(image_example(tf.io.encode_png(image).numpy(), label, f"d{i}"))
    output = workdir / "out"
    command = [
        sys.executable,
        "-m",
        "tfx_image_augment.cli.commands",
        "run",
        "--input",
        str(source),
    ]
    command += ["--output", str(output), "--policy", POLICY, "--seed", str(seed)]
    command += ["--key-feature", "id", "--label-feature", "label", *args]
    subprocess.run(command, check=True, capture_output=True)
    summary = json.loads((output / "augment_summary.json").read_text())
    pairs = list(read_images(str(output), channels=1).as_numpy_iterator())
    return np.stack([p[0] for p in pairs]), np.array([p[1] for p in pairs]), summary


def train_and_score(train_x, train_y, test_x, test_y, seed, steps):
    import tensorflow as tf

    from pipelines import trainer

    tf.keras.utils.set_random_seed(seed)
    config = trainer.settings({"channels": 1, "mode": "offline"})
    model = trainer.build_model(config, None)
    dataset = (
        tf.data.Dataset.from_tensor_slices((train_x.astype("float32") / 255.0, train_y))
        .shuffle(len(train_x), seed=seed)
        .repeat()
        .batch(config["batch_size"])
    )
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
    predicted = model.predict(test_x.astype("float32") / 255.0, verbose=0, batch_size=256)
    predicted = predicted.argmax(axis=1)
    rare = np.isin(test_y, RARE_CLASSES)
    return float((predicted == test_y).mean()), float((predicted[rare] == test_y[rare]).mean())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 seed, fewer steps")
    args = parser.parse_args(argv)
    started = time.time()
    seeds = [1] if args.quick else [1, 2, 3]
    steps = 300 if args.quick else 800
    train_x, train_y, test_x, test_y = _split()
    results = {c: {"accuracy": [], "rare_recall": [], "per_class": None} for c in CONDITIONS}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            for condition, cli_args in CONDITIONS.items():
                x, y = train_x, train_y
                if cli_args is not None:
                    workdir = pathlib.Path(tmp) / f"{condition}_{seed}"
                    x, y, summary = _augmented(train_x, train_y, cli_args, seed, workdir)
                    results[condition]["per_class"] = summary["classes"]["out"]
                else:
                    results[condition]["per_class"] = {
                        str(c): int((train_y == c).sum()) for c in np.unique(train_y)
                    }
                accuracy, recall = train_and_score(x, y, test_x, test_y, seed, steps)
                results[condition]["accuracy"].append(accuracy)
                results[condition]["rare_recall"].append(recall)
                print(condition, seed, accuracy, recall, file=sys.stderr)
    rows, lines = (
        [],
        [
            "| condition | records: large class / rare class | rare-class recall | accuracy |",
            "|---|---:|---:|---:|",
        ],
    )
    for condition, result in results.items():
        per_class = result["per_class"]
        row = {
            "condition": condition,
            "records_per_class": per_class,
            "rare_recall_mean": round(float(np.mean(result["rare_recall"])), 4),
            "rare_recall_std": round(float(np.std(result["rare_recall"])), 4),
            "accuracy_mean": round(float(np.mean(result["accuracy"])), 4),
            "accuracy_std": round(float(np.std(result["accuracy"])), 4),
            "runs": {"accuracy": result["accuracy"], "rare_recall": result["rare_recall"]},
        }
        rows.append(row)
        lines.append(
            f"| {condition} | {per_class['0']} / {per_class[str(RARE_CLASSES[0])]} | "
            f"{row['rare_recall_mean']:.3f} +- {row['rare_recall_std']:.3f} | "
            f"{row['accuracy_mean']:.3f} +- {row['accuracy_std']:.3f} |"
        )
    lines += [
        "",
        f"Digits 32x32: {PER_CLASS} training images per class, classes {RARE_CLASSES} cut to "
        f"{RARE_COUNT}; {len(test_y)} held out; policy {POLICY}; {len(seeds)} seed(s), "
        f"{steps} steps of batch 32; mean +- std over seeds.",
    ]
    suffix = "_quick" if args.quick else ""
    write_results(
        "balance" + suffix,
        rows,
        "\n".join(lines),
        "python -m benchmarks.balance" + (" --quick" if args.quick else ""),
        started,
    )


if __name__ == "__main__":
    main()
