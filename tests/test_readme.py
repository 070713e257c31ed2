"""The README's Python examples run as written, each block on its own."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)
    spaces = []
    for block in blocks:
        ns: dict = {}  # a fresh namespace: every block runs on its own
        exec(compile(block, str(README), "exec"), ns)
        spaces.append(ns)
    assert (tmp_path / "run.npz").exists()
    robust = next(ns for ns in spaces if "HybridTrainer" in ns)
    assert robust["pole_localization_error"](robust["model"].poles(),
                                             robust["problem"].true_poles()) < 1e-4
    held = robust["held"]
    assert held["final"] <= held["start"]


def test_readme_names_the_test_command():
    text = README.read_text(encoding="utf-8")
    assert 'python -m pip install ".[test]" && python -m pytest -q' in text
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert 'python -m pip install ".[test]" && python -m pytest -q' in ci
