"""The augmentation core: `augment(images, seeds, policy)`, a pure function of its inputs.

This module knows nothing of Beam, TFX or Keras. The Beam executor and the Keras layer both call
`augment`, so the two doors agree pixel for pixel by construction.

How randomness works: every image carries its own seed of shape [2] (int64). Each random node of
the policy (an op, or a one_of/randaugment choice) has a fixed id; its uniform draws are
`tf.random.stateless_uniform([n], fold_in(image_seed, id))`. Parameters are drawn per image,
the work is done per batch, and an image's result never depends on its neighbours in the batch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import tensorflow as tf

from components.image_augment.policy import GEOMETRIC, META, Op, Policy, randaugment_candidates

SUPPORTED_CHANNELS = (1, 3, 4)
_GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)  # ITU-R 601-2 luma, as tf.image and PIL use


# ----------------------------------------------------------------------------------------------
# Compiling a policy into a plan of stages
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Gate:
    """An op applies to an image when every condition holds: u[column] < p, or choice == index."""

    probability_columns: tuple[tuple[int, float], ...] = ()
    choice_columns: tuple[tuple[int, tuple[float, ...], int], ...] = ()  # column, cum. weights, i


@dataclasses.dataclass(frozen=True)
class _Instance:
    op: Op
    node_id: int
    gate: _Gate
    first_column: int  # where this op's parameter draws start in the per-image table


@dataclasses.dataclass(frozen=True)
class _Stage:
    kind: str  # "flip", "crop", "warp" or "pixel"
    instances: tuple[_Instance, ...]


@dataclasses.dataclass(frozen=True)
class Plan:
    """A compiled policy: random nodes (id, number of draws) and the stages that use them."""

    policy: Policy
    nodes: tuple[tuple[int, int], ...]
    stages: tuple[_Stage, ...]

    @property
    def num_draws(self) -> int:
        return sum(n for _, n in self.nodes)


_PARAM_DRAWS = {
    "rotate": 1,
    "zoom": 1,
    "translate": 2,
    "shear": 2,
    "random_resized_crop": 4,
    "brightness": 1,
    "contrast": 1,
    "saturation": 1,
    "hue": 1,
    "gamma": 1,
    "gaussian_blur": 1,
    "jpeg_quality": 1,
    "sharpness": 1,
}


def _param_draws(op: Op) -> int:
    if op.name == "cutout":
        return 2 * op["count"]
    return _PARAM_DRAWS.get(op.name, 0)


def compile_policy(policy: Policy) -> Plan:
    """Turns a policy into stages; consecutive geometric ops share one stage (one warp)."""
    nodes: list[tuple[int, int]] = []
    column = 0

    def add_node(node_id: int, draws: int) -> int:
        nonlocal column
        nodes.append((node_id, draws))
        start, column = column, column + draws
        return start

    def instance(op: Op, node_id: int, gate: _Gate) -> _Instance:
        start = add_node(node_id, 1 + _param_draws(op))
        gate = dataclasses.replace(
            gate, probability_columns=gate.probability_columns + ((start, op["p"]),)
        )
        return _Instance(op, node_id, gate, start + 1)

    def choice(node_id: int, p: float, weights: Sequence[float]) -> Callable[[int], _Gate]:
        """The gate of option j of a choice node: the node applies (p) and picked j."""
        start = add_node(node_id, 2)
        total = float(sum(weights))
        cumulative = tuple(sum(weights[: i + 1]) / total for i in range(len(weights)))
        return lambda j: _Gate(((start, p),), ((start + 1, cumulative, j),))

    sequence: list[_Instance] = []
    for index, op in enumerate(policy.ops):
        node_id = (index + 1) * 10_000
        if op.kind != META:
            sequence.append(instance(op, node_id, _Gate()))
            continue
        if op.name == "one_of":
            gate_of = choice(node_id, op["p"], op["weights"])
            children = [
                instance(child, node_id + j + 1, gate_of(j)) for j, child in enumerate(op.children)
            ]
            # Exactly one child applies per image, so their order among themselves is free:
            # geometric children first lets them join a preceding warp.
            sequence.extend(sorted(children, key=lambda c: c.op.kind != GEOMETRIC))
            continue
        if op.name == "randaugment":
            candidates, layers = randaugment_candidates(op["magnitude"] / 30.0), op["num_ops"]
        else:  # trivialaugment: one op at full strength
            candidates, layers = randaugment_candidates(1.0), 1
        # RandAugment and TrivialAugment include "identity" as one of the draws: the last slot.
        weights = [1.0] * (len(candidates) + 1)
        drawn: list[_Instance] = []
        for layer in range(layers):
            gate_of = choice(node_id + 1000 * layer, op["p"], weights)
            drawn.extend(
                instance(candidate, node_id + 1000 * layer + j + 1, gate_of(j))
                for j, candidate in enumerate(candidates)
            )
        # Documented: the drawn geometric ops form one warp before the drawn photometric ops.
        sequence.extend(sorted(drawn, key=lambda c: c.op.kind != GEOMETRIC))

    stages: list[_Stage] = []
    for item in sequence:
        if item.op.kind == GEOMETRIC and stages and stages[-1].kind == "geometric":
            stages[-1] = _Stage("geometric", stages[-1].instances + (item,))
        else:
            stages.append(_Stage("geometric" if item.op.kind == GEOMETRIC else "pixel", (item,)))
    return Plan(policy, tuple(nodes), tuple(_specialise(s) for s in stages))


def _specialise(stage: _Stage) -> _Stage:
    """Picks the cheapest way to run a geometric stage: flips alone, one crop alone, or a warp."""
    if stage.kind != "geometric":
        return stage
    names = {i.op.name for i in stage.instances}
    if names <= {"flip_left_right", "flip_up_down"}:
        return _Stage("flip", stage.instances)
    if names == {"random_resized_crop"} and len(stage.instances) == 1:
        return _Stage("crop", stage.instances)
    return _Stage("warp", stage.instances)


# ----------------------------------------------------------------------------------------------
# Per-image random draws
# ----------------------------------------------------------------------------------------------


def _draw_table(plan: Plan, seeds: tf.Tensor) -> tf.Tensor:
    """[B, num_draws] uniforms in [0, 1): node n's draws from fold_in(image_seed, n's id)."""
    if plan.num_draws == 0:
        return tf.zeros([tf.shape(seeds)[0], 0], tf.float32)

    def one_image(seed: tf.Tensor) -> tf.Tensor:
        return tf.concat(
            [
                tf.random.stateless_uniform(
                    [draws], tf.random.experimental.stateless_fold_in(seed, node_id)
                )
                for node_id, draws in plan.nodes
            ],
            axis=0,
        )

    return tf.map_fn(
        one_image, seeds, fn_output_signature=tf.TensorSpec([plan.num_draws], tf.float32)
    )


def _always_applies(gate: _Gate) -> bool:
    return not gate.choice_columns and all(p >= 1.0 for _, p in gate.probability_columns)


def _gated(gate: _Gate, table: tf.Tensor, applied: tf.Tensor, unchanged: tf.Tensor):
    """`applied` for the images whose gate opens, `unchanged` for the others."""
    if _always_applies(gate):  # p = 1 outside a choice: skip a pass over the pixels
        return applied
    mask = _gate_mask(gate, table)
    return tf.where(tf.reshape(mask, [-1] + [1] * (applied.shape.rank - 1)), applied, unchanged)


def _gate_mask(gate: _Gate, table: tf.Tensor) -> tf.Tensor:
    mask = tf.ones([tf.shape(table)[0]], tf.bool)
    for column, p in gate.probability_columns:
        if p < 1.0:
            mask &= table[:, column] < p
    for column, cumulative, index in gate.choice_columns:
        u = table[:, column]
        low = cumulative[index - 1] if index > 0 else 0.0
        mask &= (u >= low) & (u < cumulative[index])
    return mask


def _uniform(table: tf.Tensor, column: int, low: float, high: float) -> tf.Tensor:
    return low + (high - low) * table[:, column]


def _symmetric(table: tf.Tensor, column: int, limit: float) -> tf.Tensor:
    return _uniform(table, column, -limit, limit)


# ----------------------------------------------------------------------------------------------
# Geometric stages
# ----------------------------------------------------------------------------------------------


def _about_centre(
    linear: tf.Tensor, shift: tf.Tensor, height: tf.Tensor, width: tf.Tensor
) -> tf.Tensor:
    """[B,3,3] output->input map x_in = L (x - c) + c + shift, c the image centre."""
    cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    # Written out elementwise: batched matmul kernels change their summation order with the
    # batch size, which would make an image's warp depend on its batch.
    offset = tf.stack(
        [
            cx - (linear[:, 0, 0] * cx + linear[:, 0, 1] * cy),
            cy - (linear[:, 1, 0] * cx + linear[:, 1, 1] * cy),
        ],
        axis=1,
    )
    top = tf.concat([linear, (offset + shift)[:, :, None]], axis=2)
    bottom = tf.broadcast_to(tf.constant([[0.0, 0.0, 1.0]]), [tf.shape(linear)[0], 1, 3])
    return tf.concat([top, bottom], axis=1)


def _matrix_2x2(a, b, c, d) -> tf.Tensor:
    return tf.stack([tf.stack([a, b], axis=-1), tf.stack([c, d], axis=-1)], axis=-2)


def _crop_box(op: Op, table: tf.Tensor, col: int, height: tf.Tensor, width: tf.Tensor):
    """Crop height/width (pixels) and top-left corner, torchvision-style but without retries."""
    area = _uniform(table, col, *op["scale"]) * height * width
    log_ratio = _uniform(table, col + 1, math.log(op["ratio"][0]), math.log(op["ratio"][1]))
    crop_w = tf.minimum(tf.sqrt(area * tf.exp(log_ratio)), width)
    crop_h = tf.minimum(tf.sqrt(area / tf.exp(log_ratio)), height)
    x0 = table[:, col + 2] * (width - crop_w)
    y0 = table[:, col + 3] * (height - crop_h)
    return crop_h, crop_w, y0, x0


def _op_matrix(inst: _Instance, table: tf.Tensor, height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    op, col = inst.op, inst.first_column
    batch = tf.shape(table)[0]
    zeros, ones = tf.zeros([batch]), tf.ones([batch])
    no_shift = tf.zeros([batch, 2])
    if op.name == "flip_left_right":
        matrix = _about_centre(_matrix_2x2(-ones, zeros, zeros, ones), no_shift, height, width)
    elif op.name == "flip_up_down":
        matrix = _about_centre(_matrix_2x2(ones, zeros, zeros, -ones), no_shift, height, width)
    elif op.name == "rotate":
        angle = _symmetric(table, col, math.radians(op["max_degrees"]))
        cos, sin = tf.cos(angle), tf.sin(angle)
        matrix = _about_centre(_matrix_2x2(cos, -sin, sin, cos), no_shift, height, width)
    elif op.name == "zoom":
        inverse_scale = 1.0 / _uniform(table, col, op["min_scale"], op["max_scale"])
        matrix = _about_centre(
            _matrix_2x2(inverse_scale, zeros, zeros, inverse_scale), no_shift, height, width
        )
    elif op.name == "translate":
        shift = tf.stack(
            [
                -_symmetric(table, col, op["max_dx"]) * width,
                -_symmetric(table, col + 1, op["max_dy"]) * height,
            ],
            axis=1,
        )
        matrix = _about_centre(_matrix_2x2(ones, zeros, zeros, ones), shift, height, width)
    elif op.name == "shear":
        limit = math.radians(op["max_degrees"])
        shear_x = tf.tan(_symmetric(table, col, limit)) if op["axis"] != "y" else zeros
        shear_y = tf.tan(_symmetric(table, col + 1, limit)) if op["axis"] != "x" else zeros
        # (shear along x) @ (shear along y): determinant 1, never degenerate.
        matrix = _about_centre(
            _matrix_2x2(1.0 + shear_x * shear_y, shear_x, shear_y, ones), no_shift, height, width
        )
    elif op.name == "random_resized_crop":
        crop_h, crop_w, y0, x0 = _crop_box(op, table, col, height, width)
        sx, sy = crop_w / width, crop_h / height
        row0 = tf.stack([sx, zeros, x0 + 0.5 * sx - 0.5], axis=1)
        row1 = tf.stack([zeros, sy, y0 + 0.5 * sy - 0.5], axis=1)
        row2 = tf.stack([zeros, zeros, ones], axis=1)
        matrix = tf.stack([row0, row1, row2], axis=1)
    else:  # pragma: no cover - the catalogue and this switch are kept in step by tests
        raise NotImplementedError(op.name)
    return _gated(inst.gate, table, matrix, tf.eye(3, batch_shape=[batch]))


def _rowwise(fn, table: tf.Tensor, shape: list[int]) -> tf.Tensor:
    """fn applied to each image's row of draws alone ([1, n] -> [1, *shape]), stacked.

    Per-image parameters go through transcendental functions (sin, tan, exp, sqrt). TensorFlow
    evaluates those with vectorised approximations for most of a tensor and scalar code for its
    tail, so computed batch-wide an image's angle could differ in the last bit depending on its
    position in the batch. One image at a time, every caller gets the same bits.
    """
    return tf.map_fn(
        lambda row: fn(row[None])[0], table, fn_output_signature=tf.TensorSpec(shape, tf.float32)
    )


def _matmul_3x3(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """[B,3,3] @ [B,3,3] as a fixed sum of outer products (see `_about_centre` for why)."""
    return (a[:, :, 0:1] * b[:, 0:1, :] + a[:, :, 1:2] * b[:, 1:2, :]) + a[:, :, 2:3] * b[:, 2:3, :]


def _warp(stage: _Stage, images, masks, table, fill_mode: str, fill_value: float, scale: float):
    shape = tf.shape(images)
    height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)

    def transform_of(row):
        # Output->input maps compose left to right: the first listed op's map is applied last.
        matrix = _op_matrix(stage.instances[0], row, height, width)
        for inst in stage.instances[1:]:
            matrix = _matmul_3x3(matrix, _op_matrix(inst, row, height, width))
        return tf.reshape(matrix, [-1, 9])[:, :8]

    transforms = _rowwise(transform_of, table, [8])

    def apply(x, interpolation, fill):
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=x,
            transforms=transforms,
            output_shape=shape[1:3],
            fill_value=tf.cast(fill, tf.float32),
            interpolation=interpolation,
            fill_mode=fill_mode.upper(),
        )

    images = apply(images, "BILINEAR", fill_value * scale)
    if masks is not None:
        masks = apply(masks, "NEAREST", 0.0)
    return images, masks


def _flip(stage: _Stage, images, masks, table):
    batch = tf.shape(images)[0]
    flip_lr = tf.zeros([batch], tf.bool)
    flip_ud = tf.zeros([batch], tf.bool)
    for inst in stage.instances:  # two flips of the same axis cancel
        mask = _gate_mask(inst.gate, table)
        if inst.op.name == "flip_left_right":
            flip_lr = tf.math.logical_xor(flip_lr, mask)
        else:
            flip_ud = tf.math.logical_xor(flip_ud, mask)

    def apply(x):
        x = tf.where(flip_lr[:, None, None, None], tf.reverse(x, axis=[2]), x)
        return tf.where(flip_ud[:, None, None, None], tf.reverse(x, axis=[1]), x)

    return apply(images), (apply(masks) if masks is not None else None)


def _crop(stage: _Stage, images, masks, table):
    (inst,) = stage.instances
    shape = tf.shape(images)
    height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)

    def box_of(row):
        crop_h, crop_w, y0, x0 = _crop_box(inst.op, row, inst.first_column, height, width)
        # The same sampling points as the warp path (pixel centres), clamped inside the image.
        span_y, span_x = tf.maximum(height - 1.0, 1.0), tf.maximum(width - 1.0, 1.0)
        sy, sx = crop_h / height, crop_w / width
        boxes = tf.stack(
            [
                tf.maximum((y0 + 0.5 * sy - 0.5) / span_y, 0.0),
                tf.maximum((x0 + 0.5 * sx - 0.5) / span_x, 0.0),
                tf.minimum((y0 + crop_h - 0.5 * sy - 0.5) / span_y, 1.0),
                tf.minimum((x0 + crop_w - 0.5 * sx - 0.5) / span_x, 1.0),
            ],
            axis=1,
        )
        return _gated(inst.gate, row, boxes, tf.constant([[0.0, 0.0, 1.0, 1.0]]))

    boxes = _rowwise(box_of, table, [4])
    indices = tf.range(shape[0])
    out = tf.image.crop_and_resize(images, boxes, indices, shape[1:3], method="bilinear")
    if masks is not None:
        masks = tf.cast(
            tf.image.crop_and_resize(masks, boxes, indices, shape[1:3], method="nearest"),
            masks.dtype,
        )
    return out, masks


# ----------------------------------------------------------------------------------------------
# Photometric ops: images are float32 in [0, 1] here, colour channels only
# ----------------------------------------------------------------------------------------------


def _per_image(values: tf.Tensor) -> tf.Tensor:
    return values[:, None, None, None]


def _grayscale(x: tf.Tensor) -> tf.Tensor:
    if x.shape[-1] == 1:
        return x
    # Written out rather than reduce_sum: a fixed order of additions for every image.
    red, green, blue = (x[..., i : i + 1] * w for i, w in enumerate(_GRAY_WEIGHTS))
    return (red + green) + blue


def _spatial_mean(x: tf.Tensor) -> tf.Tensor:
    """Per-image, per-channel mean [B,1,1,C], the same whatever the batch around the image.

    Float32 reductions sum in an order that depends on the tensor's shape (batch size, thread
    count), so the same image could get a mean one ulp apart in two batches, and a pixel one
    level apart after rounding. Summing in float64 makes such differences vanish on the way back
    to float32.
    """
    return tf.cast(tf.reduce_mean(tf.cast(x, tf.float64), axis=[1, 2], keepdims=True), x.dtype)


def _blend(base: tf.Tensor, x: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """base + factor * (x - base): factor 1 is x, 0 is base (PIL ImageEnhance semantics)."""
    return base + _per_image(factor) * (x - base)


def _shift(x: tf.Tensor, dy: int, dx: int) -> tf.Tensor:
    """x moved by (dy, dx) pixels with zeros coming in (elementwise, batch-independent)."""
    height, width = tf.shape(x)[1], tf.shape(x)[2]
    pad_y, pad_x = abs(dy), abs(dx)
    padded = tf.pad(x, [[0, 0], [pad_y, pad_y], [pad_x, pad_x], [0, 0]])
    return padded[:, pad_y - dy : pad_y - dy + height, pad_x - dx : pad_x - dx + width, :]


def _gaussian_blur(x: tf.Tensor, sigma: tf.Tensor, max_sigma: float) -> tf.Tensor:
    """Separable blur with a per-image sigma; borders renormalised (no reflected pixels).

    Written as weighted shifts rather than a convolution so every image's result is the same
    arithmetic alone or in any batch.
    """
    radius = max(1, int(math.ceil(3.0 * max_sigma)))
    offsets = tf.range(-radius, radius + 1, dtype=tf.float32)
    weights = tf.map_fn(
        lambda one_sigma: tf.exp(-0.5 * tf.square(offsets / one_sigma)),
        sigma,
        fn_output_signature=tf.TensorSpec([2 * radius + 1], tf.float32),
    )
    ones = tf.ones_like(x[..., :1])

    def one_pass(values, norm, vertical):
        total, count = tf.zeros_like(values), tf.zeros_like(norm)
        for k in range(2 * radius + 1):
            d = k - radius
            w = _per_image(weights[:, k])
            dy, dx = (d, 0) if vertical else (0, d)
            total += w * _shift(values, dy, dx)
            count += w * _shift(norm, dy, dx)
        return total, count

    blurred, norm = one_pass(x, ones, vertical=True)
    blurred, norm = blurred / norm, ones
    blurred, norm = one_pass(blurred, ones, vertical=False)
    return blurred / norm


def _sharpen_base(x: tf.Tensor) -> tf.Tensor:
    """PIL's SMOOTH filter (centre 5, neighbours 1, /13); border pixels keep their value."""
    total = 5.0 * x
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                total += _shift(x, dy, dx)
    smooth = total / 13.0
    height, width = tf.shape(x)[1], tf.shape(x)[2]
    rows = tf.range(height)[:, None]
    cols = tf.range(width)[None, :]
    inner = (rows > 0) & (rows < height - 1) & (cols > 0) & (cols < width - 1)
    return tf.where(inner[None, :, :, None], smooth, x)


