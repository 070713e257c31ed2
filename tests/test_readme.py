"""A new user can copy any README block into a fresh interpreter and get what the README shows:
each Python block runs in its own process, its stdout must match the "Prints" block after it
(numbers to 5%), and its stderr must be empty or match the block the README shows for it."""
from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"```(\w+)\n(.*?)```", re.S)


def readme_examples() -> list[dict]:
    """Each Python block with the expected ``stdout`` (the next ``text`` block) and ``stderr``
    (a further ``text`` block whose lead-in mentions stderr; else empty)."""
    text = README.read_text(encoding="utf-8")
    examples: list[dict] = []
    last_end = 0
    for m in FENCE.finditer(text):
        lang, body = m.group(1), m.group(2)
        lead_in = text[last_end:m.start()]
        last_end = m.end()
        if lang == "python" and body.startswith("# test_"):
            continue  # a test file for the user's suite: tests/test_ratio_gate.py runs it
        if lang == "python":
            examples.append({"code": body, "stdout": None, "stderr": "", "cuda": False})
        elif lang == "text" and examples:
            ex = examples[-1]
            if ex["stdout"] is None:
                ex["stdout"] = body
                ex["cuda"] = "CUDA is usable" in lead_in
            elif "stderr" in lead_in:
                ex["stderr"] = body
    return examples


EXAMPLES = readme_examples()
_TOKEN = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[^\s\d\[\](),:;]+|[\[\](),:;]")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _same(actual: str, shown: str, rel: float = 5e-2) -> bool:
    a, b = _tokens(actual), _tokens(shown)
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        try:
            fx, fy = float(x), float(y)
        except ValueError:
            if x != y:
                return False
            continue
        if math.isnan(fx) and math.isnan(fy):
            continue
        if not math.isclose(fx, fy, rel_tol=rel, abs_tol=1e-12):
            return False
    return True


def test_every_block_shows_its_output():
    assert len(EXAMPLES) >= 8
    for ex in EXAMPLES:
        assert ex["stdout"] is not None, ex["code"][:200]


def _cuda_usable() -> bool:
    from zeroproof_nb.device import cuda_problem

    return cuda_problem() is None


@pytest.mark.parametrize("ex", EXAMPLES, ids=[f"block{i}" for i in range(len(EXAMPLES))])
def test_readme_block_runs_alone_and_prints_what_readme_shows(ex, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-c", ex["code"]], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    expected = ex["stdout"]
    if ex["cuda"] and not _cuda_usable():
        expected = ""
    assert _same(res.stdout, expected), f"printed:\n{res.stdout}\nREADME shows:\n{expected}"
    assert _same(res.stderr, ex["stderr"]), f"stderr:\n{res.stderr}"


def test_training_blocks_never_end_worse_than_their_start():
    """The figures the README shows for the two training recipes: final <= start, Adam's final
    below its start (it trains, not only returns its start)."""
    def figures(ex):
        return {k: float(v) for k, v in re.findall(r"(start|best|final) ([-+.\de]+)", ex["stdout"])}

    hybrid = next(ex for ex in EXAMPLES if "HybridTrainer(" in ex["code"])
    adam = next(ex for ex in EXAMPLES if 'optimizer="adam"' in ex["code"])
    h, a = figures(hybrid), figures(adam)
    assert h["final"] <= h["start"] and a["final"] < 0.9 * a["start"]


def test_readme_names_the_test_command():
    text = README.read_text(encoding="utf-8")
    assert 'python -m pip install ".[test]" && python -m pytest -q' in text
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert 'python -m pip install ".[test]" && python -m pytest -q' in ci


def test_readme_demo_table_is_what_the_demo_prints():
    """The README's table of the default demo run matches a run of the demo now, every column
    but the times (which depend on the machine)."""
    import io

    from zeroproof_nb.demo import MODEL_NAMES, run_demo

    text = README.read_text()
    start = text.index("The default run (`zeroproof-nb demo`)")
    block = text[start:text.index("```", text.index("```", start) + 3)]
    stream = io.StringIO()
    run_demo(out=None, plot=False, stream=stream)

    def rows(s: str) -> dict[str, list[str]]:
        out = {}
        for line in s.splitlines():
            cells = line.split()
            if cells and cells[0] in MODEL_NAMES:
                out[cells[0]] = cells[1:-1]  # the last column is the time
        return out

    want, got = rows(block), rows(stream.getvalue())
    assert set(want) == set(MODEL_NAMES) and want == got, (want, got)
