"""`ImageAugmentation`: the online door into the augmentation core, as a Keras layer.

Works with whichever Keras `tf.keras` is (Keras 3 on the TensorFlow backend, or tf_keras when
`TF_USE_LEGACY_KERAS=1`). Randomness never comes from a stateful RNG: the n-th training call
gives image i of its batch the seed `batch_seeds(seed, n, i, replica)`, so two runs with the same
seed see the same augmentations. A model containing the layer saves with
`tf.saved_model.save` and `model.export`; at inference the layer is an exact identity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import tensorflow as tf

from tfx_image_augment.core import augment as core
from tfx_image_augment.core.policy import Policy, load_policy
from tfx_image_augment.core.seeds import batch_seeds

BOX_FORMATS = ("rel_yxyx", "rel_xyxy", "yxyx", "xyxy")
_EPOCH_SHIFT = 40  # map_dataset folds the epoch into the seed's high word above this bit
# Inputs that steer the augmentation and are not given back.
_CONTROL_KEYS = ("seeds", "partners", "partner_labels")
# What Keras's own preprocessing layers take float images to span unless told otherwise.
KERAS_VALUE_RANGE = (0.0, 255.0)


def _order_and_scale(fmt: str, size: tf.Tensor):
    """(whether coordinates come x first, the divisor to normalized units [y, x])."""
    x_first = fmt.endswith("xyxy")
    scale = tf.ones([2]) if fmt.startswith("rel_") else size
    return x_first, scale


def _boxes_to_normalized(boxes, fmt: str, size) -> tf.Tensor:
    boxes = tf.cast(boxes, tf.float32)
    x_first, scale = _order_and_scale(fmt, size)
    if x_first:
        boxes = tf.gather(boxes, [1, 0, 3, 2], axis=-1)
    return boxes / tf.tile(scale, [2])


def _boxes_from_normalized(boxes, fmt: str, size) -> tf.Tensor:
    x_first, scale = _order_and_scale(fmt, size)
    boxes = boxes * tf.tile(scale, [2])
    return tf.gather(boxes, [1, 0, 3, 2], axis=-1) if x_first else boxes


def _as_dtype(values: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    """Moved coordinates back in the caller's dtype (integer pixels rounded)."""
    if dtype.is_integer:
        values = tf.round(values)
    return tf.cast(values, dtype)


def _points_to_normalized(points, fmt: str, size) -> tf.Tensor:
    points = tf.cast(points, tf.float32)
    x_first, scale = _order_and_scale(fmt, size)
    if x_first:
        points = tf.reverse(points, axis=[-1])
    return points / scale


def _points_from_normalized(points, fmt: str, size) -> tf.Tensor:
    x_first, scale = _order_and_scale(fmt, size)
    points = points * scale
    return tf.reverse(points, axis=[-1]) if x_first else points


def _replica_id() -> tf.Tensor | int:
    context = tf.distribute.get_replica_context()
    return context.replica_id_in_sync_group if context is not None else 0


