"""Sine, cosine, tangent, exp and square root of per-image parameters, from + - * / in float64.

TensorFlow's own kernels for these are not one function: on a CPU, Eigen evaluates most of a
tensor with vectorised approximations and its tail with the C library, so an image's rotation
angle could round differently depending on where it sits in a batch (and a GPU has its own
implementations again). IEEE-754 addition, subtraction, multiplication and division are
correctly rounded everywhere, so polynomials built from them give the same bits for an image
alone or in any batch, on any device. float64 keeps the result accurate to well under a
float32 ulp before it is rounded to float32.
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


def _polynomial(x: tf.Tensor, coefficients: tuple[float, ...]) -> tf.Tensor:
    result = tf.fill(tf.shape(x), tf.constant(coefficients[0], tf.float64))
    for coefficient in coefficients[1:]:
        result = result * x + coefficient
    return result


def cos_sin(angle: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(cos, sin) of float32 radians in [-pi, pi], as float32."""
    x = tf.cast(angle, tf.float64)
    squared = x * x
    cos, sin = _polynomial(squared, _COS), x * _polynomial(squared, _SIN)
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
