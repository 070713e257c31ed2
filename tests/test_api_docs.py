"""docs/api.md is generated from the docstrings (tools/gen_api.py) and must not be stale; the
wheel ships py.typed and the docs/ pages the docstrings name (issue #15)."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _gen_api():
    spec = importlib.util.spec_from_file_location("gen_api", ROOT / "tools" / "gen_api.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_api_reference_is_current():
    gen = _gen_api()
    text = gen.render()
    assert (ROOT / "docs" / "api.md").read_text(encoding="utf-8") == text, (
        "docs/api.md is stale: run python tools/gen_api.py")


def test_api_reference_covers_every_public_name():
    import importlib

    gen = _gen_api()
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    for modname in gen.MODULES:
        assert f"## `{modname}`" in text
        for name in importlib.import_module(modname).__all__:
            assert re.search(rf"### (class |enum )?`{re.escape(name)}[`(:]", text), (modname, name)


def test_docs_named_in_docstrings_exist_and_ship(tmp_path):
    named = set()
    for path in (ROOT / "zeroproof_nb").rglob("*.py"):
        named |= set(re.findall(r"docs/([A-Za-z_]+\.md)", path.read_text(encoding="utf-8")))
    assert named, "no docstring names a docs page (the test would be vacuous)"
    for page in named:
        assert (ROOT / "docs" / page).is_file(), page
    pytest.importorskip("setuptools")
    build = tmp_path / "lib"
    res = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(build)],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    shipped = build / "zeroproof_nb"
    assert (shipped / "py.typed").is_file()
    for page in named | {"api.md", "porting.md"}:
        assert (shipped / "docs" / page).is_file(), page