@tf.keras.utils.register_keras_serializable(package="tfx_image_augment")
class ImageAugmentation(tf.keras.layers.Layer):
    """Applies an augmentation policy to image batches when training; identity otherwise.

    Call it on images [B, H, W, C], or on {"images": ..., "seeds": int64 [B, 2]} to pick the
    seeds yourself (that is what the offline copies record as `aug_seed`).

    Args:
      policy: the augmentation policy: a preset name (e.g. "standard", "no-flip"), a JSON
        string, a dict, the path of a JSON file or a `Policy`; validated here.
      seed: the integer (int64) all randomness derives from: training call n gives image i of
        its batch the seeds `batch_seeds(seed, n, i, replica)`, so two runs with the same seed
        see the same augmentations.
      value_range: (low, high) of floating-point inputs; default (0, 255), as Keras's own
        preprocessing layers assume (so a float image of uint8 data is never wiped to white).
        Give (0, 1) for images scaled to [0, 1]. uint8 inputs ignore it.
      bounding_box_format: how `bounding_boxes["boxes"]` and `keypoints` are given:
        "rel_yxyx" (normalized ymin, xmin, ymax, xmax; the default and the offline records'
        convention), "rel_xyxy", "yxyx" or "xyxy" (pixels).
      min_box_visibility: a box whose visible fraction after the geometric ops falls below
        this is marked gone (label -1); one with no area left always is.
      keypoint_flip_permutation: for keypoints with a handedness: in a mirrored image, slot j
        takes keypoint `permutation[j]` (e.g. [1, 0] swaps a left and a right point).
      boxes_from_masks: with "instance_masks", each object whose moved mask has pixels gets the
        tight box of those pixels (the offline door's `boxes_from_masks`).
      **kwargs: standard Keras layer arguments, such as `name` or `dtype`.

    Mixing ops (`mixup`, `cutmix`) blend each image with a partner: the previous image of the
    batch (image 0 takes the last), as Keras's MixUp and CutMix take another image of the
    batch, or the dict's "partners" [B, H, W, C]. Given "labels" (one-hot or soft, float
    [B, classes]), they mix by the same weights ("partner_labels" with explicit partners).
    Given the same partner, seed and policy, the pixels equal the offline copy's. `mosaic`
    tiles each image with the three before it in the batch (or "partners" [B, 3, H, W, C]),
    and their "bounding_boxes" come along: 4N rows per image, its own then each partner's
    (labels -1 where a box is gone).

    Call arguments:
      inputs: images [B, H, W, C] (C is 1, 3 or 4; uint8, or floating point in
        `value_range`), or a dict in Keras 3's convention: "images", optional "seeds",
        "segmentation_masks" [B, H, W, 1], "bounding_boxes" {"boxes": [B, N, 4] dense or
        ragged, "labels": [B, N]}, "keypoints" [B, N, K, 2] and "keypoint_visibility"
        [B, N, K] (integer values are kept, and follow `keypoint_flip_permutation` with their
        keypoints; a keypoint given with visibility 0 is not moved, NaN included), and
        "instance_masks" [B, N, H, W] uint8, one mask per box (dense, or ragged like the
        boxes). Everything in it moves with the pixels, by the same draws. For mixing
        policies: "labels", "partners", "partner_labels" (above).
      training: True augments; False or None returns the inputs unchanged; a boolean tensor
        decides at run time.

    Returns:
      The images (for an images-only input), or the dict with every entry moved: a box that
      leaves the image (or whose instance mask does) keeps its place with label -1, a
      keypoint with visibility 0.

    Raises:
      PolicyError: the policy is invalid (a ValueError naming the op, field and rule).
    """

    def __init__(
        self,
        policy: Any = "standard",
        seed: int = 0,
        value_range: Sequence[float] | None = None,
        bounding_box_format: str = "rel_yxyx",
        min_box_visibility: float = 0.0,
        keypoint_flip_permutation: Sequence[int] | None = None,
        boxes_from_masks: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if bounding_box_format not in BOX_FORMATS:
            raise ValueError(
                f"bounding_box_format must be one of {', '.join(BOX_FORMATS)}; "
                f"got {bounding_box_format!r}."
            )
        self.bounding_box_format = bounding_box_format
        self.min_box_visibility = float(min_box_visibility)
        self.boxes_from_masks = bool(boxes_from_masks)
        self.keypoint_flip_permutation = (
            None if keypoint_flip_permutation is None else tuple(keypoint_flip_permutation)
        )
        self._policy: Policy = load_policy(policy)
        self._plan = core.compile_policy(self._policy)
        self.seed = int(seed)
        self.value_range = tuple(float(v) for v in value_range) if value_range else None
        # Created here, not in build(), so the layer can be used inside tf.data functions, where
        # variables cannot be created. ONLY_FIRST_REPLICA keeps replicas in step; each replica
        # still gets its own seeds through its replica id.
        self._step = tf.Variable(
            0,
            dtype=tf.int64,
            trainable=False,
            name="augment_step",
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )

    @property
    def policy(self) -> Policy:
        return self._policy

    @property
    def float_range(self) -> tuple[float, float]:
        """The range float images are taken to be in: `value_range`, or Keras's (0, 255)."""
        return self.value_range or KERAS_VALUE_RANGE

    def augment(self, images: tf.Tensor, seeds: tf.Tensor) -> tf.Tensor:
        """The pure core: the same (images, seeds) give the same pixels, always."""
        return core.augment(images, seeds, self._plan, value_range=self.float_range)

    def call(self, inputs, training=True):
        if not isinstance(inputs, Mapping):
            return self._call_structure({"images": inputs}, training)["images"]
        inputs = dict(inputs)
        if not set(inputs) - {"images", *_CONTROL_KEYS}:  # images only: a tensor, as above
            return self._call_structure(inputs, training)["images"]
        return self._call_structure(inputs, training)

    def _call_structure(self, inputs: dict, training) -> dict:
        seeds = inputs.pop("seeds", None)
        if training is False or training is None:
            return {k: v for k, v in inputs.items() if k not in _CONTROL_KEYS}
        images = inputs["images"]

        def augmented():
            # The step advances only when a call augments: inference calls in between (a
            # `training` tensor that is False) leave the training seeds where they were.
            chosen = seeds
            if chosen is None:
                step = self._step.assign_add(1, read_value=True) - 1
                chosen = batch_seeds(self.seed, step, tf.shape(images)[0], _replica_id())
            return self._augment_structure(inputs, chosen)

        if training is True:
            return augmented()
        return tf.cond(
            tf.cast(training, tf.bool),
            augmented,
            lambda: {
                k: tf.nest.map_structure(tf.identity, v)
                for k, v in inputs.items()
                if k not in _CONTROL_KEYS
            },
        )

    def _augment_structure(self, inputs: dict, seeds) -> dict:
        """Keras 3's dict convention: `images`, `segmentation_masks`, `bounding_boxes` (`boxes`
        in `bounding_box_format`, dense or ragged, and `labels`; a box that leaves the image
        gets label -1, the KerasCV padding value) and `keypoints` [B, N, K, 2] in the box
        format's order and units (with optional `keypoint_visibility`, 0 once outside), and
        `instance_masks` [B, N, H, W] beside the boxes (an object whose mask leaves the image
        gets label -1 too)."""
        images = inputs["images"]
        shape = tf.shape(images)
        rank3 = images.shape.rank == 3
        size = tf.cast(shape[-3:-1], tf.float32)  # (height, width)
        kwargs: dict[str, Any] = {}
        boxes_in = inputs.get("bounding_boxes")
        lengths = None
        if boxes_in is not None:
            boxes = boxes_in["boxes"]
            if isinstance(boxes, tf.RaggedTensor):
                lengths = boxes.row_lengths()
                boxes = boxes.to_tensor()
            kwargs["boxes"] = _boxes_to_normalized(boxes, self.bounding_box_format, size)
            if lengths is not None:
                kwargs["box_valid"] = tf.sequence_mask(lengths, tf.shape(boxes)[1])
        if "instance_masks" in inputs:
            if boxes_in is None:
                raise ValueError("'instance_masks' need 'bounding_boxes' (one box per mask).")
            instance_masks = inputs["instance_masks"]
            if isinstance(instance_masks, tf.RaggedTensor):
                instance_masks = instance_masks.to_tensor()
            kwargs["instance_masks"] = instance_masks
            kwargs["boxes_from_masks"] = self.boxes_from_masks
        if "keypoints" in inputs:
            kwargs["keypoints"] = _points_to_normalized(
                inputs["keypoints"], self.bounding_box_format, size
            )
            if "keypoint_visibility" in inputs:
                # Integer values (COCO's 2/1/0) go through the core as they are; others as bool.
                kwargs["keypoint_visible"] = inputs["keypoint_visibility"]
        if rank3 and seeds.shape.rank == 2:  # one image: seeds [1, 2] or [2]
            seeds = seeds[0]
        if self._plan.mixing_ops:
            kwargs["partners"] = self._partners(inputs, rank3)
            if self._plan.tiling_ops and "boxes" in kwargs:
                count = self._plan.partner_count
                kwargs["partner_boxes"] = core.batch_partners(kwargs["boxes"], count)
                if "box_valid" in kwargs:
                    kwargs["partner_box_valid"] = core.batch_partners(kwargs["box_valid"], count)
        out = core.augment_targets(
            images,
            seeds,
            self._plan,
            value_range=self.float_range,
            masks=inputs.get("segmentation_masks"),
            min_box_visibility=self.min_box_visibility,
            keypoint_flip_permutation=self.keypoint_flip_permutation,
            **kwargs,
        )
        result = {k: v for k, v in inputs.items() if k not in _CONTROL_KEYS}
        result["images"] = out["images"]
        if self._plan.mixing_ops and "labels" in inputs:
            result["labels"] = self._mixed_labels(inputs, out["mix_weights"])
        if "segmentation_masks" in inputs:
            result["segmentation_masks"] = out["masks"]
        if boxes_in is not None:
            boxes = _boxes_from_normalized(out["boxes"], self.bounding_box_format, size)
            boxes = _as_dtype(boxes, boxes_in["boxes"].dtype)
            labels = boxes_in.get("labels")
            moved = dict(boxes_in, boxes=boxes)
            if labels is not None:
                dense_labels = labels.to_tensor() if isinstance(labels, tf.RaggedTensor) else labels
                if "partner_boxes" in kwargs:  # tiled: the partners' labels follow their rows
                    rolled = core.batch_partners(dense_labels, self._plan.partner_count)
                    dense_labels = tf.concat(
                        [dense_labels, tf.reshape(rolled, [tf.shape(rolled)[0], -1])], axis=1
                    )
                moved["labels"] = tf.where(
                    out["box_valid"], dense_labels, tf.cast(-1, dense_labels.dtype)
                )
            if lengths is not None and "partner_boxes" in kwargs:
                # Tiled rows are padded per image: every row comes back (labels -1 mark gaps).
                lengths = tf.fill(tf.shape(lengths), tf.cast(tf.shape(boxes)[1], lengths.dtype))
            if lengths is not None:
                splits_dtype = boxes_in["boxes"].row_splits.dtype
                moved = {
                    k: tf.RaggedTensor.from_tensor(
                        v, lengths=lengths, row_splits_dtype=splits_dtype
                    )
                    if k in ("boxes", "labels")
                    else v
                    for k, v in moved.items()
                }
            result["bounding_boxes"] = moved
        if "instance_masks" in inputs:
            masks, given = out["instance_masks"], inputs["instance_masks"]
            if isinstance(given, tf.RaggedTensor):  # back as ragged as it came
                masks = tf.RaggedTensor.from_tensor(
                    masks, lengths=given.row_lengths(), row_splits_dtype=given.row_splits.dtype
                )
            result["instance_masks"] = masks
        if "keypoints" in inputs:
            result["keypoints"] = _as_dtype(
                _points_from_normalized(out["keypoints"], self.bounding_box_format, size),
                inputs["keypoints"].dtype,
            )
            given = inputs.get("keypoint_visibility")
            result["keypoint_visibility"] = tf.cast(
                out["keypoint_visible"], tf.int32 if given is None else given.dtype
            )
        return result

    def _partners(self, inputs: dict, rank3: bool) -> tf.Tensor:
        """The images the mixing ops blend in: the dict's "partners", or the batch rolled (image
        i takes image i - 1; mosaic's three partners are images i - 1, i - 2, i - 3)."""
        if "partners" in inputs:
            return tf.cast(inputs["partners"], inputs["images"].dtype)
        if rank3:
            raise ValueError(
                f"The policy mixes images ({', '.join(self._plan.mixing_ops)}): a single image "
                "has no partner in its batch; give a batch, or 'partners' in the dict."
            )
        return core.batch_partners(inputs["images"], self._plan.partner_count)

    def _mixed_labels(self, inputs: dict, shares: tf.Tensor) -> tf.Tensor:
        """Labels blended by each image's share of its pixels (Keras's MixUp convention)."""
        labels = inputs["labels"]
        if self._plan.tiling_ops:
            raise ValueError(
                "The policy tiles four images (mosaic): one weight cannot mix their class "
                "labels; give objects as 'bounding_boxes' (their labels move with them)."
            )
        if not labels.dtype.is_floating:
            raise ValueError(
                "Mixing needs one-hot or soft labels (float [B, classes], e.g. tf.one_hot) to "
                f"blend; got {labels.dtype.name} labels."
            )
        if "partner_labels" in inputs:
            partner_labels = tf.cast(inputs["partner_labels"], labels.dtype)
        elif "partners" in inputs:
            raise ValueError("'labels' with explicit 'partners' need 'partner_labels' too.")
        else:
            partner_labels = core.batch_partners(labels, 1)[:, 0]
        share = tf.reshape(tf.cast(shares, labels.dtype), [-1] + [1] * (labels.shape.rank - 1))
        return share * labels + (1 - share) * partner_labels

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, Mapping):
            if not set(input_shape) - {"images", *_CONTROL_KEYS}:
                return input_shape["images"]
            return {k: v for k, v in input_shape.items() if k not in _CONTROL_KEYS}
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "policy": self._policy.to_dict(),
                "seed": self.seed,
                "value_range": list(self.value_range) if self.value_range else None,
                "bounding_box_format": self.bounding_box_format,
                "min_box_visibility": self.min_box_visibility,
                "boxes_from_masks": self.boxes_from_masks,
                "keypoint_flip_permutation": (
                    None
                    if self.keypoint_flip_permutation is None
                    else list(self.keypoint_flip_permutation)
                ),
            }
        )
        return config

    def map_dataset(
        self,
        dataset: tf.data.Dataset,
        feature: str | int | None = None,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic: bool = True,
        new_copies_each_epoch: bool = True,
    ):
        """`dataset` with its images augmented, reproducibly even with parallel calls.

        Elements may be image batches [B, H, W, C] (or single images [H, W, C]); dicts in
        Keras 3's convention ("images" with "bounding_boxes", "keypoints",
        "segmentation_masks", "instance_masks", ...: everything moves with the pixels, as in
        `call`); tuples whose first item (or `feature`) holds the images; or dicts whose key
        `feature` holds them. The n-th element of epoch e gets the seeds of training call n
        (`batch_seeds(seed, n, i)`), from its position in the dataset rather than from a counter
        that parallel calls would race on, with the epoch folded into the seed's high word
        (`seed ^ e << 40`) so that every pass over the returned dataset makes new copies; its
        first pass is always the same. `new_copies_each_epoch=False` gives every epoch the
        copies of epoch 0.
        """

        def apply(epoch, index, element):
            seed = tf.bitwise.bitwise_xor(
                tf.constant(self.seed, tf.int64), tf.bitwise.left_shift(epoch, _EPOCH_SHIFT)
            )
            if isinstance(element, Mapping) and feature is None:
                if "images" not in element:
                    raise KeyError(
                        "map_dataset: a dict element needs an 'images' key (Keras 3's "
                        f"convention) or map_dataset(feature=KEY); its keys are {sorted(element)}"
                    )
                element = dict(element)
                images = element["images"]
                return self._augment_structure(element, self._element_seeds(seed, index, images))
            if isinstance(element, Mapping):
                if feature not in element:
                    raise KeyError(f"map_dataset: feature {feature!r} is not in {sorted(element)}")
                element = dict(element)
                element[feature] = self._augment_element(seed, index, element[feature])
                return element
            if isinstance(element, tuple):
                items = list(element)
                position = 0 if feature is None else feature
                items[position] = self._augment_element(seed, index, items[position])
                return tuple(items)
            return self._augment_element(seed, index, element)

        def one_epoch(epoch):
            return dataset.enumerate().map(
                lambda index, element: apply(epoch, index, element),
                num_parallel_calls=num_parallel_calls,
                deterministic=None if num_parallel_calls is None else deterministic,
            )

        if not new_copies_each_epoch:
            return one_epoch(tf.constant(0, tf.int64))
        # This dataset's own count of passes (so two datasets made from one layer agree), read
        # and advanced once each time the dataset is iterated.
        passes = tf.Variable(0, dtype=tf.int64, trainable=False, name="augment_epoch")
        epochs = tf.data.Dataset.range(1).map(lambda _: passes.assign_add(1) - 1)
        return epochs.flat_map(one_epoch)

    @staticmethod
    def _element_seeds(seed: tf.Tensor, index: tf.Tensor, images: tf.Tensor) -> tf.Tensor:
        count = 1 if images.shape.rank == 3 else tf.shape(images)[0]
        return batch_seeds(seed, index, count)

    def _augment_element(self, seed: tf.Tensor, index: tf.Tensor, images: tf.Tensor) -> tf.Tensor:
        seeds = self._element_seeds(seed, index, images)
        if images.shape.rank == 3:
            return self.augment(images[None], seeds)[0]
        return self.augment(images, seeds)
