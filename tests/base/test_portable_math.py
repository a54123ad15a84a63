"""Portable log, wide exp and Beta draws (MixUp's and CutMix's mixing weight): as accurate as
numpy's, the same bits for an image alone, in any batch, eagerly or in a graph, and
Beta(alpha, alpha) in distribution."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats
from tfx_image_augment.core.ops import portable_math
from tfx_image_augment.core.ops.portable_math import BETA_DRAWS, beta64, exp64_wide, log64


def _bits(x) -> np.ndarray:
    return np.asarray(x, np.float64).view(np.int64)


def _ulps(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    # Same-sign float64s are ordered as their int64 bits: the difference counts ulps.
    assert np.array_equal(np.signbit(actual), np.signbit(expected))
    return np.abs(_bits(actual) - _bits(expected))


def _table(rows: int, seed: int) -> tf.Tensor:
    return tf.random.stateless_uniform([rows, BETA_DRAWS], seed=[2024, seed], dtype=tf.float32)


def test_log64_is_within_two_ulps_of_numpy_for_every_normal_input():
    # Both are within an ulp of the true log (ours measured at 1 over these inputs), so they
    # can differ by 2 at most.
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            [2.0**-24, 0.5, 1.0, 1 + 1e-12, 2.0, 1e6, 1e300, 2.0**-1022, np.finfo(float).max],
            [math.sqrt(2), np.nextafter(math.sqrt(2), 0), np.nextafter(1, 0), np.nextafter(1, 2)],
            np.geomspace(2.0**-1022, 1e308, 20_001),
            rng.uniform(0.5, 2.0, 20_000),  # the mantissa range itself, densely
            1.0 + rng.uniform(-1e-6, 1e-6, 2_000),  # log near 0: relative accuracy
        ]
    )
    got = log64(tf.constant(x, tf.float64)).numpy()
    assert _ulps(got, np.log(x)).max() <= 2
    assert got[2] == 0.0  # log 1 is exactly 0


def test_log64_edges_and_its_flush_of_subnormals():
    x = tf.constant([0.0, math.inf, -1.0, math.nan, 5e-324, 2.0**-1030], tf.float64)
    got = log64(x).numpy()
    assert got[0] == -math.inf and got[1] == math.inf
    assert np.isnan(got[2]) and np.isnan(got[3])
    # TensorFlow's CPU kernels read subnormals as 0; log64 does so on every device.
    assert got[4] == -math.inf and got[5] == -math.inf


def test_exp64_wide_is_within_two_ulps_of_numpy_from_minus_to_plus_700():
    rng = np.random.default_rng(1)
    half_ln2 = math.log(2) / 2
    x = np.concatenate(
        [
            np.linspace(-700.0, 700.0, 40_001),
            rng.uniform(-1.0, 1.0, 20_000),
            [0.0, half_ln2, -half_ln2, np.nextafter(half_ln2, 1), 1e-300, -1e-300, 709.7],
        ]
    )
    got = exp64_wide(tf.constant(x, tf.float64)).numpy()
    assert _ulps(got, np.exp(x)).max() <= 2
    assert got[x == 0.0][0] == 1.0


def test_exp64_wide_edges_overflow_to_inf_and_flush_below_the_normal_range():
    x = tf.constant([710.0, 1e6, math.inf, -708.5, -746.0, -1e6, -math.inf, math.nan], tf.float64)
    got = exp64_wide(x).numpy()
    assert list(got[:3]) == [math.inf] * 3
    assert list(got[3:7]) == [0.0] * 4  # exp(-708.5) < 2**-1022: flushed, as on a CPU
    assert np.isnan(got[7])
    # Just above the flush: the smallest normal results are still accurate.
    near = np.array([-708.39, -708.0, -707.5])
    assert _ulps(exp64_wide(tf.constant(near)).numpy(), np.exp(near)).max() <= 2


def test_exp64_wide_agrees_with_exp64_where_both_apply():
    # exp64 (crop ratios) keeps its own bits; the two differ by exp64's squaring error only.
    x = np.linspace(-23.9, 23.9, 4_001).astype(np.float32)
    narrow = portable_math.exp64(tf.constant(x)).numpy()
    wide = exp64_wide(tf.constant(x, tf.float64)).numpy()
    np.testing.assert_allclose(wide, narrow, rtol=1e-12)


def _with_edge_rows(table: tf.Tensor) -> np.ndarray:
    # Zero uniforms (possible in the Philox table) and the largest one, in whole rows and in
    # X's half of a row.
    u = table.numpy()
    u[0] = 0.0
    u[1] = 1.0 - 2.0**-23
    u[2, : BETA_DRAWS // 2] = 0.0
    return u


@pytest.mark.parametrize("alpha", [0.1, 0.2, 0.4, 1.0, 2.0, 8.0])
def test_beta64_gives_an_image_the_same_bits_alone_in_any_batch_eagerly_or_in_a_graph(alpha):
    u = _with_edge_rows(_table(1000, 1))
    batch = _bits(beta64(tf.constant(u), alpha))
    # Eagerly: batches of 7 at an aligned and an odd offset, and single rows.
    for start in (0, 493):
        part = beta64(tf.constant(u[start : start + 7]), alpha)
        assert np.array_equal(_bits(part), batch[start : start + 7])
    for row in (0, 1, 2, 999):
        assert _bits(beta64(tf.constant(u[row : row + 1]), alpha))[0] == batch[row]
    # In a graph (where constant folding rewrites arithmetic): the whole batch with its shape
    # unknown, and every fifth row alone (all offsets modulo a vector width) at shape [1, 26].
    unknown = tf.function(
        lambda x: beta64(x, alpha), input_signature=[tf.TensorSpec([None, BETA_DRAWS])]
    )
    assert np.array_equal(_bits(unknown(tf.constant(u))), batch)
    rows = tf.constant(u[::5])
    alone = tf.function(
        lambda x: tf.map_fn(lambda r: beta64(r[None], alpha)[0], x, fn_output_signature=tf.float64)
    )
    assert np.array_equal(_bits(alone(rows)), batch[::5])


def _reference_log_gamma(uniforms: np.ndarray, alpha: float) -> np.ndarray:
    """The docstring's Gamma draw, log(G / d), with numpy's own log, exp, cos and sin."""
    d = alpha + 1.0 - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    radius = np.sqrt(-2.0 * np.log(uniforms[:, 0:3]))
    angle = np.pi * (2.0 * uniforms[:, 3:6] - 1.0)
    x = np.empty((len(uniforms), 6))
    x[:, 0::2], x[:, 1::2] = radius * np.cos(angle), radius * np.sin(angle)
    t = 1.0 + c * x
    v = t**3
    log_v = 3.0 * np.log(np.where(t > 0, t, 1.0))
    accepted = (t > 0) & (np.log(uniforms[:, 6:12]) < x * x / 2 + d - d * v + d * log_v)
    chosen = np.zeros(len(uniforms))  # none with v > 0: G = d
    for i in range(len(uniforms)):
        first_accepted, positive = np.flatnonzero(accepted[i])[:1], np.flatnonzero(t[i] > 0)
        if len(first_accepted):
            chosen[i] = log_v[i, first_accepted[0]]
        elif len(positive):
            chosen[i] = log_v[i, positive[-1]]
    return chosen + np.log(uniforms[:, 12]) / alpha


@pytest.mark.parametrize("alpha", [0.2, 1.0, 4.0])
def test_beta64_is_the_algorithm_its_docstring_states(alpha):
    # numpy's transcendental functions differ from ours by an ulp or so: close, not equal (an
    # acceptance test this close to its boundary has probability ~1e-13 per try).
    u = _with_edge_rows(_table(1000, 2))
    uniforms = u.astype(np.float64) + 2.0**-24
    log_x = _reference_log_gamma(uniforms[:, :13], alpha)
    log_y = _reference_log_gamma(uniforms[:, 13:], alpha)
    expected = 1.0 / (1.0 + np.exp(log_y - log_x))
    np.testing.assert_allclose(beta64(tf.constant(u), alpha).numpy(), expected, rtol=1e-11)


def test_beta64_falls_back_when_no_try_is_accepted():
    alpha = 0.2
    d = alpha + 1.0 - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    # X: radius draws 0 (the longest normals) at the angle -3 pi / 4: every try's normal is
    # -4.08, so 1 + c x < 0 in all six, and X = d * U12 ** (1 / alpha).
    x_block = np.zeros(13, np.float32)
    x_block[3:6], x_block[12] = 0.125, 0.25
    # Y: normals of 0.83 (radius draws 1/2 at the angle pi / 4), then 0.36 and 1.12 (the last
    # pair's angle 2 pi / 5) give v > 0, but acceptance draws at their largest (log U = -6e-8)
    # reject every one: the last try's d v wins.
    y_block = np.full(13, 0.5, np.float32)
    y_block[3:5], y_block[5], y_block[6:12], y_block[12] = 0.625, 0.7, 1.0 - 2.0**-23, 0.75
    uniforms = np.concatenate([x_block, y_block]).astype(np.float64) + 2.0**-24
    normal = math.sqrt(-2.0 * math.log(uniforms[15])) * math.sin(math.pi * (2 * uniforms[18] - 1))
    log_x = math.log(uniforms[12]) / alpha
    log_y = 3.0 * math.log(1.0 + c * normal) + math.log(uniforms[25]) / alpha
    expected = 1.0 / (1.0 + math.exp(log_y - log_x))
    got = beta64(tf.constant(np.concatenate([x_block, y_block])[None]), alpha).numpy()[0]
    assert got == pytest.approx(expected, rel=1e-13)


_STATS_DRAWS = 20_000


def _ks_critical(n: int) -> float:
    """The Kolmogorov-Smirnov statistic a correct sampler exceeds with probability 0.1%."""
    return float(stats.kstwo.ppf(0.999, n))


@pytest.mark.parametrize("alpha", [0.2, 1.0, 4.0])
def test_beta64_draws_are_beta_alpha_alpha(alpha):
    # Bounds of 5 standard errors: n = 20k makes the sample mean, variance and counts normal to
    # a good approximation, so a correct sampler fails one with probability ~6e-7 (the table's
    # seed is fixed, so the test is deterministic either way). The KS bound fails a correct
    # sampler with probability 0.1%.
    n = _STATS_DRAWS
    lam = beta64(_table(n, 10 + int(alpha * 10)), alpha).numpy()
    assert lam.shape == (n,) and np.all((lam >= 0.0) & (lam <= 1.0))
    mean, variance, _, excess_kurtosis = stats.beta(alpha, alpha).stats(moments="mvsk")
    assert mean == 0.5 and variance == pytest.approx(1 / (4 * (2 * alpha + 1)))
    assert abs(lam.mean() - mean) < 5 * math.sqrt(variance / n)
    fourth_moment = variance**2 * (excess_kurtosis + 3)  # about the mean
    assert abs(lam.var() - variance) < 5 * math.sqrt((fourth_moment - variance**2) / n)
    # Symmetry: as many draws below c as above 1 - c. The difference of the two counts has
    # mean 0 and variance n (p_low + p_high), estimated by the counts' sum.
    for c in (0.05, 0.25, 0.5):
        low, high = np.sum(lam < c), np.sum(lam > 1 - c)
        assert abs(low - high) < 5 * math.sqrt(low + high)
    ks = stats.kstest(lam, stats.beta(alpha, alpha).cdf).statistic
    assert ks < _ks_critical(n)


def test_beta64_with_alpha_one_is_uniform():
    n = _STATS_DRAWS
    lam = beta64(_table(n, 99), 1.0).numpy()
    assert stats.kstest(lam, "uniform").statistic < _ks_critical(n)  # fails 0.1% if correct


# The seed contract: these bits define MixUp's and CutMix's pixels. A change to the algorithm,
# its constants or the draw layout fails here (once released, such a change needs
# SEED_RULE_VERSION raised).
_PINNED = {
    0.1: [
        "0x1.cd425dc95c7e8p-18",
        "0x1.fffffdadf923dp-1",
        "0x1.fa37ab2446d84p-1",
        "0x1.3777944871d99p-234",
    ],
    0.2: [
        "0x1.d4d5a392b6cc7p-8",
        "0x1.ffee47e7588c7p-1",
        "0x1.87ecdb08fe1f8p-1",
        "0x1.109a3a48d0d1ap-117",
    ],
    1.0: [
        "0x1.10b399a1c820fp-1",
        "0x1.db5bebb8d67aap-1",
        "0x1.174dc7c06dee1p-2",
        "0x1.79c5f158a56d5p-24",
    ],
    4.0: [
        "0x1.47393cdd02bc2p-1",
        "0x1.7ad970bd3e5b1p-1",
        "0x1.2f06c75176642p-2",
        "0x1.78ea56879eb59p-16",
    ],
}


def _pinned_rows() -> np.ndarray:
    # Uniforms on the Philox table's 2**-23 grid from integer arithmetic alone (no RNG
    # version can move them); the last row's X draws are all 0.
    index = np.arange(4 * BETA_DRAWS, dtype=np.int64).reshape(4, BETA_DRAWS)
    rows = ((index * 2654435761 + 12345) % 2**23 / 2**23).astype(np.float32)
    rows[3, : BETA_DRAWS // 2] = 0.0
    return rows


@pytest.mark.parametrize("alpha", sorted(_PINNED))
def test_beta64_pinned_bits(alpha):
    got = beta64(tf.constant(_pinned_rows()), alpha).numpy()
    assert [float(x).hex() for x in got] == _PINNED[alpha]
    assert np.array_equal(_bits(got), _bits([float.fromhex(h) for h in _PINNED[alpha]]))


def test_beta64_draw_layout_and_arguments():
    assert BETA_DRAWS == 26
    u = tf.zeros([3, BETA_DRAWS])
    with pytest.raises(ValueError, match="alpha > 0"):
        beta64(u, 0.0)
    with pytest.raises(ValueError, match="alpha > 0"):
        beta64(u, math.nan)
    with pytest.raises(ValueError, match="shape"):
        beta64(tf.zeros([3, BETA_DRAWS // 2]), 1.0)


def test_beta64_is_one_vectorised_graph_whatever_the_batch():
    # Not timed: traced for an unknown batch size (no Python loop can run per image) with no
    # graph loop either, a batch of 4096 completes with the eager bits.
    traced = tf.function(
        lambda x: beta64(x, 0.2), input_signature=[tf.TensorSpec([None, BETA_DRAWS])]
    )
    graph = traced.get_concrete_function().graph
    assert not {"While", "StatelessWhile"} & {op.type for op in graph.get_operations()}
    u = _table(4096, 3)
    lam = traced(u).numpy()
    assert lam.shape == (4096,) and np.all((lam >= 0.0) & (lam <= 1.0))
    assert np.array_equal(_bits(lam), _bits(beta64(u, 0.2)))
