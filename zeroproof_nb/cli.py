"""The ``zeroproof-nb`` command (also ``python -m zeroproof_nb``).

Subcommands:

* ``info``: versions, the numba threading layer and thread count, CUDA availability;
* ``demo``: the main job, where are the poles of noisy samples, seven models side by side;
* ``bench``: one case of each kernel family beside its NumPy / SciPy reference, the ratios.

Bad input ends in one line on stderr and exit status 2, before any work; ``--json`` makes
``info`` and ``demo`` print one JSON object on stdout for scripts.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any, NoReturn, Sequence

from . import __version__
from .device import backend_report, cuda_problem, cuda_status

__all__ = ["main", "build_parser", "join_negative_lists", "limit_blas_threads",
           "kernel_cache_is_warm", "threading_info", "COLD_COMPILE_SECONDS"]

#: what the first ``demo`` on an empty numba cache spends compiling on the 2-core dev box, in
#: round figures (a cold run there took 17 s on an idle machine, see README); the
#: notice on stderr quotes it
COLD_COMPILE_SECONDS = 17

_EPILOG = ("examples:\n"
           "  zeroproof-nb demo                          the default two-pole problem\n"
           "  zeroproof-nb demo --poles -0.37,0.61 --residues 1,1 --noise 0\n"
           "  zeroproof-nb demo --json --out '' > summary.json\n"
           "  zeroproof-nb info --json\n"
           "exit status: 0 success, 2 bad usage or arguments (one line on stderr)")


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr (``prog: error: message``)
    and exit status 2, without the usage block."""

    def error(self, message: str) -> NoReturn:  # noqa: D102 - argparse's hook
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the descriptions' line breaks and appends ``(default: ...)`` to option help."""


def _cuda_status() -> str:
    problem = cuda_problem()
    return f"not usable: {problem}" if problem is not None else f"usable ({cuda_status()[1]})"


def threading_info() -> tuple[str, int]:
    """``(layer, threads)``: numba's threading layer after a parallel kernel ran on enough
    points to start the thread pool (a tiny call may finish before the layer is chosen)."""
    import numba
    import numpy as np

    from .core import count_tags

    count_tags(np.zeros(1 << 20, dtype=np.uint8))
    try:
        layer = str(numba.threading_layer())
    except ValueError:  # pragma: no cover - only if no parallel region ever ran
        layer = "not initialised"
    return layer, int(numba.get_num_threads())


def cmd_info(args: argparse.Namespace) -> int:
    """Print versions, numba threading layer and thread count, and CUDA availability."""
    import numba
    import numpy
    import scipy

    layer, threads = threading_info()
    info: dict[str, Any] = {
        "zeroproof_nb": __version__, "python": platform.python_version(), "platform": sys.platform,
        "numpy": numpy.__version__, "scipy": scipy.__version__, "numba": numba.__version__,
        "threading_layer": layer, "threads": threads, "cuda": _cuda_status(),
        "kernel_cache": "warm" if kernel_cache_is_warm() else "cold",
        "backend": backend_report(),
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"zeroproof_nb   {info['zeroproof_nb']}")
    print(f"python         {info['python']} ({info['platform']})")
    print(f"numpy          {info['numpy']}")
    print(f"scipy          {info['scipy']}")
    print(f"numba          {info['numba']}")
    print(f"threading      {layer}, {threads} threads")
    print(f"cuda           {info['cuda']}")
    print(f"backend        {info['backend']}")
    print(f"kernel cache   {info['kernel_cache']}")
    return 0


def _floats(text: str) -> list[float]:
    values = [v.strip() for v in text.split(",")]
    if any(v == "" for v in values) and text.strip():
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")
    try:
        return [float(v) for v in values if v]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}") from None


#: demo options that take a comma-separated list of numbers, which may start with a minus sign
_LIST_OPTIONS = ("--poles", "--residues", "--domain")
_NUMBER_LIST = re.compile(r"^\s*-(?:[0-9.]|inf|nan)", re.IGNORECASE)


