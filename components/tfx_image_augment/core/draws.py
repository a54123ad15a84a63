"""Per-image random draws: the [B, num_draws] table of uniforms, and the gates that read it."""

from __future__ import annotations

import functools

import tensorflow as tf

from tfx_image_augment.core.plan import Gate, Plan

# Philox4x32-10 (Salmon et al. 2011), as TensorFlow's CPU and GPU kernels run it for
# `tf.random.stateless_uniform` and `stateless_fold_in` (tensorflow/core/lib/random/philox_random.h
# and GenerateKey in stateless_random_ops.cc).
_PHILOX_M = (0xD2511F53, 0xCD9E8D57)
_PHILOX_W = (0x9E3779B9, 0xBB67AE85)
_SEED_SCRAMBLE_KEY = (0x3EC8F720, 0x02461E29)
_UINT32 = 0xFFFFFFFF


def _low_high(bits: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """A uint64 tensor as its (low, high) uint32 words."""
    return tf.cast(bits, tf.uint32), tf.cast(
        tf.bitwise.right_shift(bits, tf.constant(32, tf.uint64)), tf.uint32
    )


def _mul_hi_lo(multiplier: int, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    low, high = _low_high(tf.cast(x, tf.uint64) * tf.constant(multiplier, tf.uint64))
    return high, low


def _philox(counter: tuple, key: tuple) -> tuple:
    """Philox4x32-10 of uint32 tensors (4 counter words, 2 key words), elementwise."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for round_index in range(10):
        if round_index:
            k0, k1 = k0 + _PHILOX_W[0], k1 + _PHILOX_W[1]
        hi0, lo0 = _mul_hi_lo(_PHILOX_M[0], c0)
        hi1, lo1 = _mul_hi_lo(_PHILOX_M[1], c2)
        c0, c1, c2, c3 = (
            tf.bitwise.bitwise_xor(tf.bitwise.bitwise_xor(hi1, c1), k0),
            lo1,
            tf.bitwise.bitwise_xor(tf.bitwise.bitwise_xor(hi0, c3), k1),
            lo0,
        )
    return c0, c1, c2, c3


def _key_and_counter(seed_words: tuple) -> tuple[tuple, tuple]:
    """TensorFlow's GenerateKey: a seed (as 4 uint32 words, low word first) scrambled into a
    Philox key and the high half of its counter."""
    scramble = tuple(
        tf.fill(tf.shape(seed_words[0]), tf.constant(k, tf.uint32)) for k in _SEED_SCRAMBLE_KEY
    )
    mix = _philox(seed_words, scramble)
    return (mix[0], mix[1]), (mix[2], mix[3])


def _unit_floats(bits: tf.Tensor) -> tf.Tensor:
    """TensorFlow's Uint32ToFloat: the low 23 bits as the mantissa of a float in [1, 2), minus 1."""
    mantissa = tf.bitwise.bitwise_or(tf.bitwise.bitwise_and(bits, 0x7FFFFF), 0x3F800000)
    return tf.bitcast(mantissa, tf.float32) - 1.0


# A plan's nodes ((id, draws), ...) -> their draw table as a tf.function, traced once and called
# by every graph that needs it.
_TABLES: dict = {}


def draw_table(plan: Plan, seeds: tf.Tensor) -> tf.Tensor:
    """[B, num_draws] uniforms in [0, 1): node n's draws are
    `stateless_uniform([draws], stateless_fold_in(image_seed, n's id))`, bit for bit, computed for
    the whole batch at once (integer arithmetic only, so no image's bits depend on its batch)."""
    if plan.num_draws == 0:
        return tf.zeros([tf.shape(seeds)[0], 0], tf.float32)
    table = _TABLES.get(plan.nodes)
    if table is None:
        # Its ~950 small integer ops were half of a SavedModel export's tracing when each of
        # the model's signatures (and each input kind offline) traced them again. Integer
        # arithmetic and a bitcast: called or inlined, the bits are the same.
        table = _TABLES.setdefault(
            plan.nodes,
            tf.function(
                functools.partial(_draw_table, plan.nodes),
                input_signature=[tf.TensorSpec([None, 2], tf.int64)],
                autograph=False,
            ),
        )
    return table(tf.cast(seeds, tf.int64))


def _draw_table(nodes: tuple, seeds: tf.Tensor) -> tf.Tensor:
    batch = tf.shape(seeds)[0]
    # fold_in(seed, id) = (first int32 of the seed's Philox stream, id): one value per image.
    seed_lo, seed_hi = _low_high(tf.bitcast(seeds[:, 0], tf.uint64))
    other_lo, other_hi = _low_high(tf.bitcast(seeds[:, 1], tf.uint64))
    key, counter_high = _key_and_counter((seed_lo, seed_hi, other_lo, other_hi))
    zeros = tf.zeros_like(seed_lo)
    folded = _philox((zeros, zeros, *counter_high), key)[0]  # an int32, as uint32 bits
    # Each node's seed (folded, id) - the int32 sign-extended to 64 bits, as TensorFlow reads it
    # - then its groups of four uniforms, group g at counter (g, 0, counter_high).
    columns = [(node_id, group) for node_id, draws in nodes for group in range((draws + 3) // 4)]
    node_ids = tf.constant([node for node, _ in columns], tf.uint32)[None, :]
    groups = tf.constant([group for _, group in columns], tf.uint32)[None, :]
    width = tf.shape(node_ids)[1]
    image_word = tf.tile(folded[:, None], [1, width])
    sign_word = tf.where(
        image_word >= 0x80000000, tf.constant(_UINT32, tf.uint32), tf.constant(0, tf.uint32)
    )
    node_words = tf.tile(node_ids, [batch, 1])
    column_zeros = tf.zeros_like(node_words)
    node_key, node_counter = _key_and_counter((image_word, sign_word, node_words, column_zeros))
    bits = _philox((tf.tile(groups, [batch, 1]), column_zeros, *node_counter), node_key)
    uniforms = tf.reshape(tf.stack(bits, axis=-1), [batch, -1])  # [B, columns * 4]
    keep, start = [], 0
    for _, draws in nodes:
        keep.extend(range(start, start + draws))
        start += 4 * ((draws + 3) // 4)
    return _unit_floats(tf.gather(uniforms, keep, axis=1))


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
