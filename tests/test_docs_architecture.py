"""docs/architecture.md tells the truth about the tree: every module it names exists, every package is in its
tree, and every sink of the registry is listed there with its name and drop policy."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipelines.sinks import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"


def _tree_lines() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## The tree, by stage"):]
    block = section[section.index("```") + 3:]
    return block[block.index("\n") + 1:block.index("```")].splitlines()


def _tree() -> dict[str, str]:
    """Path of each entry of the tree (``pipelines/engine/runner.py``) -> its line. An entry is a line whose
    first word is a folder (``name/``) or a file (``name.py``); its depth is its indent / 2."""
    entries: dict[str, str] = {}
    folders: list[str] = []
    for line in _tree_lines():
        words = line.split()
        if not words or not (words[0].endswith("/") or words[0].endswith(".py")):
            continue  # a description running on
        depth = (len(line) - len(line.lstrip(" "))) // 2
        folders = folders[:depth]
        path = "".join(folders) + words[0]
        entries[path] = line
        if words[0].endswith("/"):
            folders.append(words[0])
    return entries


def test_the_tree_is_read():
    tree = _tree()
    assert "pipelines/engine/runner.py" in tree and "pipelines/sinks/" in tree and "tracker/types.py" in tree


def test_every_module_the_tree_names_exists():
    missing = [path for path in _tree() if not (ROOT / path).exists()]
    assert not missing, f"docs/architecture.md names what is not there: {missing}"


def test_every_path_in_the_text_exists():
    paths = set(re.findall(r"`((?:pipelines|tracker)/[\w/.]+\.(?:py|json))`", DOC.read_text(encoding="utf-8")))
    assert paths, "the page names no module in backquotes"
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"docs/architecture.md names what is not there: {missing}"


def test_every_package_is_in_the_tree():
    packages = sorted(str(p.parent.relative_to(ROOT)) + "/" for p in (ROOT / "pipelines").rglob("__init__.py"))
    missing = [p for p in packages if p not in _tree()]
    assert not missing, f"packages missing from docs/architecture.md: {missing}"


@pytest.mark.parametrize("entry", REGISTRY, ids=lambda e: e.name)
def test_every_registered_sink_is_listed_with_its_name_and_policy(entry):
    module = entry.build.__module__
    path = module.replace(".", "/") + ".py"
    tree = _tree()
    assert path in tree, f"sink {entry.name} ({path}) is not in docs/architecture.md"
    line_index = _tree_lines().index(tree[path])
    text = " ".join(_tree_lines()[line_index:line_index + 2])   # an entry may run on to a second line
    assert f"{entry.name}:" in text and entry.policy.value in text, text
