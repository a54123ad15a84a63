"""What augmentation buys on real data: digits at 32x32, 150 training images, the rest held out.

    python -m benchmarks.accuracy [--quick]

Six conditions, each trained with several seeds (the seed drives initialisation, shuffling
and the augmentation): no augmentation; offline K=4 (the copies written by the Beam pipeline,
through the `image-augment` CLI); online (the emitted Keras layer in the model); both; and
offline K=4 with the policy followed by `mixup` or by `cutmix` (soft targets from the copies'
`aug_mix_*` features, `read_images(num_classes=10)`, and a categorical cross-entropy). Same
model (the pipeline's CNN), same number of steps. Reports mean and standard deviation of
held-out accuracy as a table and a PNG bar chart.
"""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
from tfx_image_augment import environment

environment.configure()  # an entry point: Keras flavour and quiet logs, before TensorFlow
from benchmarks import plots  # noqa: E402
from benchmarks.common import RESULTS_DIR, write_results  # noqa: E402

TRAIN_SIZE = 150
POLICY = "no-flip"
COPIES = 4
CONDITIONS = ("none", "offline", "online", "both", "offline_mixup", "offline_cutmix")
MIXING_OPS = {"offline_mixup": {"op": "mixup", "alpha": 0.2}, "offline_cutmix": {"op": "cutmix"}}
NUM_CLASSES = 10


def _policy(condition: str):
    """The condition's offline policy: POLICY, or POLICY then a mixing op."""
    if condition not in MIXING_OPS:
        return POLICY
    from tfx_image_augment.core.policy import PRESETS

    base = PRESETS[POLICY]
    return {**base, "ops": [*base["ops"], MIXING_OPS[condition]]}


def _split():
    from pipelines.data import digits_images

    images, labels = digits_images()
    order = np.random.default_rng(0).permutation(len(images))
    train, held_out = order[:TRAIN_SIZE], order[TRAIN_SIZE:]
    return images[train], labels[train], images[held_out], labels[held_out]


def _offline_copies(images, labels, seed: int, workdir: pathlib.Path, condition: str):
    """The originals and K copies, as ImageAugment's Beam pipeline writes them (with one-hot
    or soft float targets for the mixing conditions)."""
    import json

    import tensorflow as tf
    from tfx_image_augment.io.reader import read_images

    from pipelines.data import image_example

    source = workdir / f"in_{seed}" / "train.tfrecord"
    source.parent.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(source)) as writer:
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            writer.write(image_example(tf.io.encode_png(image).numpy(), label, f"d{i}"))
    output = workdir / f"out_{seed}"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tfx_image_augment.cli.commands",
            "run",
            "--input",
            str(source),
            "--output",
            str(output),
            "--policy",
            json.dumps(_policy(condition)) if condition in MIXING_OPS else POLICY,
            "--copies",
            str(COPIES),
            "--seed",
            str(seed),
            "--key-feature",
            "id",
            "--label-feature",
            "label",
        ],
        check=True,
        capture_output=True,
    )
    soft = NUM_CLASSES if condition in MIXING_OPS else None
    pairs = list(read_images(str(output), channels=1, num_classes=soft).as_numpy_iterator())
    return np.stack([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def train_and_score(condition, seed, train_x, train_y, test_x, test_y, steps, workdir):
    import tensorflow as tf
    from tfx_image_augment import ImageAugmentation

    from pipelines import trainer

    tf.keras.utils.set_random_seed(seed)
    if condition in ("offline", "both", *MIXING_OPS):
        train_x, train_y = _offline_copies(train_x, train_y, seed, workdir, condition)
    config = trainer.settings({"channels": 1, "mode": "offline"})
    layer = (
        ImageAugmentation(POLICY, seed=seed, value_range=(0.0, 1.0))
        if condition in ("online", "both")
        else None
    )
    model = trainer.build_model(config, layer)
    if condition in MIXING_OPS:  # soft targets: the same model, a loss that takes them
        model.compile(
            optimizer=tf.keras.optimizers.Adam(config["learning_rate"]),
            loss=tf.keras.losses.CategoricalCrossentropy(),
        )
    dataset = (
        tf.data.Dataset.from_tensor_slices((train_x.astype("float32") / 255.0, train_y))
        .shuffle(len(train_x), seed=seed)
        .repeat()
        .batch(config["batch_size"])
    )
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
    # Held-out labels are integers for every condition: accuracy of the most probable class.
    probabilities = model.predict(test_x.astype("float32") / 255.0, verbose=0, batch_size=256)
    return float(np.mean(np.argmax(probabilities, axis=1) == test_y))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 seed, fewer steps")
    args = parser.parse_args(argv)
    started = time.time()
    seeds = [1] if args.quick else [1, 2, 3]
    steps = 300 if args.quick else 800
    train_x, train_y, test_x, test_y = _split()
    scores: dict[str, list[float]] = {c: [] for c in CONDITIONS}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            for condition in CONDITIONS:
                workdir = pathlib.Path(tmp) / f"{condition}_{seed}"
                workdir.mkdir()
                scores[condition].append(
                    train_and_score(
                        condition, seed, train_x, train_y, test_x, test_y, steps, workdir
                    )
                )
                print(condition, seed, scores[condition][-1], file=sys.stderr)
    stats = {c: (float(np.mean(v)), float(np.std(v))) for c, v in scores.items()}
    rows = [
        {"condition": c, "mean": round(m, 4), "std": round(s, 4), "runs": scores[c]}
        for c, (m, s) in stats.items()
    ]
    lines = ["| condition | held-out accuracy (mean +- std) | runs |", "|---|---:|---|"]
    for row in rows:
        lines.append(
            f"| {row['condition']} | {row['mean']:.3f} +- {row['std']:.3f} | "
            f"{', '.join(f'{r:.3f}' for r in row['runs'])} |"
        )
    gap = stats["offline"][0] - stats["online"][0]
    noise = float(np.hypot(stats["offline"][1], stats["online"][1]))
    lines.append("")
    lines.append(
        f"Offline minus online: {gap:+.3f} (combined std {noise:.3f}); "
        f"{len(seeds)} seed(s), {steps} steps of batch 32, {TRAIN_SIZE} training "
        f"images, {len(test_y)} held out, policy {POLICY}, K={COPIES}."
    )
    for condition, op in MIXING_OPS.items():
        gain = stats[condition][0] - stats["offline"][0]
        spread = float(np.hypot(stats[condition][1], stats["offline"][1]))
        lines.append(
            f"{condition} minus offline: {gain:+.3f} (combined std {spread:.3f}); the policy "
            f"then {op}, soft targets."
        )
    suffix = "_quick" if args.quick else ""
    command = "python -m benchmarks.accuracy" + (" --quick" if args.quick else "")
    write_results("accuracy" + suffix, rows, "\n".join(lines), command, started)
    plots.accuracy_chart(
        rows,
        RESULTS_DIR / f"accuracy{suffix}.png",
        f"digits 32x32, {TRAIN_SIZE} training images, {len(seeds)} seed(s); `{command}`",
    )


if __name__ == "__main__":
    main()
