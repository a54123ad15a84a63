"""Sine, cosine, tangent, exp, log, square root and Beta draws of per-image parameters, from
+ - * / in float64.

TensorFlow's own kernels for these are not one function: on a CPU, Eigen evaluates most of a
tensor with vectorised approximations and its tail with the C library, so an image's rotation
angle could round differently depending on where it sits in a batch (and a GPU has its own
implementations again). IEEE-754 addition, subtraction, multiplication and division are
correctly rounded everywhere, so polynomials built from them give the same bits for an image
alone or in any batch, on any device. float64 keeps the result accurate to well under a
float32 ulp before it is rounded to float32.

Two more rules keep those bits: no subnormal float64 may decide a result (TensorFlow's CPU
kernels flush them to 0, a GPU keeps them), and no tensor is divided by a constant other than
a power of two (a graph's constant folding turns that into a product by the reciprocal, which
can round differently from the eager division).
"""

from __future__ import annotations

import math

from tfx_image_augment.core.lazy import tf

# Taylor series about 0, highest degree first: |error| < 1e-15 on [-pi, pi] (the ops' angles
# stay inside: rotations up to 180 degrees, shears up to 60).
_SIN = tuple((-1) ** k / math.factorial(2 * k + 1) for k in reversed(range(14)))  # x * P(x^2)
_COS = tuple((-1) ** k / math.factorial(2 * k) for k in reversed(range(15)))  # Q(x^2)
_EXP = tuple(1 / math.factorial(k) for k in reversed(range(11)))
# exp(x) = exp(x / 2**10) ** (2**10): the series converges fast for |x / 1024| < 0.03 (every
# crop aspect ratio in (0, 10] gives |x| < 24), and ten squarings cost ~1e-13 relative error.
_EXP_HALVINGS = 10
# exp64_wide reduces x to r = x - k ln2 with |r| <= ln2 / 2, where degree 14 leaves < 1e-17.
_EXP_REDUCED = tuple(1 / math.factorial(k) for k in reversed(range(15)))
# log(1 + f) = 2 atanh(s), s = f / (2 + f), |s| <= 0.172 for 1 + f in [sqrt(1/2), sqrt(2)):
# the series' sum of 2 s^(2k+1) / (2k+1) for k >= 1 is s * R(s^2); 12 terms leave < 1e-19.
_LOG_R = tuple(2 / (2 * k + 1) for k in reversed(range(1, 13)))  # R(z) = z * P(z)
# ln 2 = _LN2_HI + _LN2_LO (fdlibm's split): _LN2_HI has 32 significant bits, so k * _LN2_HI
# is exact for every float64 exponent k.
_LN2_HI = float.fromhex("0x1.62e42feep-1")
_LN2_LO = float.fromhex("0x1.a39ef35793c76p-33")
_INV_LN2 = float.fromhex("0x1.71547652b82fep0")  # a literal: no host libm decides a bit
_MANTISSA_BITS = 52
_EXPONENT_BIAS = 1023


def _polynomial(x: tf.Tensor, coefficients: tuple[float, ...]) -> tf.Tensor:
    result = tf.fill(tf.shape(x), tf.constant(coefficients[0], tf.float64))
    for coefficient in coefficients[1:]:
        result = result * x + coefficient
    return result


