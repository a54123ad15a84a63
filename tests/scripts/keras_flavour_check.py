"""Run in a fresh process (the Keras flavour is fixed when TensorFlow loads): builds, trains,
saves and serves a model containing ImageAugmentation; prints one JSON line of findings."""

import json
import sys
import tempfile

import numpy as np
import tensorflow as tf
from tfx_image_augment import environment

environment.configure()  # an entry point: Keras flavour and quiet logs, before TensorFlow
from tfx_image_augment import ImageAugmentation  # noqa: E402


def build_model(augmentation):
    inputs = tf.keras.Input((32, 32, 3), dtype="uint8")
    x = augmentation(inputs)
    x = tf.keras.layers.Rescaling(1 / 255.0)(x)
    x = tf.keras.layers.Flatten()(x)
    outputs = tf.keras.layers.Dense(10, activation="softmax")(x)
    return tf.keras.Model(inputs, outputs)


def saves_with_tf_saved_model(model, path):
    @tf.function(input_signature=[tf.TensorSpec([None, 32, 32, 3], tf.uint8)])
    def serve(images):
        return {"probabilities": model(images, training=False)}

    try:
        tf.saved_model.save(model, path, signatures={"serving_default": serve})
        return True, ""
    except Exception as err:  # noqa: BLE001 - the failure itself is the finding
        return False, f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"


def main():
    images = np.load(sys.argv[1])
    labels = np.arange(len(images)) % 10
    workdir = tempfile.mkdtemp()
    layer = ImageAugmentation("standard", seed=3)
    model = build_model(layer)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    findings = {
        "flavour": tf.keras.layers.Layer.__module__.split(".")[0],
        "steps_taken": int(layer._step.numpy()),
    }

    ok, error = saves_with_tf_saved_model(model, f"{workdir}/ours")
    findings["ours_saved_model"] = ok
    findings["ours_error"] = error
    if ok:
        served = (
            tf.saved_model.load(f"{workdir}/ours")
            .signatures["serving_default"](images=tf.constant(images))["probabilities"]
            .numpy()
        )
        direct = model(images, training=False).numpy()
        findings["served_matches_inference"] = bool(np.allclose(served, direct, atol=1e-5))
    try:
        model.export(f"{workdir}/exported")
        findings["ours_model_export"] = True
    except Exception as err:  # noqa: BLE001
        findings["ours_model_export"] = f"{type(err).__name__}: {err}"[:300]

    # The native Keras format, loaded back with no custom_objects (the layer is registered).
    try:
        model.save(f"{workdir}/model.keras")
        reloaded = tf.keras.models.load_model(f"{workdir}/model.keras")
        reloaded_layer = next(x for x in reloaded.layers if isinstance(x, ImageAugmentation))
        findings["keras_file_round_trip"] = bool(
            np.array_equal(
                reloaded(images, training=False).numpy(), model(images, training=False).numpy()
            )
            and reloaded_layer.get_config() == layer.get_config()
        )
    except Exception as err:  # noqa: BLE001 - the failure itself is the finding
        findings["keras_file_round_trip"] = f"{type(err).__name__}: {err}"[:300]

    # Identity at inference, fresh randomness per training call, config round trip.
    findings["inference_identity"] = bool(
        np.array_equal(layer(images, training=False).numpy(), images)
    )
    first, second = layer(images).numpy(), layer(images).numpy()
    findings["training_calls_differ"] = not np.array_equal(first, second)
    clone = ImageAugmentation.from_config(layer.get_config())
    findings["config_round_trip"] = clone.get_config() == layer.get_config()
    seeds = np.array([[5, i] for i in range(len(images))], np.int64)
    findings["explicit_seeds_match_clone"] = bool(
        np.array_equal(
            layer({"images": images, "seeds": seeds}).numpy(),
            clone({"images": images, "seeds": seeds}).numpy(),
        )
    )

    # Keras' own random layer, for comparison (it breaks tf.saved_model.save on Keras 3).
    builtin = build_model(tf.keras.layers.RandomFlip("horizontal", seed=3))
    builtin(images[:2], training=True)
    ok, error = saves_with_tf_saved_model(builtin, f"{workdir}/builtin")
    findings["builtin_random_flip_saved_model"] = ok
    findings["builtin_error"] = error
    print("FINDINGS " + json.dumps(findings))


if __name__ == "__main__":
    main()