def _equalize(x: tf.Tensor) -> tf.Tensor:
    """PIL ImageOps.equalize per image and channel, batched through one bincount."""
    values = tf.cast(tf.round(x * 255.0), tf.int32)  # [B, H, W, C]
    batch, channels = tf.shape(values)[0], tf.shape(values)[3]
    planes = tf.transpose(values, [0, 3, 1, 2])  # [B, C, H, W]
    plane_ids = tf.range(batch * channels)[:, None, None]
    flat = tf.reshape(planes, [batch * channels, -1]) + tf.reshape(plane_ids, [-1, 1]) * 256
    hist = tf.reshape(
        tf.math.bincount(
            tf.reshape(flat, [-1]),
            minlength=batch * channels * 256,
            maxlength=batch * channels * 256,
        ),
        [batch * channels, 256],
    )
    last_nonzero = 255 - tf.argmax(
        tf.reverse(tf.cast(hist > 0, tf.int32), axis=[1]), axis=1, output_type=tf.int32
    )
    last_count = tf.gather(hist, last_nonzero, batch_dims=1)
    step = (tf.reduce_sum(hist, axis=1) - last_count) // 255
    safe_step = tf.maximum(step, 1)[:, None]
    exclusive = tf.cumsum(hist, axis=1, exclusive=True)
    lut = tf.minimum((exclusive + safe_step // 2) // safe_step, 255)
    lut = tf.where((step > 0)[:, None], lut, tf.range(256)[None, :])
    flat_planes = tf.reshape(planes, [batch * channels, -1])
    mapped = tf.gather(lut, flat_planes, batch_dims=1)
    mapped = tf.transpose(tf.reshape(mapped, tf.shape(planes)), [0, 2, 3, 1])
    return tf.cast(mapped, tf.float32) / 255.0


def _autocontrast(x: tf.Tensor) -> tf.Tensor:
    """Stretches each channel to the full range, in integer arithmetic so eager and graph
    execution (where Grappler may rewrite float division) round every pixel alike."""
    values = tf.cast(tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0), tf.int32)
    low = tf.reduce_min(values, axis=[1, 2], keepdims=True)
    span = tf.reduce_max(values, axis=[1, 2], keepdims=True) - low
    safe_span = tf.maximum(span, 1)
    stretched = ((values - low) * 510 + safe_span) // (2 * safe_span)  # round half up
    return tf.where(span > 0, tf.cast(stretched, tf.float32) / 255.0, x)


def _jpeg(x: tf.Tensor, quality: tf.Tensor) -> tf.Tensor:
    as_uint8 = tf.cast(tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0), tf.uint8)

    def one(args):
        image, q = args
        return tf.image.adjust_jpeg_quality(image, q)

    out = tf.map_fn(
        one,
        (as_uint8, quality),
        fn_output_signature=tf.TensorSpec([None, None, x.shape[-1]], tf.uint8),
    )
    return tf.cast(out, tf.float32) / 255.0


