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


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc


def cmd_demo(args: argparse.Namespace) -> int:
    """Train TR-rational and the baselines on a built-in problem; print and write the results."""
    from .demo import run_demo

    if len(args.domain) != 2:
        raise SystemExit("--domain takes two numbers: lo,hi")
    if len(args.poles) != len(args.residues):
        raise SystemExit("--poles and --residues must have the same length")
    run_demo(poles=args.poles, residues=args.residues, domain=tuple(args.domain),
             noise=args.noise, epochs=args.epochs, seed=args.seed, device=args.device,
             log_every=args.log_every, out=args.out, verbose=not args.quiet)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zeroproof-nb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_info = sub.add_parser("info", help="versions, threading layer, CUDA availability")
    p_info.set_defaults(func=cmd_info)
    p_demo = sub.add_parser("demo", help="the main job: fit a target with poles, compare baselines")
    p_demo.add_argument("--poles", type=_floats, default=[0.3, -0.55], help="e.g. 0.3,-0.55")
    p_demo.add_argument("--residues", type=_floats, default=[1.0, -2.0], help="e.g. 1,-2")
    p_demo.add_argument("--domain", type=_floats, default=[-1.0, 1.0], help="lo,hi")
    p_demo.add_argument("--noise", type=float, default=0.0, help="target noise std")
    p_demo.add_argument("--epochs", type=int, default=30)
    p_demo.add_argument("--seed", type=int, default=0)
    p_demo.add_argument("--device", choices=["cpu", "auto", "cuda"], default="cpu")
    p_demo.add_argument("--log-every", type=int, default=5, dest="log_every")
    p_demo.add_argument("--out", default="zeroproof_demo", help="output directory")
    p_demo.add_argument("--quiet", action="store_true", help="print only errors")
    p_demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
