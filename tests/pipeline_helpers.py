"""Helpers for tests that run real TFX pipelines (`[tfx]` extra): input layouts, runs, results."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Sequence

import tensorflow as tf
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from tests.records import read_records, write_records


def copy_cifar_subset(
    cifar_dir: pathlib.Path, data_root: pathlib.Path, train: int, eval: int
) -> pathlib.Path:  # noqa: A002 (the split is called eval)
    """The first `train`/`eval` real CIFAR records, laid out as `data_root/{train,eval}/`."""
    for split, count in (("train", train), ("eval", eval)):
        source = next((cifar_dir / split).glob("*.tfrecord"))
        write_records(data_root / split / "data.tfrecord", read_records(str(source))[:count])
    return data_root


def import_example_gen(data_root: pathlib.Path, splits: Sequence[str] = ("train", "eval")):
    input_config = tfx.proto.Input(
        splits=[tfx.proto.Input.Split(name=name, pattern=f"{name}/*") for name in splits]
    )
    return tfx.components.ImportExampleGen(input_base=str(data_root), input_config=input_config)


def run_local(
    components: list,
    run_dir: pathlib.Path,
    name: str = "test-pipeline",
    beam_args: Sequence[str] = ("--direct_num_workers=1",),
) -> pathlib.Path:
    """Runs `components` under LocalDagRunner; returns the MLMD sqlite path."""
    metadata_path = run_dir / "metadata.sqlite"
    pipeline = tfx.dsl.Pipeline(
        pipeline_name=name,
        pipeline_root=str(run_dir / "root"),
        components=components,
        enable_cache=False,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(metadata_path)
        ),
        beam_pipeline_args=list(beam_args),
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)
    return metadata_path


def _read_only_store(metadata_path: pathlib.Path) -> metadata_store.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(metadata_path)
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def artifacts_of_type(metadata_path: pathlib.Path, type_name: str):
    return _read_only_store(metadata_path).get_artifacts_by_type(type_name)


def executions_of_type(metadata_path: pathlib.Path, type_name: str):
    return _read_only_store(metadata_path).get_executions_by_type(type_name)


def split_names(artifact) -> list[str]:
    return json.loads(artifact.properties["split_names"].string_value)


def run_example_gen_and_statistics(data_root: pathlib.Path, run_dir: pathlib.Path) -> dict:
    example_gen = import_example_gen(data_root)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    metadata_path = run_local([example_gen, statistics_gen], run_dir)

    (examples,) = artifacts_of_type(metadata_path, "Examples")
    (statistics,) = artifacts_of_type(metadata_path, "ExampleStatistics")
    names = split_names(examples)
    counts = {n: len(read_records(f"{examples.uri}/Split-{n}/*")) for n in names}

    from tensorflow_data_validation import load_stats_binary

    statistics_counts = {}
    for path in sorted(tf.io.gfile.glob(f"{statistics.uri}/Split-*/FeatureStats.pb")):
        split = pathlib.Path(path).parent.name.removeprefix("Split-")
        statistics_counts[split] = load_stats_binary(path).datasets[0].num_examples
    return {
        "split_names": names,
        "counts": counts,
        "statistics_splits": split_names(statistics),
        "statistics_counts": statistics_counts,
    }
