"""Every example in the README and the docs runs, and the versions they name are the pins.

Each fenced ```python or ```bash block of README.md and docs/*.md carries a comment on the line
before it: `<!-- run -->` (run here) or `<!-- norun: why -->` (docs/contributing.md). A runnable
block runs in a subprocess from a fresh temporary folder holding small real data: `photos/`
(scikit-learn's two photos cut into JPEG tiles, one class folder per photo) and
`data/train-00000-of-00001.tfrecord.gz` (scikit-learn's digits as PNG tf.Examples with `image`,
`label` and `id`; the same file as `train-00000-of-00001.tfrecord`: gzip is read from the bytes),
`coco-train-00000-of-00001.tfrecord` (digits pasted on canvases, as Object Detection API
records with one PNG instance mask per object) and `boxes-train-00000-of-00001.tfrecord`
(other canvases, boxes without masks); python blocks also find `out/`, an
`image-augment run` of those records.
`image-augment` in a bash block runs as `python -m tfx_image_augment.cli`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import PROJECT_ROOT

PAGES = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^( *)```(python|bash)\s*$")
MARKER = re.compile(r"^\s*<!-- (run|norun: (?P<why>.+\S)) -->\s*$")
DIGITS = 40  # records in data/: enough for a class per digit, small enough to run in seconds


def _blocks():
    """(page, line, language, marker line, code) of every python and bash block."""
    found = []
    for page in PAGES:
        lines = page.read_text().splitlines()
        i = 0
        while i < len(lines):
            match = FENCE.match(lines[i])
            if not match:
                i += 1
                continue
            language = match.group(2)
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            code = textwrap.dedent("\n".join(lines[i + 1 : end]))
            before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            name = page.relative_to(PROJECT_ROOT).as_posix()
            found.append((name, i + 1, language, before, code))
            i = end + 1
    return found


BLOCKS = _blocks()
RUNNABLE = [b for b in BLOCKS if MARKER.match(b[3]) and MARKER.match(b[3]).group(1) == "run"]


def test_every_example_is_run_or_says_why_not():
    unmarked = [f"{page}:{line}" for page, line, _, before, _ in BLOCKS if not MARKER.match(before)]
    assert not unmarked, f"mark these <!-- run --> or <!-- norun: why -->: {unmarked}"
    assert len(RUNNABLE) >= 6
    readme = [b for b in RUNNABLE if b[0] == "README.md"]
    assert [b[2] for b in readme] == ["python", "bash", "bash"]  # the layer first, then the CLI
    assert "image-augment run --input photos/ --output out/" in readme[1][4]


@pytest.fixture(scope="session")
def example_data(tmp_path_factory):
    """photos/, data/ and (for python blocks) out/, made once."""
    import tensorflow as tf

    from pipelines.data import digits_images, image_example, sample_photos
    from tests.detection_data import detection_example, object_masks, scene

    root = tmp_path_factory.mktemp("example_data")
    for name, photo in zip(("china", "flower"), sample_photos(), strict=True):
        (root / "photos" / name).mkdir(parents=True)
        for i in range(3):
            tile = photo[40 * i : 40 * i + 64, 60 * i : 60 * i + 96]
            jpeg = tf.io.encode_jpeg(tile, quality=90).numpy()
            (root / "photos" / name / f"{i:02d}.jpg").write_bytes(jpeg)
    images, labels = digits_images()
    (root / "data").mkdir()
    path = str(root / "data" / "train-00000-of-00001.tfrecord.gz")
    with tf.io.TFRecordWriter(path, "GZIP") as writer:
        for i in range(DIGITS):
            png = tf.io.encode_png(images[i]).numpy()
            writer.write(image_example(png, labels[i], f"digits_{i:04d}"))
    shutil.copy(path, root / "train-00000-of-00001.tfrecord")

    canvases, boxes, masks, labels = scene(8)
    with tf.io.TFRecordWriter(str(root / "coco-train-00000-of-00001.tfrecord")) as writer:
        for i in range(len(canvases)):
            instance_masks = object_masks(masks[i])  # one PNG per object, as COCO's
            writer.write(
                detection_example(
                    canvases[i], boxes[i], labels[i], f"scene_{i}", instance_masks=instance_masks
                )
            )
    canvases, boxes, _, labels = scene(8, seed=1)
    with tf.io.TFRecordWriter(str(root / "boxes-train-00000-of-00001.tfrecord")) as writer:
        for i in range(len(canvases)):
            writer.write(detection_example(canvases[i], boxes[i], labels[i], f"scene_{i}"))
    made = tmp_path_factory.mktemp("made_out")
    shutil.copytree(root / "data", made / "data")
    args = ["run", "--input", "data/train-*.tfrecord*", "--output", "out/", "--copies", "2"]
    result = _run([sys.executable, "-m", "tfx_image_augment.cli", *args], made)
    assert result.returncode == 0, result.stderr[-3000:]
    shutil.copytree(made / "out", root / "made_out")
    return root


def _run(command, cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "language, code",
    [pytest.param(b[2], b[4], id=f"{b[0]}:{b[1]}") for b in RUNNABLE],
)
def test_the_example_runs(language, code, example_data, tmp_path):
    shutil.copytree(example_data / "photos", tmp_path / "photos")
    shutil.copytree(example_data / "data", tmp_path / "data")
    for records in example_data.glob("*.tfrecord"):
        shutil.copy(records, tmp_path)
    if language == "python":
        shutil.copytree(example_data / "made_out", tmp_path / "out")
        (tmp_path / "example.py").write_text(code + "\n")
        command = [sys.executable, "example.py"]
    else:
        cli = f'"{sys.executable}" -m tfx_image_augment.cli'
        script = re.sub(r"(?m)^(\s*)image-augment ", lambda m: m.group(1) + cli + " ", code)
        command = ["bash", "-euo", "pipefail", "-c", script]
    result = _run(command, tmp_path)
    assert result.returncode == 0, f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    if language == "bash" and "run --input" in code:
        assert (tmp_path / "out" / "_SUCCESS").exists()


def _pins(name: str) -> dict[str, str]:
    pins = {}
    for line in (PROJECT_ROOT / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            package, version = line.split("==", 1)
            pins[package.lower().replace("_", "-")] = ".".join(version.split(".")[:2])
    return pins


def test_the_versions_the_readme_names_are_the_constraint_files():
    # The docs get theirs filled from the same files at build time (docs/hooks.py); the README
    # is not built, so its names are checked here.
    stack, latest = _pins("constraints.txt"), _pins("constraints-latest.txt")
    python = ".".join((PROJECT_ROOT / ".python-version").read_text().split(".")[:2])
    allowed = {
        "TensorFlow": {stack["tensorflow"], latest["tensorflow"]},
        "Keras": {stack["keras"], latest["keras"]},
        "TFX": {stack["tfx"]},
        "Beam": {stack["apache-beam"]},
        "Python": {python},
    }
    readme = (PROJECT_ROOT / "README.md").read_text()
    named = re.findall(r"\b(TensorFlow|Keras|TFX|Beam|Python) (\d+\.\d+)", readme)
    assert named, "the README names the versions it is tested on"
    wrong = [f"{what} {version}" for what, version in named if version not in allowed[what]]
    assert not wrong, f"not what the constraint files pin: {wrong}"
    assert f"TensorFlow {latest['tensorflow']} with Keras {latest['keras']}" in readme


def test_the_docs_name_no_version_by_hand():
    # Versions in docs/ are placeholders docs/hooks.py fills; the benchmark block is a run's
    # record (its versions are what that run measured), and Beam 2.74 is what pip picks
    # without the constraints, not a pin.
    by_hand = re.compile(r"\b(TensorFlow|Keras|TFX|Beam|apache-beam|Python|tf_keras) \d+\.\d+")
    found = []
    for page in (PROJECT_ROOT / "docs").rglob("*.md"):
        if page.name == "benchmarks.md":
            continue
        for match in by_hand.finditer(page.read_text()):
            if not match.group(0).endswith(("Beam 2.74", "apache-beam 2.74")):
                found.append(f"{page.name}: {match.group(0)}")
    assert not found, f"use a placeholder, e.g. {{{{ version.tensorflow }}}}: {found}"
