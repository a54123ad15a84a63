"""local_runner's closing summary, read from ML Metadata: it says when TFX reused every step of
the run from its cache (the second `make run` with nothing changed)."""

from __future__ import annotations

import pytest
import tensorflow as tf
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx_image_augment import ImageAugment

from pipelines.data import image_example
from tests import images as real
from tests.pipeline_helpers import import_example_gen
from tests.records import write_records


def _store(metadata_path) -> metadata_store.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(metadata_path)
    return metadata_store.MetadataStore(config)


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_the_summary_says_when_every_step_was_reused_from_the_cache(tmp_path):
    import local_runner

    digits, labels = real.digits(32)
    records = [
        image_example(tf.io.encode_png(digits[i]).numpy(), labels[i], f"d{i}") for i in range(24)
    ]
    write_records(tmp_path / "data/train/data.tfrecord", records[:16])
    write_records(tmp_path / "data/eval/data.tfrecord", records[16:])
    metadata_path = tmp_path / "metadata.sqlite"

    def run_cached_pipeline() -> None:
        example_gen = import_example_gen(tmp_path / "data")
        augment = ImageAugment(
            examples=example_gen.outputs["examples"], policy="no-flip", num_copies=1, seed=1
        )
        pipeline = tfx.dsl.Pipeline(
            pipeline_name="cache-summary",
            pipeline_root=str(tmp_path / "root"),
            components=[example_gen, augment],
            enable_cache=True,
            metadata_connection_config=(
                tfx.orchestration.metadata.sqlite_metadata_connection_config(str(metadata_path))
            ),
            beam_pipeline_args=["--direct_num_workers=1"],
        )
        tfx.orchestration.LocalDagRunner().run(pipeline)

    run_cached_pipeline()
    assert local_runner.cache_reuse(_store(metadata_path)) == (0, 2)
    first = local_runner.summary(str(metadata_path), str(tmp_path / "serving"), 31.2)
    assert first.splitlines()[1] == "Pipeline finished in 31 s."
    assert "from cache" not in first
    assert "  records[train]  : 16 -> 32" in first.splitlines()

    run_cached_pipeline()  # nothing changed: both steps come from the cache
    assert local_runner.cache_reuse(_store(metadata_path)) == (2, 2)
    second = local_runner.summary(str(metadata_path), str(tmp_path / "serving"), 0.4)
    assert second.splitlines()[1] == (
        "Pipeline finished in 0 s: all 2 steps were reused from TFX's cache (same inputs, code "
        "and parameters), none ran again; --no-cache reruns them."
    )
    assert "  records[train]  : 16 -> 32" in second.splitlines()  # the cached results, shown
