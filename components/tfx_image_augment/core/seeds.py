"""Every seed rule of the project, in one place (changing any of them changes pixels).

1. Copy seeds (offline): copy k of the example with stable key x gets `copy_seed(seed, x, k)`.
   The stable key is the `key_feature`'s first value, or `content_key` of the example.
2. Fractional copies (balancing): `class_fraction_draw(seed, key)` decides whether an example
   whose class wants 2.5 copies per example gets 2 or 3.
3. Layer seeds (online): training call n of the Keras layer gives image i of its batch on
   replica r the seed `batch_seeds(seed, n, B, r)[i]`.
4. Draws (the core): what a seed of shape [2] becomes inside `augment`, below.
5. Mixing partners (offline): copy k of the example with key x gets the slot
   `mix_slot(seed, x, k)`; a split of n records with K copies each has
   `mix_buckets(n, K)` buckets, and the copy goes to bucket `mix_bucket(slot, buckets)`. In a
   bucket, copies sort by (slot, key, k); a copy's partner is the first one after it, going
   round, of another example whose image has the same shape and dtype and whose record has the
   same per-object features (none: it is not mixed). Mosaic's 3 partners are the first 3 such
   copies of 3 distinct examples (fewer than 3: not mixed). So partners depend on the seed and
   the split's keys only.

The seed contract (pinned by tests/base/test_golden.py; changing it changes pixels):
- Every image carries a seed of shape [2] (int64). Each random node of the policy draws its
  uniforms as `stateless_uniform([n], fold_in(image_seed, node_id))`.
- Op i of the policy (0-based) is node `(i + 1) * OP_NODE_STRIDE`. Its first draw gates it
  (applies when u < p); its parameter draws follow, as many as its registry entry says.
- A choice node (one_of, and each of RandAugment's `num_ops` layers L at node
  `op node + L * LAYER_NODE_STRIDE`) draws two uniforms: the gate (u < p) and the choice (by
  cumulative weight). Option j of a choice is node `choice node + j + 1`, with its own gate
  and parameter draws.
- RandAugment/TrivialAugment options are the registry's RandAugment slots in slot order, plus
  identity as the last option.
- `gaussian_noise` draws its normals from `fold_in(fold_in(image_seed, node_id), NOISE_STREAM)`.
- Per-image parameters are computed for the whole batch with arithmetic that rounds the same
  everywhere: IEEE + - * / in float32, and sine, cosine, tangent, exp, log, sqrt and Beta
  draws from `ops/portable_math.py` (float64 polynomials), never TensorFlow's own
  transcendental kernels.
- A mixing op (mixup, cutmix) reads its weight as `beta64` of its first BETA_DRAWS (26)
  uniforms after the gate (the algorithm is in `beta64`'s docstring); cutmix's rectangle
  centre follows from the next two. Its partner is an input, not a draw (offline: rule 5).
- `mosaic` draws the gate, then 2 uniforms u0, u1 for its centre, in whole pixels:
  cy = floor(H * (low + (high - low) * u0) + 0.5), cx = floor(W * (low + (high - low) * u1)
  + 0.5), in float64, [low, high] its `center` (high - low taken in Python). Its 3 partners
  (and their boxes) are inputs, not draws.

SEED_RULE_VERSION counts changes to this contract. 1 (0.1-0.2): parameters one image at a time
with TensorFlow's float32 kernels (on Linux, the C library's sinf/cosf/tanf/expf). 2 (0.3):
batch-wide portable math; 2% of rotation sines and 10% of crop sizes differ from 1 in the last
bit, so a few pixels may differ by 1 from copies written by 0.2 (the 61 golden arrays came out
identical).
"""

from __future__ import annotations

import hashlib

SEED_RULE_VERSION = 2
OP_NODE_STRIDE = 10_000
LAYER_NODE_STRIDE = 1_000
NOISE_STREAM = 1

SEED_SCHEME = "image-augment/v1"
# The seed is an int64 wherever it goes: ML Metadata, the Keras layer, the exported model.
SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1
_STEP_BITS = 32  # layer seeds[:, 1] = step << 32 | replica << 24 | index in batch
_REPLICA_BITS = 24


def copy_seed(seed: int, key: bytes, copy_index: int) -> tuple[int, int]:
    """The documented seed of copy `copy_index` of the example with stable key `key`.

    SHA-256 of b"image-augment/v1|<seed>|<copy_index>|" + key; the first 16 bytes, read as two
    signed big-endian int64s, are the [2] seed the core takes. Depends on nothing but these three
    values: not on process, runner, worker, bundle, sharding or file order.
    """
    digest = hashlib.sha256(f"{SEED_SCHEME}|{seed}|{copy_index}|".encode() + key).digest()
    return (
        int.from_bytes(digest[:8], "big", signed=True),
        int.from_bytes(digest[8:16], "big", signed=True),
    )


def content_key(example_bytes_deterministic: bytes) -> bytes:
    """The stable key of an example without a key feature: the SHA-256 (hex) of the example
    serialized deterministically (feature maps in sorted order, unlike the raw input bytes)."""
    return hashlib.sha256(example_bytes_deterministic).hexdigest().encode()


def class_fraction_draw(seed: int, key: bytes) -> float:
    """The uniform in [0, 1) that resolves an example's fractional number of copies: it gets
    one more copy when the draw is below the fraction."""
    digest = hashlib.sha256(f"{SEED_SCHEME}|copies|{seed}|".encode() + key).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


# Copies of a mixing policy per bucket, on average (rule 5): a bucket's decoded images are
# what the offline door holds at once to pair them.
MIX_BUCKET_COPIES = 64


def mix_slot(seed: int, key: bytes, copy_index: int) -> bytes:
    """SHA-256 of b"image-augment/v1|mix|<seed>|<copy_index>|" + key: where a copy sorts."""
    return hashlib.sha256(f"{SEED_SCHEME}|mix|{seed}|{copy_index}|".encode() + key).digest()


def mix_buckets(num_records: int, num_copies: int) -> int:
    return max(1, num_records * num_copies // MIX_BUCKET_COPIES)


def mix_bucket(slot: bytes, buckets: int) -> int:
    """The slot's first 8 bytes (big-endian, unsigned) modulo the number of buckets."""
    return int.from_bytes(slot[:8], "big") % buckets


def batch_seeds(seed, step, batch_size, replica=0):
    """Per-image seeds [B, 2] of layer call `step`: (seed, step << 32 | replica << 24 | i).

    Distinct for every (step, replica, image) below 2**31 steps, 256 replicas and 2**24 images
    per batch; the core mixes the pair further with `fold_in`, so nearby values are unrelated.
    """
    import tensorflow as tf  # the other rules need no TensorFlow (the CLI checks before it loads)

    step = tf.cast(step, tf.int64)
    replica = tf.cast(replica, tf.int64)
    index = tf.range(tf.cast(batch_size, tf.int64), dtype=tf.int64)
    low = tf.bitwise.bitwise_or(
        tf.bitwise.left_shift(step, _STEP_BITS),
        tf.bitwise.bitwise_or(tf.bitwise.left_shift(replica, _REPLICA_BITS), index),
    )
    high = tf.fill(tf.shape(index), tf.cast(seed, tf.int64))
    return tf.stack([high, low], axis=1)
