"""MkDocs hooks: versions from the constraint files, the API's docstrings checked, charts copied.

- `{{ version.<package> }}` is the package's pin in `constraints.txt` (the TFX stack),
  `{{ latest.<package> }}` its pin in `constraints-latest.txt` (the newest TensorFlow);
  `version.python` / `latest.python` is `.python-version`. A `.minor` suffix keeps the first
  two numbers (`{{ version.tfx.minor }}` -> 1.16). A placeholder naming no pin fails the build;
  a backslash before one shows it as it is.
- Every object on an API page, and every public function and class of a module on one, must
  have a docstring (read by griffe, without importing anything): a missing one fails the build.
- `benchmarks/results/*.png` are published beside the pages, so the benchmark block links the
  charts by the same path it has in the repository.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"\\?\{\{\s*(version|latest)\.([A-Za-z0-9_.-]+?)(\.minor)?\s*\}\}")
API_OBJECT = re.compile(
    r"^::: ([\w.]+)\n(?:    options:\n      members: \[([^\]]*)\])?", re.MULTILINE
)


def _normalized(name: str) -> str:
    return name.lower().replace("_", "-")


def read_pins(path: Path) -> dict[str, str]:
    """{package name, normalized: its pinned version} from a pip constraints file."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[_normalized(name.split("[")[0])] = version.strip()
    python = (ROOT / ".python-version").read_text().strip()
    pins["python"] = python
    return pins


PINS = {
    "version": read_pins(ROOT / "constraints.txt"),
    "latest": read_pins(ROOT / "constraints-latest.txt"),
}


def fill_versions(markdown: str, where: str = "") -> str:
    """The markdown with every version placeholder replaced by its pin."""

    def replace(match: re.Match) -> str:
        if match.group(0).startswith("\\"):  # an escaped placeholder, shown as it is
            return match.group(0)[1:]
        table, name, minor = match.groups()
        version = PINS[table].get(_normalized(name))
        if version is None:
            raise PluginError(f"{where}: {match.group(0)} names no pin in its constraint file")
        return ".".join(version.split(".")[:2]) if minor else version

    return PLACEHOLDER.sub(replace, markdown)


def on_page_markdown(markdown, page, config, files):
    markdown = fill_versions(markdown, page.file.src_uri)
    if page.file.src_uri.startswith("api/"):
        _check_docstrings(API_OBJECT.findall(markdown), page.file.src_uri)
    return markdown


def _check_docstrings(objects: list[tuple[str, str]], where: str) -> None:
    import griffe

    package = griffe.load("tfx_image_augment", search_paths=[str(ROOT / "components")])
    missing = []
    for path, members in objects:
        shown = {name.strip() for name in members.split(",")} if members else None
        obj = package[path.split(".", 1)[1]] if "." in path else package
        if not obj.docstring:
            missing.append(path)
        if obj.is_module:
            for name, member in obj.members.items():
                if shown is not None and name not in shown:
                    continue
                if name.startswith("_") or member.is_alias or member.is_attribute:
                    continue
                if not member.docstring:
                    missing.append(f"{path}.{name}")
    if missing:
        raise PluginError(f"{where}: no docstring for {', '.join(missing)}")


def on_files(files, config):
    for chart in sorted((ROOT / "benchmarks" / "results").glob("*.png")):
        files.append(
            File(
                str(chart.relative_to(ROOT)),
                src_dir=str(ROOT),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files
