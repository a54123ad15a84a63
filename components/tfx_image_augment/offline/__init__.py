"""The offline door without a runner: the parameter table and config, decoding rules, detection
objects, balancing, the preview and the augmentation-model artifact (TensorFlow only).

`offline.beam` (the `[beam]` extra) holds the Beam transforms and the run sequence that the CLI
and the TFX executor share.
"""
