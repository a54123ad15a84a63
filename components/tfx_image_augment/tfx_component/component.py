"""The ImageAugment TFX component (its spec and artifact type live in `spec.py`)."""

from __future__ import annotations

import inspect
from typing import Any

from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts

from tfx_image_augment.offline.config import AugmentConfig
from tfx_image_augment.offline.params import PARAMS
from tfx_image_augment.tfx_component import executor
from tfx_image_augment.tfx_component.spec import (  # noqa: F401 (AugmentationModel: re-exported)
    AUGMENTATION_MODEL_KEY,
    AUGMENTED_EXAMPLES_KEY,
    EXAMPLES_KEY,
    AugmentationModel,
    ImageAugmentSpec,
    exec_properties,
)


class ImageAugment(base_beam_component.BaseBeamComponent):
    """Writes K seeded augmented copies of every example of the chosen splits, through Beam.

    Every other split is passed through record for record. Parameters are validated when the
    pipeline is built; `__init__` documents each one.
    """

    SPEC_CLASS = ImageAugmentSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, examples, *positional: Any, **parameters: Any):
        """Builds the component; every parameter is validated here, when the pipeline is built.

        The parameters (after `examples`, a channel of Examples such as ExampleGen's
        `outputs["examples"]`, every split of which is read) are `params.PARAMS`, with the
        defaults and help that `help(ImageAugment)` and the docs' table show.

        Raises:
          ValueError: a parameter breaks its rule; the one-sentence message names it (an
            invalid policy raises PolicyError, a ValueError).
          TypeError: an unknown parameter, or more positional parameters than there are.
        """
        if len(positional) > len(PARAMS):
            raise TypeError(f"ImageAugment takes at most {len(PARAMS) + 1} positional arguments")
        for param, value in zip(PARAMS, positional, strict=False):
            if param.name in parameters:
                raise TypeError(f"ImageAugment got multiple values for {param.name!r}")
            parameters[param.name] = value
        config = AugmentConfig.from_user(**parameters)
        spec = ImageAugmentSpec(
            **{
                EXAMPLES_KEY: examples,
                AUGMENTED_EXAMPLES_KEY: _channel(standard_artifacts.Examples),
                AUGMENTATION_MODEL_KEY: _channel(AugmentationModel),
            },
            **exec_properties(config),
        )
        super().__init__(spec=spec)


def _signature_and_doc() -> None:
    """`help(ImageAugment)` and IDEs show every parameter with its default and help line."""
    init = ImageAugment.__init__
    keyword = inspect.Parameter.POSITIONAL_OR_KEYWORD
    init.__signature__ = inspect.Signature(
        [inspect.Parameter("self", keyword), inspect.Parameter("examples", keyword)]
        + [inspect.Parameter(p.name, keyword, default=p.default) for p in PARAMS]
    )
    args = "\n".join(f"          {p.name}: {p.help}." for p in PARAMS)
    init.__doc__ = init.__doc__.replace(
        "        Raises:",
        f"        Args:\n          examples: a channel of Examples.\n{args}\n\n        Raises:",
    )


_signature_and_doc()


def _channel(artifact_type):
    from tfx.types import channel_utils

    return channel_utils.as_channel([artifact_type()])