def join_negative_lists(argv: Sequence[str]) -> list[str]:
    """``["--poles", "-0.37,0.61"]`` -> ``["--poles=-0.37,0.61"]``.

    argparse takes a value that starts with ``-`` and is not a plain negative number (a list
    such as ``-0.37,0.61`` is not) for an option and fails with "expected one argument"; the
    ``--poles=-0.37,0.61`` form always works. This joins a list option and the next token when
    that token starts with a minus sign followed by a digit, a point, ``inf`` or ``nan``
    (which the checks then refuse with their own message).
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


def kernel_cache_is_warm() -> bool:
    """Whether numba's disk cache already holds the demo's kernels (judged by the index file
    of the Levenberg–Marquardt kernel, ``lm_cpu.lm_run``, wherever numba keeps it)."""
    from .kernels.lm_cpu import lm_run
    from .kernels.numba_internals import disk_cache_index

    index = disk_cache_index(lm_run)
    return index is not None and Path(index).exists()


def cmd_demo(args: argparse.Namespace) -> int:
    """Fit the demo's noisy target with seven models; print and write the comparison."""
    from ._jsonutil import dumps_strict
    from .demo import run_demo

    for line in args.warnings:
        print(f"{args.prog}: warning: {line}", file=sys.stderr)
    if not args.quiet and not kernel_cache_is_warm():
        print(f"{args.prog}: compiling kernels (first run only, about {COLD_COMPILE_SECONDS} s "
              f"on 2 cores)", file=sys.stderr, flush=True)
    summary = run_demo(poles=args.poles, residues=args.residues, domain=tuple(args.domain),
                       noise=args.noise, epochs=args.epochs, seed=args.seed, device=args.device,
                       log_every=args.log_every, out=args.out or None, n_pool=args.n_pool,
                       verbose=not args.quiet, plot=not args.no_plot,
                       stream=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(dumps_strict(summary, indent=2))
    return 0


_ARG_NAMES = ("poles", "residues", "domain", "noise", "epochs", "seed", "n_pool", "out",
              "device", "log_every")


def check_demo(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Validate the demo's arguments before any work: ``parser.error`` (one line, exit
    status 2, no traceback) on the first bad one; keep the warnings (poles not scored)."""
    from .demo import check_demo_arguments

    try:
        checked = check_demo_arguments(poles=args.poles, residues=args.residues,
                                       domain=args.domain, noise=args.noise, epochs=args.epochs,
                                       seed=args.seed, n_pool=args.n_pool, out=args.out or None,
                                       device=args.device, log_every=args.log_every)
    except (TypeError, ValueError) as exc:
        msg = str(exc)
        for name in _ARG_NAMES:
            flag = f"--{name.replace('_', '-')}"
            if msg.startswith(name + ": "):
                msg = flag + msg[len(name):]
                break
            if msg.startswith(name):
                msg = f"{flag}: {msg}"
                break
        parser.error(msg)
    args.warnings = checked["warnings"]
    args.prog = parser.prog


def check_bench(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Validate ``bench``'s arguments before any timing: ``parser.error`` (one line, exit
    status 2) on the first bad one; ``--json``'s directory must exist and take a file."""
    import numba

    if not (math.isfinite(args.budget) and args.budget > 0):
        parser.error(f"--budget: seconds per case must be a finite number > 0, got {args.budget}")
    most = numba.config.NUMBA_NUM_THREADS
    if args.threads is not None and not 1 <= args.threads <= most:
        parser.error(f"--threads: must be between 1 and {most} (numba's threads on this "
                     f"machine), got {args.threads}")
    if args.width is not None and args.width < 40:
        parser.error(f"--width: the table needs at least 40 columns, got {args.width}")
    if args.json:
        path = Path(args.json)
        if path.is_dir():
            parser.error(f"--json: {path} is a directory; give a file name")
        existed = path.exists()
        try:  # tried, not judged from permission bits (root passes those everywhere)
            with open(path, "a", encoding="utf-8"):
                pass
            if not existed:
                path.unlink()
        except OSError as exc:
            parser.error(f"--json: cannot write {path}: {exc.strerror or exc}")


def build_parser() -> argparse.ArgumentParser:
    """The command's parser: one subparser per subcommand, each with ``func`` (and, where it
    has arguments to validate, ``check``) set as defaults."""
    parser = Parser(prog="zeroproof-nb", description=__doc__, epilog=_EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version",
                        version=f"zeroproof-nb {__version__} (python {platform.python_version()})")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{info,demo,bench}",
                                parser_class=Parser)
    p_info = sub.add_parser("info", help="versions, threading layer, CUDA availability",
                            description="Print the versions of zeroproof_nb, Python, NumPy, "
                                        "SciPy and numba, numba's threading layer and thread "
                                        "count, whether CUDA is usable and whether the kernel "
                                        "cache is warm.", formatter_class=_Formatter)
    p_info.add_argument("--json", action="store_true", help="print one JSON object instead")
    p_info.set_defaults(func=cmd_info)

    p_demo = sub.add_parser(
        "demo", help="the main job: find the poles of noisy samples, seven models side by side",
        formatter_class=_Formatter,
        description="Fit a rational target with known poles from noisy samples with seven "
                    "models\n(linearised start, trained, fit_rational, AAA twice, ε-rational, "
                    "polynomial) and compare\nmatched / missed / extra poles, PLE, far / near "
                    "MSE and time (README: \"The demo and\nits metrics\"). Lists may start with "
                    "a minus sign: --poles -0.37,0.61.",
        epilog="Poles outside the domain shape the target but are not scored (a warning says "
               "so);\npoles within the match tolerance (1% of the width) of an edge are "
               "refused.\nWrites OUT/summary.json (strict JSON), OUT/history.json and "
               "OUT/demo.png.")
    p_demo.add_argument("--poles", type=_floats, default="0.3,-0.55", metavar="P1,P2,...",
                        help="true poles of the target, distinct")
    p_demo.add_argument("--residues", type=_floats, default="1,-2", metavar="R1,R2,...",
                        help="one non-zero residue per pole")
    p_demo.add_argument("--domain", type=_floats, default="-1,1", metavar="LO,HI",
                        help="the interval the samples are drawn from, lo < hi")
    p_demo.add_argument("--noise", type=float, default=0.01,
                        help="relative noise of the samples, y*(1 + noise*N(0,1)); 0: clean")
    p_demo.add_argument("--epochs", type=int, default=30,
                        help="most training epochs per trained model (0: no training, the "
                             "trained rows keep their start)")
    p_demo.add_argument("--seed", type=int, default=0,
                        help="seed of the samples, the noise, the trainers and fit_rational's "
                             "held-out split")
    p_demo.add_argument("--n-pool", type=int, default=4000, dest="n_pool",
                        help="number of samples, uniform on the domain (>= 50)")
    p_demo.add_argument("--device", choices=["cpu", "auto", "cuda"], default="cpu",
                        help="where the Trainers' passes run and the models are evaluated on "
                             "the test points: cuda needs a GPU and numba-cuda, auto takes "
                             "cuda when usable (fit_rational and AAA run on the CPU)")
    p_demo.add_argument("--log-every", type=int, default=5, dest="log_every", metavar="N",
                        help="print a progress line every N epochs")
    p_demo.add_argument("--out", default="zeroproof_demo", metavar="DIR",
                        help="output directory, checked before any work ('': write nothing)")
    p_demo.add_argument("--no-plot", action="store_true", dest="no_plot",
                        help="skip demo.png (it needs matplotlib)")
    p_demo.add_argument("--quiet", action="store_true",
                        help="print only warnings and errors (and the JSON with --json)")
    p_demo.add_argument("--json", action="store_true",
                        help="print the summary as one strict-JSON object on stdout (progress "
                             "and table go to stderr)")
    p_demo.set_defaults(func=cmd_demo, check=lambda args: check_demo(p_demo, args))
    from .bench_report import add_bench_parser

    p_bench = add_bench_parser(sub)
    p_bench.set_defaults(check=lambda args: check_bench(p_bench, args))
    parser.subcommands = {"info": p_info, "demo": p_demo, "bench": p_bench}
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
    """Run the command with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    limit_blas_threads()
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    args, extra = parser.parse_known_args(join_negative_lists(argv))
    if extra:  # reported by the subcommand's parser, under its own name
        parser.subcommands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    check = getattr(args, "check", None)
    if check is not None:
        check(args)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
