"""The README's Python examples run as written (in order, sharing one namespace)."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), ns)
    assert (tmp_path / "run.npz").exists()
    assert ns["pole_localization_error"](ns["model"].poles(), ns["problem"].true_poles()) < 1e-3


def test_readme_names_the_test_command():
    text = README.read_text(encoding="utf-8")
    assert 'python -m pip install ".[test]" && python -m pytest -q' in text
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert 'python -m pip install ".[test]" && python -m pytest -q' in ci
