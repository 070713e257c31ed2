"""Build hook: ship the docs/ pages inside the package (``zeroproof_nb/docs/*.md`` in the wheel),
so that the pages the docstrings name are installed with them. Everything else is in
pyproject.toml."""
from pathlib import Path
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPyWithDocs(build_py):
    """``build_py`` that also copies ``docs/*.md`` to ``<build_lib>/zeroproof_nb/docs/``."""

    def run(self):
        super().run()
        target = Path(self.build_lib) / "zeroproof_nb" / "docs"
        target.mkdir(parents=True, exist_ok=True)
        for page in sorted((ROOT / "docs").glob("*.md")):
            shutil.copyfile(page, target / page.name)


setup(cmdclass={"build_py": BuildPyWithDocs})