def _cutout(x: tf.Tensor, op: Op, table: tf.Tensor, col: int) -> tf.Tensor:
    shape = tf.shape(x)
    height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    count = op["count"]
    centres_y = table[:, col : col + count] * height  # [B, N]
    centres_x = table[:, col + count : col + 2 * count] * width
    half_h = 0.5 * op["size"] * height
    half_w = 0.5 * op["size"] * width
    rows = tf.range(height)[None, None, :] + 0.5  # pixel centres
    cols = tf.range(width)[None, None, :] + 0.5
    in_rows = tf.abs(rows - centres_y[:, :, None]) < half_h  # [B, N, H]
    in_cols = tf.abs(cols - centres_x[:, :, None]) < half_w  # [B, N, W]
    covered = tf.reduce_any(in_rows[:, :, :, None] & in_cols[:, :, None, :], axis=1)
    return tf.where(covered[:, :, :, None], tf.cast(op["fill"], x.dtype), x)


def _photometric(inst: _Instance, x: tf.Tensor, table: tf.Tensor, seeds: tf.Tensor) -> tf.Tensor:
    """One photometric op on float colour channels in [0, 1], for the images its gate opens."""
    op, col = inst.op, inst.first_column
    name = op.name
    if name == "brightness":
        out = x + _per_image(_symmetric(table, col, op["max_delta"]))
    elif name == "contrast":
        mean = _spatial_mean(x)
        out = _blend(mean, x, _uniform(table, col, op["lower"], op["upper"]))
    elif name == "saturation":
        if x.shape[-1] == 1:
            return x
        out = _blend(_grayscale(x), x, _uniform(table, col, op["lower"], op["upper"]))
    elif name == "hue":
        if x.shape[-1] == 1:
            return x
        hsv = tf.image.rgb_to_hsv(tf.clip_by_value(x, 0.0, 1.0))
        hue = tf.math.floormod(
            hsv[..., :1] + _per_image(_symmetric(table, col, op["max_delta"])), 1.0
        )
        out = tf.image.hsv_to_rgb(tf.concat([hue, hsv[..., 1:]], axis=-1))
    elif name == "gamma":
        # One image at a time, for the reason given in `_rowwise`.
        out = tf.map_fn(
            lambda args: tf.pow(args[0], args[1]),
            (tf.clip_by_value(x, 0.0, 1.0), _uniform(table, col, op["min"], op["max"])),
            fn_output_signature=tf.TensorSpec(x.shape[1:], tf.float32),
        )
    elif name == "gaussian_noise":
        node_id = inst.node_id
        noise = tf.map_fn(
            lambda s: tf.random.stateless_normal(
                tf.shape(x)[1:],
                tf.random.experimental.stateless_fold_in(
                    tf.random.experimental.stateless_fold_in(s, node_id), 1
                ),
            ),
            seeds,
            fn_output_signature=tf.TensorSpec(x.shape[1:], tf.float32),
        )
        out = x + op["stddev"] * noise
    elif name == "gaussian_blur":
        low, high = op["sigma"]
        out = _gaussian_blur(x, _uniform(table, col, low, high), high)
    elif name == "jpeg_quality":
        quality = tf.cast(tf.floor(_uniform(table, col, op["min"], op["max"] + 1)), tf.int32)
        out = _jpeg(x, tf.minimum(quality, op["max"]))
    elif name == "grayscale":
        out = tf.broadcast_to(_grayscale(x), tf.shape(x))
    elif name == "solarize":
        out = tf.where(x >= op["threshold"], 1.0 - x, x)
    elif name == "posterize":
        levels = tf.cast(tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0), tf.int32)
        keep = 256 - 2 ** (8 - op["bits"])  # the top `bits` bits
        out = tf.cast(tf.bitwise.bitwise_and(levels, keep), tf.float32) / 255.0
    elif name == "equalize":
        out = _equalize(tf.clip_by_value(x, 0.0, 1.0))
    elif name == "autocontrast":
        out = _autocontrast(x)
    elif name == "sharpness":
        out = _blend(_sharpen_base(x), x, _uniform(table, col, op["lower"], op["upper"]))
    elif name == "cutout":
        out = _cutout(x, op, table, col)
    else:  # pragma: no cover - the catalogue and this switch are kept in step by tests
        raise NotImplementedError(name)
    return _gated(inst.gate, table, out, x)


