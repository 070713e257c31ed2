"""The ``zeroproof-nb`` command."""
from __future__ import annotations

import argparse
import platform
import sys
from typing import Sequence


def _cuda_status() -> str:
    try:
        from numba import cuda  # noqa: F401  (numba-cuda or numba's built-in target)
    except Exception as exc:  # pragma: no cover - depends on the install
        return f"not installed ({type(exc).__name__})"
    try:
        if cuda.is_available():
            return f"usable ({cuda.get_current_device().name!s})"
        return "installed, no usable GPU"
    except Exception as exc:  # pragma: no cover
        return f"installed, not usable ({exc})"


def cmd_info(args: argparse.Namespace) -> int:
    """Print versions, numba threading layer and thread count, and CUDA availability."""
    import numba
    import numpy
    import scipy

    from . import __version__
    from .core import count_tags
    import numpy as np

    count_tags(np.zeros(4, dtype=np.uint8))  # compile a parallel kernel so the layer is chosen
    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = "not initialised"
    print(f"zeroproof_nb   {__version__}")
    print(f"python         {platform.python_version()} ({sys.platform})")
    print(f"numpy          {numpy.__version__}")
    print(f"scipy          {scipy.__version__}")
    print(f"numba          {numba.__version__}")
    print(f"threading      {layer}, {numba.get_num_threads()} threads")
    print(f"cuda           {_cuda_status()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zeroproof-nb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_info = sub.add_parser("info", help="versions, threading layer, CUDA availability")
    p_info.set_defaults(func=cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
