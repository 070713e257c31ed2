"""Generate docs/api.md, the API reference, from the package's docstrings.

Usage (from the repository root)::

    python tools/gen_api.py            # rewrite docs/api.md
    python tools/gen_api.py --check    # exit status 1 if docs/api.md is stale

The public names are each module's ``__all__``; a class lists its public methods and
properties (first paragraph of their docstrings), a function its whole docstring.
tests/test_api_docs.py runs the check, so a docstring change without a regenerated page fails.
"""
from __future__ import annotations

import argparse
import enum
import importlib
import inspect
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "api.md"

#: the modules of the reference, in reading order
MODULES = [
    "zeroproof_nb.core",
    "zeroproof_nb.rational",
    "zeroproof_nb.gradients",
    "zeroproof_nb.layers",
    "zeroproof_nb.fitting",
    "zeroproof_nb.least_squares",
    "zeroproof_nb.optim",
    "zeroproof_nb.metrics",
    "zeroproof_nb.tag_metrics",
    "zeroproof_nb.layer_contract",
    "zeroproof_nb.problems",
    "zeroproof_nb.rational_cuda",
    "zeroproof_nb.training.adaptive_loss",
    "zeroproof_nb.training.coverage",
    "zeroproof_nb.training.tag_loss",
    "zeroproof_nb.training.importance_sampler",
    "zeroproof_nb.training.active_sampler",
    "zeroproof_nb.training.integrated_sampler",
    "zeroproof_nb.training.sampling_diagnostics",
    "zeroproof_nb.training.diagnostics",
    "zeroproof_nb.training.curriculum",
    "zeroproof_nb.training.trainer",
    "zeroproof_nb.training.dask_pool",
    "zeroproof_nb.training.hybrid_trainer",
    "zeroproof_nb.demo",
    "zeroproof_nb.cli",
]

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _doc(obj: object, first_paragraph: bool = False) -> str:
    doc = inspect.getdoc(obj) or ""
    if first_paragraph:
        doc = doc.split("\n\n", 1)[0]
    return _ADDRESS.sub("", doc).strip()


def _signature(obj: object) -> str:
    try:
        return _ADDRESS.sub("", str(inspect.signature(obj)))
    except (TypeError, ValueError):
        return "(...)"


def _home(obj: object, module: str) -> bool:
    """Whether ``obj`` is documented under ``module`` (defined there, or a re-export that
    no other listed module defines)."""
    home = getattr(obj, "__module__", module)
    return home == module or home not in MODULES


def _own_members(cls: type) -> dict[str, object]:
    """The class's members with those of its mixin bases (``...Mixin`` classes of the package,
    which are not documented on their own)."""
    members: dict[str, object] = {}
    for base in reversed(cls.__mro__):
        if base is cls or (base.__name__.endswith("Mixin")
                           and base.__module__.startswith("zeroproof_nb")):
            members.update(vars(base))
    return members


def _class_members(cls: type) -> list[str]:
    lines = []
    for name, member in sorted(_own_members(cls).items()):
        if name.startswith("_") and name not in ("__call__",):
            continue
        if isinstance(member, property):
            doc = _doc(member, True)
            lines.append(f"- `{name}` (property){': ' + doc if doc else ''}")
        elif isinstance(member, (staticmethod, classmethod)) or inspect.isfunction(member):
            fn = member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
            doc = _doc(fn, True)
            lines.append(f"- `{name}{_signature(fn)}`{': ' + doc if doc else ''}")
    return lines


def _indent_doc(doc: str) -> list[str]:
    return ["", *doc.splitlines(), ""] if doc else [""]


def render() -> str:
    """The text of docs/api.md."""
    out = ["# API reference", "",
           "Generated from the docstrings by `python tools/gen_api.py`; do not edit by hand "
           "(tests/test_api_docs.py fails when this page is stale). Upstream's names and "
           "import paths: [porting.md](porting.md). The top-level package re-exports the "
           "main names (`zeroproof_nb.rational_eval`, `zeroproof_nb.fit_rational`, ...).", ""]
    out += ["Modules:", ""] + [f"- [`{m}`](#{m.replace('.', '')})" for m in MODULES] + [""]
    for modname in MODULES:
        mod = importlib.import_module(modname)
        out += [f"## `{modname}`", ""]
        summary = _doc(mod, True)
        if summary:
            out += [summary, ""]
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            if not _home(obj, modname) and not inspect.ismodule(obj):
                out += [f"### `{name}`", "", f"Re-exported from `{obj.__module__}`.", ""]
                continue
            if inspect.isclass(obj) and issubclass(obj, enum.Enum):
                members = ", ".join(f"{m.name}={m.value!r}" for m in obj)
                out += [f"### enum `{name}`: {members}"]
                out += _indent_doc(_doc(obj))
            elif inspect.isclass(obj):
                out += [f"### class `{name}{_signature(obj)}`"]
                out += _indent_doc(_doc(obj))
                members = _class_members(obj)
                if members:
                    out += members + [""]
            elif callable(obj):
                out += [f"### `{name}{_signature(obj)}`"]
                out += _indent_doc(_doc(obj))
            else:
                out += [f"### `{name}`", "", f"`{_ADDRESS.sub('', repr(obj))[:200]}`", ""]
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="fail if docs/api.md is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT.relative_to(ROOT)} is stale: run python tools/gen_api.py",
                  file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
