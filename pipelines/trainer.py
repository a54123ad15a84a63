"""The Trainer's run_fn: a small CNN on the augmented examples, three augmentation modes.

custom_config keys (all optional): mode (offline | online | both), policy, seed,
learning_rate, batch_size, epochs, filters, dense_units, strategy_devices (for tests: a list of
device names for MirroredStrategy), augmentation_model_uri (set by AugmentedTrainer).

When the examples come from a mixing policy (MixUp, CutMix: they carry `aug_mix_weight`), the
model trains on soft targets, `w * one_hot(label) + (1 - w) * one_hot(aug_mix_partner_label)`,
with categorical cross-entropy; the online modes do not mix (the layer would need the labels).
"""

from __future__ import annotations

import json
import os
from typing import Any

from tfx_image_augment import environment

environment.configure()  # an entry point (TFX loads this module): before TensorFlow loads
import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402
from tfx_bsl.public import tfxio  # noqa: E402
from tfx_image_augment import ImageAugmentation, load_exported_policy  # noqa: E402
from tfx_image_augment.core.plan import compile_policy  # noqa: E402
from tfx_image_augment.core.policy import load_policy  # noqa: E402

from pipelines import features  # noqa: E402

MODES = ("offline", "online", "both")
DEFAULTS: dict[str, Any] = {
    "mode": "offline",
    "learning_rate": 2e-3,
    "batch_size": 32,
    "epochs": 8,
    "filters": 32,
    "dense_units": 64,
    "image_size": features.DEFAULT_IMAGE_SIZE,
    "channels": features.DEFAULT_CHANNELS,
}


def settings(custom_config: dict | None) -> dict[str, Any]:
    merged = {**DEFAULTS, **(custom_config or {})}
    if merged["mode"] not in MODES:
        raise ValueError(f"custom_config 'mode' must be one of {MODES}; got {merged['mode']!r}.")
    return merged


def choose_strategy(config: dict[str, Any]) -> tf.distribute.Strategy:
    """MirroredStrategy over the GPUs (or the devices a test names), else the default."""
    devices = config.get("strategy_devices")
    if not devices:
        gpus = tf.config.list_logical_devices("GPU")
        devices = [gpu.name for gpu in gpus]
        if gpus:
            tf.keras.mixed_precision.set_global_policy("mixed_float16")
    # Mirrored for any GPU or for several devices; a lone CPU keeps the default strategy.
    if len(devices) > 1 or any("GPU" in device.upper() for device in devices):
        strategy = tf.distribute.MirroredStrategy(devices)
    else:
        strategy = tf.distribute.get_strategy()
    environment.progress_logger("trainer").info(
        "%s over %s (precision policy %s)",
        type(strategy).__name__,
        devices or ["the default CPU"],
        tf.keras.mixed_precision.global_policy().name,
    )
    return strategy


def augmentation_layer(config: dict[str, Any]) -> ImageAugmentation | None:
    """The emitted layer (from the augmentation_model artifact) for online/both modes."""
    if config["mode"] == "offline":
        return None
    uri = config.get("augmentation_model_uri")
    if uri:
        policy, seed = load_exported_policy(uri)
    else:
        policy, seed = config.get("policy", "standard"), int(config.get("seed", 0))
    mixing = compile_policy(load_policy(policy)).mixing_ops
    if mixing:
        raise ValueError(
            f"custom_config 'mode' {config['mode']!r} applies the policy in the model, and it "
            f"mixes images ({', '.join(mixing)}): this trainer mixes offline only (mode "
            "'offline'), since the layer would need the labels too."
        )
    return ImageAugmentation(policy, seed=seed, value_range=(0.0, 1.0), name="augmentation")


def build_model(config: dict[str, Any], augmentation=None) -> tf.keras.Model:
    size, channels, filters = config["image_size"], config["channels"], config["filters"]
    inputs = tf.keras.Input((size, size, channels), name=features.IMAGE_XF)
    x = augmentation(inputs) if augmentation is not None else inputs
    # Measured on 300 digits: this trains to ~96% in 400 steps; global average pooling or
    # batch normalisation in its place stalled near chance for the first few hundred steps.
    for multiplier in (1, 2):
        x = tf.keras.layers.Conv2D(filters * multiplier, 3, padding="same", activation="relu")(x)
        x = tf.keras.layers.MaxPooling2D()(x)
    x = tf.keras.layers.Flatten()(x)
    x = tf.keras.layers.Dense(config["dense_units"], activation="relu")(x)
    x = tf.keras.layers.Dropout(0.2)(x)
    outputs = tf.keras.layers.Dense(features.NUM_CLASSES, activation="softmax", dtype="float32")(x)
    model = tf.keras.Model(inputs, outputs)
    # Mixed copies' targets are distributions over the classes, not class indices.
    sparse = "" if config.get("soft_targets") else "sparse_"
    model.compile(
        optimizer=tf.keras.optimizers.Adam(config["learning_rate"]),
        loss=f"{sparse}categorical_crossentropy",
        metrics=[f"{sparse}categorical_accuracy"],
    )
    return model


def _per_example(values, default: float) -> tf.Tensor:
    """[B] from a feature with at most one value per example, dense or (absent from some
    examples) sparse; `default` where an example has none."""
    if isinstance(values, tf.SparseTensor):
        batch = tf.shape(values, out_type=tf.int64)[0]
        values = tf.sparse.to_dense(
            tf.sparse.reset_shape(values, [batch, 1]), default_value=default
        )
    return tf.reshape(values, [-1])


