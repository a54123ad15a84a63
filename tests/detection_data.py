"""Detection data known by construction: real digits pasted onto a canvas at known boxes, and
the same scenes as TensorFlow Object Detection API tf.Examples."""

from __future__ import annotations

import numpy as np

from tests import images as real

CANVAS = 64
DIGIT = 16


def scene(count: int, seed: int = 0):
    """`count` canvases with two real digits each: (images [B,64,64,1] uint8, boxes [B,2,4]
    normalized ymin/xmin/ymax/xmax tight around each digit's lit pixels, object masks
    [B,64,64,1] with value k+1 on digit k's lit pixels, labels [B,2] the digits' classes)."""
    digits, digit_labels = real.digits(DIGIT)
    rng = np.random.default_rng(seed)
    images = np.zeros((count, CANVAS, CANVAS, 1), np.uint8)
    masks = np.zeros_like(images)
    boxes = np.zeros((count, 2, 4), np.float32)
    labels = np.zeros((count, 2), np.int64)
    for i in range(count):
        places = [
            (rng.integers(4, 20), rng.integers(4, 20)),
            (rng.integers(36, 46), rng.integers(30, 46)),
        ]
        for k, (top, left) in enumerate(places):
            index = rng.integers(0, len(digits))
            digit = digits[index][..., 0]
            lit = digit > 64
            rows, cols = np.nonzero(lit)
            patch = images[i, top : top + DIGIT, left : left + DIGIT, 0]
            np.maximum(patch, digit, out=patch)
            masks[i, top : top + DIGIT, left : left + DIGIT, 0][lit] = k + 1
            boxes[i, k] = [
                (top + rows.min()) / CANVAS,
                (left + cols.min()) / CANVAS,
                (top + rows.max() + 1) / CANVAS,
                (left + cols.max() + 1) / CANVAS,
            ]
            labels[i, k] = digit_labels[index]
    return images, boxes, masks, labels


def object_masks(masks: np.ndarray, count: int = 2, value: int = 1) -> np.ndarray:
    """A scene's object masks [H, W, 1] (k + 1 on object k) as per-object instance masks
    uint8 [count, H, W] holding `value` on the object's pixels, 0 elsewhere."""
    planes = masks[..., 0][None] == np.arange(1, count + 1)[:, None, None]
    return (planes * value).astype(np.uint8)


def detection_example(
    image: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    key: str,
    keypoints: np.ndarray | None = None,
    instance_masks: np.ndarray | None = None,
    mask_form: str = "png",
) -> bytes:
    """One Object Detection API tf.Example: PNG `image/encoded`, normalized boxes, labels and
    class texts, per-object `area` and `is_crowd`, (optionally) K keypoints per object
    [N, K, 2] (y, x) with visibility, and (optionally) instance masks [N, H, W] in
    `image/object/mask`: one PNG per object (`mask_form` "png", as `create_coco_tf_record.py
    --include_masks` writes them) or N*H*W raw values ("raw_float", "raw_int64")."""
    import tensorflow as tf

    example = tf.train.Example()
    f = example.features.feature
    f["image/encoded"].bytes_list.value.append(tf.io.encode_png(image).numpy())
    f["image/format"].bytes_list.value.append(b"png")
    f["image/height"].int64_list.value.append(image.shape[0])
    f["image/width"].int64_list.value.append(image.shape[1])
    f["image/source_id"].bytes_list.value.append(key.encode())
    for i, name in enumerate(("ymin", "xmin", "ymax", "xmax")):
        f[f"image/object/bbox/{name}"].float_list.value.extend(boxes[:, i].tolist())
    f["image/object/class/label"].int64_list.value.extend(labels.tolist())
    f["image/object/class/text"].bytes_list.value.extend(f"digit {n}".encode() for n in labels)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    f["image/object/area"].float_list.value.extend(area.tolist())
    f["image/object/is_crowd"].int64_list.value.extend([0] * len(labels))
    if keypoints is not None:
        f["image/object/keypoint/y"].float_list.value.extend(keypoints[..., 0].ravel().tolist())
        f["image/object/keypoint/x"].float_list.value.extend(keypoints[..., 1].ravel().tolist())
        f["image/object/keypoint/visibility"].int64_list.value.extend(
            [1] * int(np.prod(keypoints.shape[:2]))
        )
    if instance_masks is not None:
        mask = f["image/object/mask"]
        if mask_form == "png":
            mask.bytes_list.value.extend(
                tf.io.encode_png(m[..., None]).numpy() for m in instance_masks
            )
        elif mask_form == "raw_float":
            mask.float_list.value.extend(instance_masks.astype(np.float32).ravel().tolist())
        else:
            mask.int64_list.value.extend(instance_masks.astype(np.int64).ravel().tolist())
    return example.SerializeToString(deterministic=True)


def run_cli(
    tmp_path,
    records,
    name: str = "out",
    policy: str = "standard",
    extra=(),
    beam=("--direct_num_workers=1",),
) -> dict:
    """Writes `records`, runs `image-augment run` on them (3 copies, seed 5, keyed by
    image/source_id) into tmp_path/name, and returns its augment_summary.json."""
    import json

    from tfx_image_augment.cli.commands import main  # the [beam] extra: not at import

    from tests.records import write_records

    write_records(tmp_path / f"{name}-in/data.tfrecord", records)
    out = tmp_path / name
    args = ["run", "--input", str(tmp_path / f"{name}-in/*"), "--output", str(out)]
    args += ["--policy", policy, "--copies", "3", "--seed", "5"]
    args += ["--key-feature", "image/source_id", *extra, "--", *beam]
    assert main(args) == 0
    return json.loads((out / "augment_summary.json").read_text())
