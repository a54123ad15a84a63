"""A contact sheet that says what it shows: each original beside its augmented copies, with the
boxes, keypoints and instance masks (translucent) that travel with them, column titles, each
row's class, and the policy's name, fingerprint and seed, as one PNG."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

PREVIEW_FILE = "preview.png"
BOX_COLOUR = (0, 200, 0)
KEYPOINT_COLOUR = (230, 0, 0)
# Instance masks: blended over the image at MASK_OPACITY, object i in MASK_COLOURS[i % 6].
MASK_COLOURS = (
    (255, 64, 64),
    (64, 128, 255),
    (255, 200, 0),
    (200, 64, 255),
    (0, 220, 220),
    (255, 128, 0),
)
MASK_OPACITY = 0.45
TEXT_HEIGHT = 14  # pixels per line of PIL's default bitmap font
CELL = 96


@dataclasses.dataclass
class PreviewCell:
    """One image of the sheet with what moves with it: boxes [N, 4] normalized (valid only),
    keypoints [M, 2] normalized (visible only) and instance masks [N, h, w] at the image's size
    (object i drawn in colour i; a dropped object's mask is empty)."""

    image: np.ndarray
    boxes: np.ndarray | None = None
    keypoints: np.ndarray | None = None
    masks: np.ndarray | None = None


def contact_sheet(
    rows: list[list[PreviewCell]],
    row_titles: list[str] | None = None,
    header: str = "",
    cell: int = CELL,
    gap: int = 4,
) -> np.ndarray:
    """Rows of cells (the original first) -> a uint8 RGB grid. Small images are enlarged
    (nearest) to `cell` pixels; instance masks are blended in translucent colours, boxes are
    drawn green, keypoints red. Text (column titles, row
    titles, the header) needs Pillow and is left out without it."""
    import tensorflow as tf

    columns = max(len(r) for r in rows)
    left = 64 if row_titles else 0
    top = 2 * TEXT_HEIGHT + gap if header else TEXT_HEIGHT + gap
    sheet = np.full(
        (top + len(rows) * (cell + gap) + gap, left + columns * (cell + gap) + gap, 3),
        255,
        np.uint8,
    )
    for r, row in enumerate(rows):
        for c, item in enumerate(row):
            image = item.image
            if image.shape[-1] == 1:
                image = np.repeat(image, 3, axis=-1)
            image = image[..., :3]
            size = _cell_size(image.shape, cell)
            resized = tf.image.resize(image, size, method="nearest").numpy().astype(np.uint8)
            y0 = top + gap + r * (cell + gap) + (cell - size[0]) // 2
            x0 = left + gap + c * (cell + gap) + (cell - size[1]) // 2
            patch = sheet[y0 : y0 + size[0], x0 : x0 + size[1]]
            patch[...] = resized
            _draw_masks(patch, item.masks)
            _draw_targets(patch, item)
    _draw_text(sheet, rows, row_titles, header, cell, gap, left, top)
    return sheet


def _draw_masks(patch: np.ndarray, masks: np.ndarray | None) -> None:
    """Blends each mask's pixels (> 0) over `patch` in its colour, at MASK_OPACITY."""
    if masks is None or not len(masks):
        return
    import tensorflow as tf

    size = patch.shape[:2]
    lit = tf.image.resize(masks.transpose(1, 2, 0), size, method="nearest").numpy() > 0
    for i in range(lit.shape[-1]):
        colour = np.array(MASK_COLOURS[i % len(MASK_COLOURS)], np.float32)
        where = lit[..., i]
        blended = (1 - MASK_OPACITY) * patch[where] + MASK_OPACITY * colour
        patch[where] = np.round(blended).astype(np.uint8)


def _draw_targets(patch: np.ndarray, item: PreviewCell) -> None:
    height, width = patch.shape[:2]
    for ymin, xmin, ymax, xmax in item.boxes if item.boxes is not None else ():
        y0, y1 = (int(np.clip(v * height, 0, height - 1)) for v in (ymin, ymax))
        x0, x1 = (int(np.clip(v * width, 0, width - 1)) for v in (xmin, xmax))
        patch[y0 : y1 + 1, [x0, x1]] = BOX_COLOUR
        patch[[y0, y1], x0 : x1 + 1] = BOX_COLOUR
    for y, x in item.keypoints if item.keypoints is not None else ():
        cy, cx = int(y * height), int(x * width)
        patch[max(cy - 1, 0) : cy + 2, max(cx - 1, 0) : cx + 2] = KEYPOINT_COLOUR


def _draw_text(sheet, rows, row_titles, header, cell, gap, left, top) -> None:
    try:
        from PIL import Image, ImageDraw
    except ImportError:  # Pillow is optional: the sheet still shows the pictures
        return
    canvas = Image.fromarray(sheet)
    draw = ImageDraw.Draw(canvas)
    if header:
        draw.text((gap, 1), header, fill=(0, 0, 0))
    titles_y = top - TEXT_HEIGHT
    for c in range(max(len(r) for r in rows)):
        title = "original" if c == 0 else f"copy {c}"
        draw.text((left + gap + c * (cell + gap), titles_y), title, fill=(0, 0, 0))
    for r, title in enumerate(row_titles or []):
        draw.text((gap, top + gap + r * (cell + gap) + cell // 2 - 6), title, fill=(0, 0, 0))
    sheet[...] = np.asarray(canvas)


def write_png(path: str, image: np.ndarray) -> None:
    import tensorflow as tf

    tf.io.gfile.makedirs(path.rsplit("/", 1)[0]) if "/" in path else None
    with tf.io.gfile.GFile(path, "wb") as handle:
        handle.write(tf.io.encode_png(image).numpy())


def _cell_size(shape, cell: int) -> tuple[int, int]:
    """(height, width) of an image of `shape` drawn in a sheet cell: its longer side `cell`."""
    scale = cell / max(shape[0], shape[1])
    return max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale))


def _thumbnail(image: np.ndarray, cell: int = CELL) -> np.ndarray:
    """A uint8 image larger than a cell shrunk to the size `contact_sheet` draws it at (the same
    nearest resize, so the sheet is unchanged), so no full-size copy of a large image is kept."""
    import tensorflow as tf

    if max(image.shape[:2]) <= cell:
        return image
    return (
        tf.image.resize(image, _cell_size(image.shape, cell), method="nearest")
        .numpy()
        .astype(np.uint8)
    )


def _for_display(images: np.ndarray, value_range) -> np.ndarray:
    """uint8 as is; float (raw or 16-bit pixels) from `value_range` to 0..255."""
    from tfx_image_augment.io.codec import DEFAULT_VALUE_RANGE

    if images.dtype == np.uint8:
        return images
    low, high = value_range or DEFAULT_VALUE_RANGE
    return np.clip((images - low) / (high - low) * 255, 0, 255).astype(np.uint8)


def _choose(pattern, config, rows: int):
    """The first `rows` decodable records of a TFRecord glob or an `ImageFolder`: (pixels,
    key, objects, label) each."""
    import tensorflow as tf

    from tfx_image_augment.io.folders import ImageFolder, folder_records
    from tfx_image_augment.io.quarantine import Quarantined
    from tfx_image_augment.io.records import compression_of
    from tfx_image_augment.offline.decode import decode_example
    from tfx_image_augment.offline.mixing import check_mixable

    if isinstance(pattern, ImageFolder):
        sources = [folder_records(pattern, limit=rows * 4)]
    else:
        sources = (
            (r.numpy() for r in tf.data.TFRecordDataset(path, compression_of(path)).take(rows * 4))
            for path in sorted(tf.io.gfile.glob(pattern))
        )
    chosen = []
    plan = config.plan
    for records in sources:
        for record in records:
            try:
                decoded = decode_example(record, config)
                check_mixable(decoded.objects, plan)
            except Quarantined:  # a preview skips what it cannot show
                continue
            chosen.append((decoded.pixels, decoded.key, decoded.objects, decoded.label))
            if len(chosen) == rows:
                return chosen
    return chosen


def preview_from_pattern(pattern: str, config, rows: int = 6, max_copies: int = 6):
    """(sheet, channels) from the first decodable records of `pattern`: each beside copies
    1..min(K, max_copies) as the offline expansion seeds them (boxes and keypoints moved alike).
    With `copies_per_class` a row shows its class's number (rounded up); with `balance` the
    sheet shows K, since the class counts are known only to a run. A mixing policy's copies
    take the next rows' images as their partners (mosaic: the next three rows, boxes along; a
    run pairs copies across the whole split). (None, None) when nothing decodes."""
    from tfx_image_augment.core.augment import augment_targets
    from tfx_image_augment.core.seeds import copy_seed
    from tfx_image_augment.io.codec import MAX_BATCH_PIXELS, core_inputs
    from tfx_image_augment.offline.balance import copies_wanted
    from tfx_image_augment.offline.objects import NO_OBJECTS, padded, padded_masks

    chosen = _choose(pattern, config, rows)
    if not chosen:
        return None, None
    first_shape = chosen[0][0].shape
    chosen = [c for c in chosen if c[0].shape == first_shape]  # mixed sizes: the first size
    copies = min(config.num_copies, max_copies)
    policy = config.loaded_policy
    plan = config.plan
    count = plan.partner_count
    sheet_rows, titles = [], []
    for row_index, (pixels, key, objects, label) in enumerate(chosen):
        if config.copies_per_class is not None:
            copies = min(math.ceil(copies_wanted(config, label, {})), max_copies)
        if copies == 0:
            continue
        seeds = np.array([copy_seed(config.seed, key, k) for k in range(1, copies + 1)], np.int64)
        images, value_range = core_inputs(pixels[None], config.value_range)
        row = [_cell(_thumbnail(_for_display(images, value_range)[0]), objects)]
        # As on the workers, a large image's copies are augmented a few at a time, and only
        # thumbnails are kept.
        per_call = max(1, MAX_BATCH_PIXELS // (pixels.shape[0] * pixels.shape[1]))
        partners = [chosen[(row_index + i) % len(chosen)] for i in range(1, count + 1)]
        partner_images = None
        if count:
            stacked = np.stack([p[0] for p in partners])[None]
            partner_images = core_inputs(stacked, config.value_range)[0]
        partner_objects = [p[2] or NO_OBJECTS for p in partners]
        most = max(o.count for o in [objects or NO_OBJECTS, *partner_objects])
        for start in range(0, copies, per_call):
            chunk = seeds[start : start + per_call]
            targets = {}
            if count:
                targets["partners"] = np.repeat(partner_images, len(chunk), axis=0)
                targets["has_partner"] = np.full([len(chunk)], len(chosen) > count)
            if objects is not None:
                boxes, valid, keypoints, visible = padded([objects] * len(chunk), most)
                targets.update(boxes=boxes, box_valid=valid)
                if plan.tiling_ops:
                    around, around_valid = padded(partner_objects, most)[:2]
                    targets.update(
                        partner_boxes=np.repeat(around[None], len(chunk), axis=0),
                        partner_box_valid=np.repeat(around_valid[None], len(chunk), axis=0),
                    )
                if keypoints is not None:
                    targets.update(keypoints=keypoints, keypoint_visible=visible)
                if objects.masks is not None:
                    targets.update(
                        instance_masks=padded_masks([objects] * len(chunk)),
                        boxes_from_masks=config.boxes_from_masks,
                    )
            out = augment_targets(
                np.repeat(images, len(chunk), axis=0),
                chunk,
                policy,
                value_range=value_range,
                min_box_visibility=config.min_box_visibility,
                keypoint_flip_permutation=config.keypoint_flip_permutation,
                **targets,
            )
            out = {name: value.numpy() for name, value in out.items()}
            shown = _for_display(out["images"], value_range)
            row.extend(_moved_cell(_thumbnail(shown[k]), out, k) for k in range(len(chunk)))
        sheet_rows.append(row)
        titles.append("" if label is None else f"class {label}")
    header = (
        f"policy {policy.name or 'custom'} ({policy.fingerprint[:12]}), seed {config.seed}; "
        f"each row: an original, then its copies"
        + (f"; partners: the next {count} rows" if count > 1 else "")
        + ("; partner: the next row's original" if count == 1 else "")
    )
    if not sheet_rows:  # every class shown gets no copies
        return None, first_shape[-1]
    sheet = contact_sheet(sheet_rows, titles if any(titles) else None, header)
    return sheet, first_shape[-1]


def _cell(image: np.ndarray, objects) -> PreviewCell:
    if objects is None:
        return PreviewCell(image)
    points = None
    if objects.keypoints is not None:
        points = objects.keypoints[objects.keypoint_visibility > 0]
    return PreviewCell(image, objects.boxes, points, _mask_thumbnails(objects.masks))


def _moved_cell(image: np.ndarray, out: dict, k: int) -> PreviewCell:
    if "boxes" not in out:
        return PreviewCell(image)
    valid = out["box_valid"][k]
    boxes = out["boxes"][k][valid]
    points = out["keypoints"][k][out["keypoint_visible"][k] > 0] if "keypoints" in out else None
    masks = None
    if "instance_masks" in out:  # every object in its slot (so in its colour), dropped ones empty
        masks = out["instance_masks"][k] * valid[:, None, None].astype(np.uint8)
    return PreviewCell(image, boxes, points, _mask_thumbnails(masks))


def _mask_thumbnails(masks: np.ndarray | None, cell: int = CELL) -> np.ndarray | None:
    """Instance masks [N, H, W] at the size a cell shows them (so no full-size copy is kept)."""
    if masks is None or not len(masks) or max(masks.shape[1:]) <= cell:
        return masks
    import tensorflow as tf

    size = _cell_size(masks.shape[1:], cell)
    planes = tf.image.resize(masks.transpose(1, 2, 0), size, method="nearest").numpy()
    return planes.astype(np.uint8).transpose(2, 0, 1)