# ----------------------------------------------------------------------------------------------
# The entry point
# ----------------------------------------------------------------------------------------------


def validate_images(images: tf.Tensor) -> None:
    if images.shape.rank != 4:
        raise ValueError(f"Images must be a batch [B, H, W, C]; got shape {images.shape}.")
    channels = images.shape[-1]
    if channels not in SUPPORTED_CHANNELS:
        raise ValueError(
            f"Images must have 1, 3 or 4 channels (a static channel count); got {channels}."
        )
    if images.dtype != tf.uint8 and not images.dtype.is_floating:
        raise ValueError(
            f"Images must be uint8, or floating point with a value range; got {images.dtype.name}."
        )


def augment(
    images, seeds, policy: Policy | Plan, *, value_range: Sequence[float] | None = None, masks=None
):
    """Augments a batch: a pure function of (images, seeds, policy).

    Args:
      images: [B, H, W, C] (or one image [H, W, C]) uint8, or floating point in `value_range`.
        C is 1, 3 or 4 (alpha is kept).
      seeds: int64 [B, 2] (or [2] for one image), one seed per image.
      policy: a `Policy` (or its compiled `Plan`).
      value_range: (low, high) of floating-point images; default (0, 1). Ignored for uint8.
      masks: optional integer segmentation masks [B, H, W, 1], moved with the same geometry
        (nearest sampling) and untouched by photometric ops.

    Returns:
      The augmented images (same dtype, shape and range), or (images, masks) when masks given.
    """
    plan = policy if isinstance(policy, Plan) else compile_policy(policy)
    images = tf.convert_to_tensor(images)
    seeds = tf.cast(tf.convert_to_tensor(seeds), tf.int64)
    single = images.shape.rank == 3
    if single:
        images, seeds = images[None], seeds[None]
        masks = masks[None] if masks is not None else None
    validate_images(images)
    if masks is not None:
        masks = tf.convert_to_tensor(masks)
    value_range = (
        None if images.dtype == tf.uint8 else tuple(float(v) for v in (value_range or (0.0, 1.0)))
    )
    run = _graph_for(
        plan,
        images.dtype,
        images.shape[-1],
        value_range,
        None if masks is None else (masks.dtype, masks.shape[-1]),
    )
    out_images, out_masks = (
        run(images, seeds, masks) if masks is not None else (run(images, seeds), None)
    )
    # The graph takes any size; give back the static shape the caller passed in.
    out_images = tf.ensure_shape(out_images, images.shape)
    if out_masks is not None:
        out_masks = tf.ensure_shape(out_masks, masks.shape)
    if single:
        out_images = out_images[0]
        out_masks = out_masks[0] if out_masks is not None else None
    return out_images if masks is None else (out_images, out_masks)