def _cos_sin64(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    squared = x * x
    return _polynomial(squared, _COS), x * _polynomial(squared, _SIN)


def cos_sin(angle: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(cos, sin) of float32 radians in [-pi, pi], as float32."""
    cos, sin = _cos_sin64(tf.cast(angle, tf.float64))
    return tf.cast(cos, tf.float32), tf.cast(sin, tf.float32)


def tan(angle: tf.Tensor) -> tf.Tensor:
    """tan of float32 radians in (-pi/2, pi/2), as float32 (sin / cos, divided in float64)."""
    x = tf.cast(angle, tf.float64)
    squared = x * x
    return tf.cast(x * _polynomial(squared, _SIN) / _polynomial(squared, _COS), tf.float32)


def exp64(x: tf.Tensor) -> tf.Tensor:
    """exp of float32 x with |x| < 24, as float64 (callers keep computing in float64)."""
    y = _polynomial(tf.cast(x, tf.float64) / 2.0**_EXP_HALVINGS, _EXP)
    for _ in range(_EXP_HALVINGS):
        y = y * y
    return y


def sqrt(x: tf.Tensor) -> tf.Tensor:
    """The correctly rounded float32 square root of float32 x >= 0 (taken in float64, where no
    CPU path approximates it, then rounded once: exact for float32 inputs)."""
    return tf.cast(tf.sqrt(tf.cast(x, tf.float64)), tf.float32)


def _flush_subnormal(x: tf.Tensor) -> tf.Tensor:
    """0 for |x| < 2**-1022: TensorFlow's CPU kernels flush subnormal float64 to 0 (on input and
    output), a GPU keeps them; flushing everywhere gives every device the same bits."""
    return tf.where(tf.abs(x) < 2.0**-1022, tf.zeros_like(x), x)


def _power_of_two(k: tf.Tensor) -> tf.Tensor:
    """2**k as float64 for int64 k in [-1022, 1023], built from its exponent bits."""
    bits = tf.bitwise.left_shift(k + _EXPONENT_BIAS, tf.constant(_MANTISSA_BITS, tf.int64))
    return tf.bitcast(bits, tf.float64)


def exp64_wide(x: tf.Tensor) -> tf.Tensor:
    """exp of any float64 x, as float64, within ~1 ulp (inf above 709.78; 0 below -708.39,
    where exp(x) < 2**-1022 would be subnormal).

    exp64's halvings only reach |x| < 24 (and its results must not change); here x = k ln2 + r
    with |r| <= ln2 / 2, a polynomial gives exp(r), and 2**k is multiplied in as two exact
    powers of two (one alone cannot span 2**-1076..2**1024), so only the last product rounds."""
    x = tf.cast(x, tf.float64)
    number = tf.where(x == x, x, tf.zeros_like(x))  # NaN is put back at the end
    clamped = tf.minimum(tf.maximum(number, -746.0), 710.0)  # exp stays 0 / inf outside
    k = tf.floor(clamped * _INV_LN2 + 0.5)  # any rounding here only moves r a little
    reduced = (clamped - k * _LN2_HI) - k * _LN2_LO  # the first difference is exact
    power = tf.cast(k, tf.int64)
    half = tf.bitwise.right_shift(power, tf.constant(1, tf.int64))  # floor(k / 2)
    y = _polynomial(reduced, _EXP_REDUCED) * _power_of_two(half) * _power_of_two(power - half)
    return tf.where(x == x, _flush_subnormal(y), x)


def log64(x: tf.Tensor) -> tf.Tensor:
    """Natural log of float64 x, as float64, within ~1 ulp for normal x > 0 (2**-1022 and up);
    subnormal x count as 0, as TensorFlow's CPU kernels read them (log 0 = -inf, log inf = inf,
    NaN for x < 0 or NaN).

    x = 2**e * m with m in [sqrt(1/2), sqrt(2)), read from x's bits (TensorFlow's log kernels
    differ between a batch's vectorised body, its tail and a GPU); log m = 2 atanh(s) with
    s = (m - 1) / (m + 1) is a fast odd series, and e ln2 is added in two parts."""
    x = _flush_subnormal(tf.cast(x, tf.float64))
    bits = tf.bitcast(x, tf.int64)
    shift = tf.constant(_MANTISSA_BITS, tf.int64)
    exponent = tf.bitwise.right_shift(bits, shift) - _EXPONENT_BIAS
    fraction = tf.bitwise.bitwise_and(bits, tf.constant(2**_MANTISSA_BITS - 1, tf.int64))
    m = tf.bitcast(
        tf.bitwise.bitwise_or(fraction, tf.constant(_EXPONENT_BIAS << _MANTISSA_BITS, tf.int64)),
        tf.float64,
    )  # in [1, 2)
    high = m >= math.sqrt(2.0)
    m = tf.where(high, m * 0.5, m)
    e = tf.cast(exponent + tf.cast(high, tf.int64), tf.float64)
    f = m - 1.0  # exact (Sterbenz)
    s = f / (2.0 + f)
    z = s * s
    r = z * _polynomial(z, _LOG_R)
    # log m = f - s (f - R): f is exact, the rounded part is a small correction.
    y = e * _LN2_HI + (f - (s * (f - r) - e * _LN2_LO))
    y = tf.where(x == 0.0, tf.fill(tf.shape(x), tf.constant(-math.inf, tf.float64)), y)
    y = tf.where(x == math.inf, x, y)
    return tf.where(x >= 0.0, y, tf.fill(tf.shape(x), tf.constant(math.nan, tf.float64)))


# Beta(alpha, alpha) draws. Part of the seed contract: these numbers define pixels.
_GAMMA_TRIES = 6  # Marsaglia-Tsang candidates per Gamma draw; the first accepted one wins
_GAMMA_PAIRS = _GAMMA_TRIES // 2  # each Box-Muller pair of uniforms gives two tries' normals
_GAMMA_DRAWS = 2 * _GAMMA_PAIRS + _GAMMA_TRIES + 1  # radii, angles, acceptances, boost
BETA_DRAWS = 2 * _GAMMA_DRAWS  # 26: X's draws, then Y's
_HALF_STEP = 2.0**-24  # u (23-bit resolution, 0 possible) + 2**-24: in (0, 1), log never sees 0


def _log_gamma_shape_ratio(u: tf.Tensor, alpha: float) -> tf.Tensor:
    """log(G / d) for G ~ Gamma(alpha) from each row of u [..., _GAMMA_DRAWS] (d below)."""
    d = alpha + 1.0 - 1.0 / 3.0  # Marsaglia and Tsang's d for Gamma(alpha + 1)
    c = 1.0 / math.sqrt(9.0 * d)
    uniforms = tf.cast(u, tf.float64) + _HALF_STEP
    logs = log64(uniforms)
    radius = tf.sqrt(-2.0 * logs[..., :_GAMMA_PAIRS])
    angle = (2.0 * uniforms[..., _GAMMA_PAIRS : 2 * _GAMMA_PAIRS] - 1.0) * math.pi
    cos, sin = _cos_sin64(angle)
    normal = tf.reshape(  # try 2j: pair j's cos, try 2j + 1: its sin
        tf.stack([radius * cos, radius * sin], axis=-1),
        tf.concat([tf.shape(u)[:-1], [_GAMMA_TRIES]], 0),
    )
    log_accept = logs[..., 2 * _GAMMA_PAIRS : 2 * _GAMMA_PAIRS + _GAMMA_TRIES]
    t = 1.0 + c * normal
    positive = t > 0.0
    v = t * t * t
    log_t = log64(tf.where(positive, t, tf.ones_like(t)))
    log_v = 3.0 * log_t
    # d log v as (3 d) log t: graph constant folding would turn d * (3 * log t) into that.
    accepted = positive & (log_accept < 0.5 * normal * normal + d - d * v + 3.0 * d * log_t)
    chosen = tf.zeros_like(log_v[..., 0])  # none with v > 0: G = d
    for i in range(_GAMMA_TRIES):  # else the last candidate with v > 0
        chosen = tf.where(positive[..., i], log_v[..., i], chosen)
    for i in reversed(range(_GAMMA_TRIES)):  # but the first accepted one wins
        chosen = tf.where(accepted[..., i], log_v[..., i], chosen)
    # Gamma(alpha) = Gamma(alpha + 1) * U ** (1 / alpha): in log space, as U ** (1 / alpha)
    # underflows float64 for small alpha. A product, as graph constant folding would turn a
    # division by the constant alpha into one (the same image would differ eagerly).
    return chosen + logs[..., -1] * (1.0 / alpha)


def beta64(u: tf.Tensor, alpha: float) -> tf.Tensor:
    """lambda ~ Beta(alpha, alpha) per image, as float64 [B], from u float32 [B, BETA_DRAWS] in
    [0, 1) (MixUp's and CutMix's mixing weight); alpha > 0 is a Python float.

    Seed contract: each draw u becomes U = u + 2**-24 (never 0 or 1). lambda = X / (X + Y) with
    X, Y ~ Gamma(alpha) from columns [0, 13) and [13, 26), as 1 / (1 + exp(log Y - log X)) in
    log space, so tiny X and Y (small alpha) still give their ratio; lambda < 2**-1022 is 0.
    A Gamma draw from its columns U0..U12 is Gamma(alpha + 1) * U12 ** (1 / alpha), the first
    factor by Marsaglia and Tsang (2000), d = alpha + 1 - 1/3, c = 1 / sqrt(9 d), with 6 tries:
    try i's normal x_i is Box-Muller pair j = i // 2's, sqrt(-2 log Uj) times the cos (even i)
    or sin (odd i) of pi (2 U(3+j) - 1); v_i = (1 + c x_i)**3 is accepted when v_i > 0 and
    log U(6+i) < x_i**2 / 2 + d - d v_i + d log v_i. The first accepted try gives d v_i; when
    none is (p < 2e-8 per draw), the last with v_i > 0 does, else d. Every step is elementwise
    per image, in portable float64 arithmetic."""
    if not alpha > 0:
        raise ValueError(f"beta64 needs alpha > 0, got {alpha}")
    u = tf.convert_to_tensor(u)
    if u.shape.rank != 2 or u.shape[-1] not in (None, BETA_DRAWS):
        raise ValueError(f"beta64 takes u of shape [B, {BETA_DRAWS}], got {u.shape}")
    log_ratio = _log_gamma_shape_ratio(tf.reshape(u, [-1, 2, _GAMMA_DRAWS]), float(alpha))
    # log d, common to both, cancels.
    return _flush_subnormal(1.0 / (1.0 + exp64_wide(log_ratio[:, 1] - log_ratio[:, 0])))
