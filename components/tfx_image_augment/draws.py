"""Per-image random draws: the [B, num_draws] table of uniforms, and the gates that read it."""

from __future__ import annotations

import tensorflow as tf

from tfx_image_augment.plan import Gate, Plan


def draw_table(plan: Plan, seeds: tf.Tensor) -> tf.Tensor:
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


def gate_mask(gate: Gate, table: tf.Tensor) -> tf.Tensor:
    """[B] bool: the images this gate opens for."""
    mask = tf.ones([tf.shape(table)[0]], tf.bool)
    for column, p in gate.probability_columns:
        if p < 1.0:
            mask &= table[:, column] < p
    for column, cumulative, index in gate.choice_columns:
        u = table[:, column]
        low = cumulative[index - 1] if index > 0 else 0.0
        mask &= (u >= low) & (u < cumulative[index])
    return mask


def gated(gate: Gate, table: tf.Tensor, applied: tf.Tensor, unchanged: tf.Tensor) -> tf.Tensor:
    """`applied` for the images whose gate opens, `unchanged` for the others."""
    if gate.always_applies:  # p = 1 outside a choice: skip a pass over the pixels
        return applied
    mask = gate_mask(gate, table)
    return tf.where(tf.reshape(mask, [-1] + [1] * (applied.shape.rank - 1)), applied, unchanged)


def rowwise(fn, table: tf.Tensor, shape: list[int]) -> tf.Tensor:
    """fn applied to each image's row of draws alone ([1, n] -> [1, *shape]), stacked.

    Per-image parameters go through transcendental functions (sin, tan, exp, sqrt). TensorFlow
    evaluates those with vectorised approximations for most of a tensor and scalar code for its
    tail, so computed batch-wide an image's angle could differ in the last bit depending on its
    position in the batch. One image at a time, every caller gets the same bits.
    """
    return tf.map_fn(
        lambda row: fn(row[None])[0], table, fn_output_signature=tf.TensorSpec(shape, tf.float32)
    )
