"""The ``zeroproof-nb`` command."""
from __future__ import annotations

import argparse
import os
import platform
import re
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


#: demo options that take a comma-separated list of numbers, which may start with a minus sign
_LIST_OPTIONS = ("--poles", "--residues", "--domain")
_NUMBER_LIST = re.compile(r"^\s*-[0-9.]")


def join_negative_lists(argv: Sequence[str]) -> list[str]:
    """``["--poles", "-0.37,0.61"]`` -> ``["--poles=-0.37,0.61"]``.

    argparse takes a value that starts with ``-`` and is not a plain negative number (a list
    such as ``-0.37,0.61`` is not) for an option and fails with "expected one argument"; the
    ``--poles=-0.37,0.61`` form always works. This joins a list option and the next token when
    that token starts with a minus sign followed by a digit or a point.
    """
    out: list[str] = []
    it = iter(range(len(argv)))
    argv = list(argv)
    for i in it:
        tok = argv[i]
        if tok == "--":
            out.extend(argv[i:])
            break
        if tok in _LIST_OPTIONS and i + 1 < len(argv) and _NUMBER_LIST.match(argv[i + 1]):
            out.append(f"{tok}={argv[i + 1]}")
            next(it, None)
        else:
            out.append(tok)
    return out


def cmd_demo(args: argparse.Namespace) -> int:
    """Fit the demo's noisy target with seven models; print and write the comparison."""
    from .demo import run_demo

    run_demo(poles=args.poles, residues=args.residues, domain=tuple(args.domain),
             noise=args.noise, epochs=args.epochs, seed=args.seed, device=args.device,
             log_every=args.log_every, out=args.out, n_pool=args.n_pool,
             verbose=not args.quiet, plot=not args.no_plot)
    return 0


def check_demo(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Validate the demo's arguments before any work: ``parser.error`` (usage, the message,
    exit status 2, no traceback) on the first bad one."""
    from .demo import check_demo_arguments

    try:
        check_demo_arguments(poles=args.poles, residues=args.residues, domain=args.domain,
                             noise=args.noise, epochs=args.epochs, seed=args.seed,
                             n_pool=args.n_pool, out=args.out, device=args.device,
                             log_every=args.log_every)
    except (TypeError, ValueError) as exc:
        msg = str(exc)
        for name in ("poles", "residues", "domain", "noise", "epochs", "seed", "n_pool", "out",
                     "device", "log_every"):
            if msg.startswith(name):
                flag = "--" + name.replace("_", "-")
                msg = f"{flag}: {msg}"
                break
        parser.error(msg)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zeroproof-nb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_info = sub.add_parser("info", help="versions, threading layer, CUDA availability")
    p_info.set_defaults(func=cmd_info)
    p_demo = sub.add_parser(
        "demo", help="the main job: find the poles of noisy samples, seven models side by side",
        description="Fit a rational target with known poles from noisy samples with seven models "
                    "(linearised start, trained, fit_rational, AAA twice, ε-rational, polynomial) "
                    "and compare matched / missed / extra poles, PLE, far / near MSE and time. "
                    "Lists may start with a minus sign: --poles -0.37,0.61.")
    p_demo.add_argument("--poles", type=_floats, default=[0.3, -0.55],
                        help="true poles, inside the domain (default 0.3,-0.55)")
    p_demo.add_argument("--residues", type=_floats, default=[1.0, -2.0],
                        help="one non-zero residue per pole (default 1,-2)")
    p_demo.add_argument("--domain", type=_floats, default=[-1.0, 1.0], help="lo,hi (default -1,1)")
    p_demo.add_argument("--noise", type=float, default=0.01,
                        help="relative noise of the samples, y*(1 + noise*N(0,1)); 0: clean "
                             "(default 0.01)")
    p_demo.add_argument("--epochs", type=int, default=30, help="most training epochs (default 30)")
    p_demo.add_argument("--seed", type=int, default=0)
    p_demo.add_argument("--n-pool", type=int, default=4000, dest="n_pool",
                        help="number of samples (default 4000)")
    p_demo.add_argument("--device", choices=["cpu", "auto", "cuda"], default="cpu")
    p_demo.add_argument("--log-every", type=int, default=5, dest="log_every")
    p_demo.add_argument("--out", default="zeroproof_demo", help="output directory")
    p_demo.add_argument("--no-plot", action="store_true", dest="no_plot", help="skip demo.png")
    p_demo.add_argument("--quiet", action="store_true", help="print only errors")
    p_demo.set_defaults(func=cmd_demo, check=lambda args: check_demo(p_demo, args))
    from .bench_report import add_bench_parser

    add_bench_parser(sub)
    return parser


#: BLAS thread settings the command sets when the user has not: the parallel work is numba's,
#: and the BLAS calls (small least-squares solves, AAA's SVDs) lose more to waiting threads
#: than they gain (the demo: 21.7 s warm with OpenBLAS's default threads on the 2-core dev box
#: under load, 3.6 s with one).
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def limit_blas_threads() -> None:
    """Default the BLAS libraries to one thread, unless the user set them or NumPy is already
    loaded (then it is too late: the setting is read when the library loads)."""
    if "numpy" in sys.modules:
        return
    for name in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(name, "1")


def main(argv: Sequence[str] | None = None) -> int:
    limit_blas_threads()
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(join_negative_lists(argv))
    check = getattr(args, "check", None)
    if check is not None:
        check(args)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