def soft_targets(raw: dict, label: tf.Tensor) -> tf.Tensor:
    """[B, NUM_CLASSES]: each example's label at its `aug_mix_weight` w (1 for an original or
    an unmixed copy) and its partner's at 1 - w."""
    if features.MIX_PARTNER_LABEL_KEY not in raw:
        raise ValueError(
            f"The examples carry {features.MIX_WEIGHT_KEY} but no "
            f"{features.MIX_PARTNER_LABEL_KEY}: run ImageAugment with label_feature set."
        )
    weight = _per_example(raw[features.MIX_WEIGHT_KEY], 1.0)[:, None]
    partner = _per_example(tf.cast(raw[features.MIX_PARTNER_LABEL_KEY], tf.int64), 0)
    own = tf.one_hot(label, features.NUM_CLASSES)
    return weight * own + (1.0 - weight) * tf.one_hot(partner, features.NUM_CLASSES)


def _dataset(fn_args, files, tf_transform_output, config, training: bool) -> tf.data.Dataset:
    """(image_xf, label) batches from raw (augmented) examples through the Transform graph."""
    dataset = fn_args.data_accessor.tf_dataset_factory(
        files,
        tfxio.TensorFlowDatasetOptions(
            batch_size=config["batch_size"], shuffle=training, num_epochs=1, shuffle_seed=17
        ),
        tf_transform_output.raw_metadata.schema,
    )
    transform = tf_transform_output.transform_features_layer()

    def apply(raw):
        transformed = transform(raw)
        image, label = transformed[features.IMAGE_XF], transformed[features.LABEL_XF]
        copy_index = raw.get(features.COPY_INDEX_KEY)
        if copy_index is None:
            is_original = tf.ones_like(label, tf.bool)
        else:
            if isinstance(copy_index, tf.SparseTensor):
                copy_index = tf.sparse.to_dense(copy_index)
            is_original = tf.reshape(copy_index, [-1]) == 0
        if config.get("soft_targets"):  # after is_original, which takes one flag per example
            label = soft_targets(raw, label)
        return image, label, is_original

    dataset = dataset.map(apply, num_parallel_calls=tf.data.AUTOTUNE)
    if training and config["mode"] == "online":
        # Online mode trains on the originals only (aug_copy_index 0); the layer makes the
        # variety. The other modes train on every record: originals and offline copies.
        dataset = (
            dataset.unbatch()
            .filter(lambda image, label, is_original: is_original)
            .batch(config["batch_size"])
        )
    return dataset.map(lambda image, label, _: (image, label)).prefetch(tf.data.AUTOTUNE)


def _serving_signature(model, tf_transform_output):
    """Serialized tf.Examples (encoded images, no label) -> class probabilities."""
    model.tft_layer = tf_transform_output.transform_features_layer()
    raw_spec = tf_transform_output.raw_feature_spec()
    raw_spec = {k: v for k, v in raw_spec.items() if k == features.IMAGE_KEY}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(serialized):
        parsed = tf.io.parse_example(serialized, raw_spec)
        transformed = model.tft_layer(parsed)
        return {"probabilities": model(transformed[features.IMAGE_XF], training=False)}

    return serve


def write_image_grid(images: tf.Tensor, log_dir: str, name: str, step: int = 0) -> None:
    """A grid of (augmented) training images in TensorBoard: what the model saw."""
    images = tf.cast(tf.clip_by_value(images[:16] * 255.0, 0, 255), tf.uint8)
    count = int(images.shape[0])
    columns = 4
    rows = -(-count // columns)
    pad = rows * columns - count
    if pad:
        images = tf.concat([images, tf.zeros([pad, *images.shape[1:]], tf.uint8)], axis=0)
    height, width, channels = images.shape[1:]
    grid = tf.reshape(images, [rows, columns, height, width, channels])
    grid = tf.reshape(
        tf.transpose(grid, [0, 2, 1, 3, 4]), [1, rows * height, columns * width, channels]
    )
    with tf.summary.create_file_writer(log_dir).as_default():
        tf.summary.image(name, grid, step=step)


def run_fn(fn_args) -> None:
    config = settings(fn_args.custom_config)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    config["soft_targets"] = features.MIX_WEIGHT_KEY in tf_transform_output.raw_feature_spec()
    uri = config.get("augmentation_model_uri")
    if uri and compile_policy(load_policy(load_exported_policy(uri)[0])).tiling_ops:
        raise ValueError(
            "The policy tiles images (mosaic): its copies hold their partners' objects, a "
            "detection target; this example trainer is a classifier (use mixup or cutmix)."
        )
    train = _dataset(fn_args, fn_args.train_files, tf_transform_output, config, training=True)
    evaluation = _dataset(fn_args, fn_args.eval_files, tf_transform_output, config, False)

    strategy = choose_strategy(config)
    with strategy.scope():
        augmentation = augmentation_layer(config)
        model = build_model(config, augmentation)

    log_dir = fn_args.model_run_dir
    sample = next(iter(train))[0]
    if augmentation is not None:
        sample = augmentation(sample, training=True)
    write_image_grid(sample, log_dir, f"training_images_{config['mode']}")

    steps = fn_args.train_steps or None
    history = model.fit(
        train.repeat() if steps else train,
        epochs=config["epochs"],
        steps_per_epoch=(steps // config["epochs"]) if steps else None,
        validation_data=evaluation.take(fn_args.eval_steps) if fn_args.eval_steps else evaluation,
        callbacks=[tf.keras.callbacks.TensorBoard(log_dir=log_dir, update_freq="epoch")],
        verbose=2,
    )
    serve = _serving_signature(model, tf_transform_output)
    model.save(fn_args.serving_model_dir, save_format="tf", signatures={"serving_default": serve})
    with tf.io.gfile.GFile(os.path.join(log_dir, "history.json"), "w") as handle:
        handle.write(json.dumps({k: [float(v) for v in vs] for k, vs in history.history.items()}))
