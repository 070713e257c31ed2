"""docs/porting.md stays true: every name in its table resolves, "same path" rows import after
renaming ``zeroproof`` to ``zeroproof_nb`` and give the same object, and every code block runs in
a fresh namespace and prints what its comments say (issue #15)."""
from __future__ import annotations

import contextlib
import importlib
import io
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "porting.md"
TEXT = DOC.read_text(encoding="utf-8")
ROWS = re.findall(r"^\| `([^`]+)`[^|]*\| `([^`]+)` \|(.*)\|$", TEXT, re.M)
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, re.S)


def resolve(path: str):
    """The object at dotted ``path``: the longest importable module prefix, then attributes."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(path)


def test_table_is_not_empty():
    assert len(ROWS) >= 40 and len(BLOCKS) >= 4


@pytest.mark.parametrize("upstream,here,notes", ROWS, ids=[r[0] for r in ROWS])
def test_every_row_resolves(upstream, here, notes):
    obj = resolve(here)
    if "same path" in notes:
        assert upstream.startswith("zeroproof.")
        renamed = "zeroproof_nb." + upstream[len("zeroproof."):]
        assert resolve(renamed) is obj


def _expected_prints(block: str) -> list[str]:
    return [line.split("#", 1)[1].strip() for line in block.splitlines()
            if line.lstrip().startswith("print(") and "#" in line]


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_block_runs_and_prints_what_it_says(block):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(block, str(DOC), "exec"), {})
    printed = [" ".join(line.split()) for line in buf.getvalue().splitlines()]
    assert printed == [" ".join(e.split()) for e in _expected_prints(block)]
