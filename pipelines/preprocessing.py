"""Transform's preprocessing: decode the encoded image, resize, scale to [0, 1].

The same graph runs when training (through `TransformFeaturesLayer`) and in the serving
signature, so the pushed model takes raw serialized tf.Examples with PNG/JPEG bytes, as a real
client sends them. tensorflow-transform runs on tf_keras; nothing here touches Keras.
"""

from __future__ import annotations

from tfx_image_augment import environment

environment.configure()  # an entry point (Transform loads this module): before TensorFlow loads
import tensorflow as tf  # noqa: E402

from pipelines import features  # noqa: E402


def _dense_bytes(values) -> tf.Tensor:
    if isinstance(values, tf.SparseTensor):
        values = tf.sparse.to_dense(values, default_value=b"")
    return tf.reshape(values, [-1])


def decode_and_scale(encoded: tf.Tensor, size: int, channels: int) -> tf.Tensor:
    """[B] encoded images -> float32 [B, size, size, channels] in [0, 1]."""

    def one(data):
        image = tf.io.decode_image(data, channels=channels, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), [size, size], antialias=True)
        return tf.clip_by_value(image / 255.0, 0.0, 1.0)

    return tf.map_fn(
        one, encoded, fn_output_signature=tf.TensorSpec([size, size, channels], tf.float32)
    )


def preprocessing_fn(inputs, custom_config=None):
    config = custom_config or {}
    size = int(config.get("image_size", features.DEFAULT_IMAGE_SIZE))
    channels = int(config.get("channels", features.DEFAULT_CHANNELS))
    labels = inputs[features.LABEL_KEY]
    if isinstance(labels, tf.SparseTensor):
        labels = tf.sparse.to_dense(labels)
    return {
        features.IMAGE_XF: decode_and_scale(
            _dense_bytes(inputs[features.IMAGE_KEY]), size, channels
        ),
        features.LABEL_XF: tf.reshape(tf.cast(labels, tf.int64), [-1]),
    }
