"""One parameter table: AugmentConfig, the component, the CLI and the docs derive from it."""

from __future__ import annotations

import dataclasses
import inspect
import re
import subprocess
import sys

import pytest
from tfx_image_augment import __version__
from tfx_image_augment.cli import commands
from tfx_image_augment.io.quarantine import REASONS, Quarantined
from tfx_image_augment.offline.config import AugmentConfig
from tfx_image_augment.offline.params import PARAMS, PREVIEW, RUN, markdown_table
from tfx_image_augment.tfx_component.component import ImageAugment

from tests.conftest import PROJECT_ROOT

# The docs pages that hold the generated blocks (they moved there from the README).
PARAMETERS_PAGE = (PROJECT_ROOT / "docs" / "parameters.md").read_text()
BAD_INPUT_PAGE = (PROJECT_ROOT / "docs" / "bad-input.md").read_text()
SETTINGS = {param.name: param.default for param in PARAMS}


def _between(page: str, begin: str, end: str) -> str:
    return page[page.index(begin) + len(begin) : page.index(end)].strip()


def test_augment_config_has_one_field_per_setting_with_its_default():
    fields = dataclasses.fields(AugmentConfig)
    assert {f.name: f.default for f in fields} == SETTINGS
    assert AugmentConfig().validate() == AugmentConfig(**SETTINGS)


def test_the_component_takes_every_setting_with_its_default():
    parameters = list(inspect.signature(ImageAugment).parameters.values())
    assert parameters[0].name == "examples"
    assert {p.name: p.default for p in parameters[1:]} == SETTINGS
    for param in PARAMS:  # help(ImageAugment) documents each
        assert f"{param.name}: {param.help}." in ImageAugment.__init__.__doc__


def _options(command: str) -> dict[str, argparse_action]:  # noqa: F821
    parser = commands._parser()
    sub = parser._subparsers._group_actions[0].choices[command]
    return {action.dest: action for action in sub._actions}


@pytest.mark.parametrize("command", [RUN, PREVIEW])
def test_the_cli_offers_every_setting_with_its_default(command):
    options = _options(command)
    offered = {name: options[name].default for name in SETTINGS if name in options}
    expected = {p.name: p.default for p in PARAMS if command in p.commands}
    assert offered == expected
    # Only splits_to_augment is left out of `run` (its --input is one split), and says why.
    left_out = [p for p in PARAMS if RUN not in p.commands]
    assert [p.name for p in left_out] == ["splits_to_augment"] and left_out[0].why_not_cli
    for name in expected:
        assert options[name].help, name
        if options[name].const is None:  # every option that takes a value shows its default
            assert "(default: " in options[name].help, name


def test_cli_help_shows_defaults_presets_and_the_version():
    help_text = _options(RUN)["policy"].help
    assert "standard" in help_text and "randaugment" in help_text
    result = subprocess.run(
        [sys.executable, "-m", "tfx_image_augment.cli", "run", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "(default: 4)" in result.stdout and "(default: 50,000,000)" in result.stdout
    version = subprocess.run(
        [sys.executable, "-m", "tfx_image_augment.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert version.stdout.strip() == f"image-augment {__version__}"


def test_cli_arguments_become_the_same_config_as_the_component_parameters(tmp_path):
    args = commands._parser().parse_args(
        ["run", "--input", "x", "--output", str(tmp_path / "o"), "--copies", "3", "--no-original",
         "--copies-per-class", "3=8,7=2.5", "--label-feature", "label", "--image-shape",
         "32,32,3", "--value-range", "0,255", "--keypoint-flip-permutation", "1,0"]
    )  # fmt: skip
    from_cli = commands._config(args)
    from_component = AugmentConfig.from_user(
        splits_to_augment="data",
        num_copies=3,
        include_original=False,
        copies_per_class={3: 8, 7: 2.5},
        label_feature="label",
        image_shape=[32, 32, 3],
        value_range=[0, 255],
        keypoint_flip_permutation=[1, 0],
    )
    assert from_cli.to_json() == from_component.to_json()


def test_the_readme_table_is_the_parameter_table():
    assert _between(PARAMETERS_PAGE, "<!-- PARAMS:BEGIN", "<!-- PARAMS:END -->").split("\n", 1)[
        1
    ] == (markdown_table())


def test_the_readme_lists_every_quarantine_reason_with_its_meaning():
    rows = _between(BAD_INPUT_PAGE, "<!-- REASONS:BEGIN -->", "<!-- REASONS:END -->").splitlines()[
        2:
    ]
    listed = dict(re.match(r"\| `([a-z_]+)` \| (.*) \|$", row).groups() for row in rows)
    assert listed == REASONS


def test_a_reason_outside_the_list_is_a_bug_not_a_quarantine():
    with pytest.raises(ValueError, match="unknown quarantine reason"):
        Quarantined("image_is_ugly", "")


def test_a_string_names_one_split():
    config = AugmentConfig.from_user(splits_to_augment="train")
    assert config.splits_to_augment == ("train",)


def test_errors_are_classified_by_phase():
    # Before the run started, a bad argument, input or output is a usage error (exit 2); after,
    # an OS error is the run's failure (exit 1); anything else is a bug and keeps its traceback.
    assert commands._failure(ValueError("bad --seed"), commands._Phase(started=False)) == 2
    assert commands._failure(FileNotFoundError("no file"), commands._Phase(started=False)) == 2
    assert commands._failure(OSError(28, "No space left on device"), commands._Phase(True)) == 1
    with pytest.raises(ValueError, match="mid-run"):
        commands._failure(ValueError("a bug mid-run"), commands._Phase(started=True))


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--input", "in/*", "--output", "out", "--copies", "0"],
        ["run", "--input", "in/*", "--output", "out", "--policy", "no-such-preset"],
        ["run", "--input", "missing/*.tfrecord", "--output", "out"],
        ["preview", "--input", "in/*", "--output", "sheet.gif"],
    ],
    ids=["setting", "policy", "input", "output"],
)
def test_usage_errors_answer_before_tensorflow_or_beam_load(tmp_path, argv):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "data.tfrecord").write_bytes(b"")
    code = (
        "import sys\n"
        "from tfx_image_augment.cli import main\n"
        f"print('EXIT', main({argv!r}))\n"
        "print('LOADED', 'tensorflow' in sys.modules, 'apache_beam' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert "EXIT 2" in result.stdout, result.stderr
    assert "LOADED False False" in result.stdout
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_the_cli_starts_no_thread_before_its_interrupt_guard():
    # Ctrl-C and SIGTERM reach the run only if every thread inherits the guard's signal mask:
    # a thread started before it (numpy's BLAS pool, TensorFlow's) would swallow the signal.
    code = (
        "import sys, threading\n"
        "from tfx_image_augment.cli import commands\n"
        "args = commands._parser().parse_args(['run', '--input', 'x', '--output', 'y'])\n"
        "commands._config(args)\n"
        "print('BEFORE-GUARD', threading.active_count(), 'numpy' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert "BEFORE-GUARD 1 False" in result.stdout, result.stderr
