"""What every benchmark prints and records: the machine, the versions, the elapsed time."""

from __future__ import annotations

import json
import os
import pathlib
import platform
import time

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next(
                line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    import apache_beam
    import tensorflow as tf

    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "apache_beam": apache_beam.__version__,
    }


def write_results(
    name: str, rows: list[dict], table: str, command: str, started: float, extra: dict | None = None
) -> None:
    RESULTS_DIR.mkdir(exist_ok=True)
    record = {
        "benchmark": name,
        "command": command,
        "machine": machine(),
        "elapsed_seconds": round(time.time() - started, 1),
        "rows": rows,
        **(extra or {}),
    }
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    header = (
        f"Command: `{command}`  \nMachine: {record['machine']['cores']} cores, "
        f"{record['machine']['cpu']}; TensorFlow {record['machine']['tensorflow']}, "
        f"Beam {record['machine']['apache_beam']}; took {record['elapsed_seconds']} s.\n\n"
    )
    (RESULTS_DIR / f"{name}.md").write_text(header + table + "\n")
    print(header + table)


def keras3_standard_chain(layers) -> list:
    """The `standard` preset as Keras 3 built-in layers (no built-in saturation): the chain a
    user would write instead. `layers` is `tf.keras.layers` of a Keras 3 process."""
    return [
        layers.RandomFlip("horizontal", seed=1),
        layers.RandomRotation(15 / 360, seed=1),
        layers.RandomZoom(0.1, seed=1),
        layers.RandomTranslation(0.1, 0.1, seed=1),
        layers.RandomBrightness(0.2, value_range=(0, 255), seed=1),
        layers.RandomContrast(0.2, seed=1),
    ]