_GRAPHS: dict = {}


def _graph_for(plan: Plan, dtype: tf.DType, channels: int, value_range, mask_spec):
    """One traced, never-inlined function per (plan, input kind).

    Every caller - eager code, a tf.function, a tf.data map, a Keras model, a SavedModel - runs
    this same function body with the same dynamic-shape trace, so TensorFlow's graph rewrites
    (which may reorder float arithmetic) are the same for all of them, and so are the pixels.
    """
    key = (plan, dtype, channels, value_range, mask_spec)
    if key in _GRAPHS:
        return _GRAPHS[key]
    signature = [
        tf.TensorSpec([None, None, None, channels], dtype),
        tf.TensorSpec([None, 2], tf.int64),
    ]
    attributes = {"_noinline": True}
    if mask_spec is None:

        def body(images, seeds):
            return _run_plan(plan, images, seeds, value_range, None)[0]
    else:
        signature.append(tf.TensorSpec([None, None, None, mask_spec[1]], mask_spec[0]))

        def body(images, seeds, masks):
            return _run_plan(plan, images, seeds, value_range, masks)

    graph = tf.function(
        body, input_signature=signature, autograph=False, experimental_attributes=attributes
    )
    _GRAPHS[key] = graph
    return graph


def _run_plan(plan: Plan, images, seeds, value_range, masks):
    if not plan.stages:
        return images, masks
    input_dtype = images.dtype
    is_uint8 = input_dtype == tf.uint8
    low, high = (0.0, 255.0) if is_uint8 else tuple(value_range or (0.0, 1.0))
    channels = images.shape[-1]
    table = _draw_table(plan, seeds)

    # uint8 images stay uint8 through leading flips and warps (no float round trip); the first
    # stage that needs [0, 1] floats converts once, and the end converts back once.
    x = images if is_uint8 else (tf.cast(images, tf.float32) - low) / (high - low)
    as_unit_float = not is_uint8

    def to_unit_float(x):
        return tf.cast(x, tf.float32) / (255.0 if is_uint8 else 1.0)

    for stage in plan.stages:
        if stage.kind == "flip":
            x, masks = _flip(stage, x, masks, table)
        elif stage.kind == "warp":
            scale = 1.0 if as_unit_float else 255.0
            x, masks = _warp(
                stage, x, masks, table, plan.policy.fill_mode, plan.policy.fill_value, scale
            )
        elif stage.kind == "crop":
            x, masks = _crop(stage, x, masks, table)  # float32 out, same scale as in
            if not as_unit_float:
                x, as_unit_float = x / 255.0, True
        else:
            if not as_unit_float:
                x, as_unit_float = to_unit_float(x), True
            (inst,) = stage.instances
            if channels == 4:
                colour = _photometric(inst, x[..., :3], table, seeds)
                x = tf.concat([colour, x[..., 3:]], axis=-1)
            else:
                x = _photometric(inst, x, table, seeds)

    if is_uint8:
        if as_unit_float:
            x = tf.cast(tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0), tf.uint8)
        return x, masks
    x = tf.clip_by_value(x, 0.0, 1.0) * (high - low) + low
    return tf.cast(x, input_dtype), masks
