"""The architecture holds: small modules, and the import-linter layer contracts kept (docs/DESIGN.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "facewise"
MAX_LINES = 600


def test_no_source_module_over_600_lines() -> None:
    sizes = {str(p.relative_to(SRC)): len(p.read_text().splitlines()) for p in SRC.rglob("*.py")}
    assert len(sizes) > 50, "the scan did not find the package"
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_layers_are_kept() -> None:
    exe = Path(sys.executable).parent / "lint-imports"
    found = str(exe) if exe.exists() else shutil.which("lint-imports")
    if found is None:
        pytest.skip("import-linter is not installed (pip install 'facewise[test]')")
    # import-linter imports the package: make it this checkout's, whatever is installed.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}
    r = subprocess.run([found, "--no-cache"], cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout
    assert "Layers: a room imports only the rooms below it KEPT" in r.stdout


# A door (CLI, REST service, video, batch, evaluation) uses what the layers below it offer, never their insides.
DOORS = ("cli", "service", "video", "batch", "eval")
# attributes of another library's objects that a door sets on purpose: (module, attribute) -> why
FOREIGN_HOOKS = {
    ("cli/common.py", "_usage_display_name"): "click's usage name of an argument, replaced for plain help",
}


def _private_reaches(rel: str, source: str) -> list[str]:
    """Where module ``rel`` of a door (``video/process.py``, with text ``source``) names a ``_private`` member of
    another package: an import of a ``_name`` from a module outside its own room, or an attribute ``obj._name`` of
    anything but ``self``/``cls``."""
    import ast

    room = rel.split("/")[0]
    found = []
    for node in ast.walk(ast.parse(source, rel)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "facewise":
            other = node.module.split(".")[1] if "." in node.module else ""
            found += [f"{rel}:{node.lineno} imports {node.module}.{a.name}" for a in node.names
                      if a.name.startswith("_") and not a.name.startswith("__") and other != room]
        elif (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
              and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
              and (rel, node.attr) not in FOREIGN_HOOKS):
            found.append(f"{rel}:{node.lineno} reaches {ast.unparse(node)}")
    return found


def test_no_door_uses_a_private_member_of_another_layer() -> None:
    modules = [p for room in DOORS for p in sorted((SRC / room).rglob("*.py"))]
    assert len(modules) > 40, "the scan did not find the doors"
    assert [hit for p in modules for hit in _private_reaches(str(p.relative_to(SRC)), p.read_text())] == []


def test_the_private_reach_check_sees_both_kinds() -> None:
    """The check above finds what it looks for: a door that reached inside would be named."""
    door = ("from facewise.api import _open\nfrom facewise.video.decode import _x\n\n"
            "def f(fw):\n    return fw._lookup(None), self._ok, fw.coll.ensure()\n")
    assert _private_reaches("video/probe.py", door) == ["video/probe.py:1 imports facewise.api._open",
                                                        "video/probe.py:5 reaches fw._lookup"]
