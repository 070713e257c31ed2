"""The CUDA backend without a GPU: the kernels' tests in numba-cuda's simulator (a subprocess:
the simulator is chosen when numba is imported), and real sm_90 PTX from
``numba.cuda.compile_ptx``. Skipped where numba-cuda is not installed."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba.cuda")
ROOT = Path(__file__).resolve().parents[1]


def test_cuda_kernels_in_the_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", NUMBA_DISABLE_JIT="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(ROOT / "tests" / "cuda_sim")], env=env, capture_output=True,
                         text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "skipped" not in out.stdout.splitlines()[-1]


@pytest.fixture
def no_device_needed(monkeypatch):
    """numba-cuda 0.30 asks the current device for its compute capability when it compiles a
    device function called by a kernel, even under ``compile_ptx(cc=...)``: give it sm_90."""
    import numba.cuda.dispatcher as dispatcher

    class _SM90:
        compute_capability = (9, 0)

    monkeypatch.setattr(dispatcher, "get_current_device", lambda: _SM90())


@pytest.mark.parametrize("basis,n_out,shared,policy,eps", [
    (0, 1, True, False, False), (1, 3, False, True, False), (2, 1, True, False, True),
    (2, 2, True, True, True),
])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_forward_kernels_compile_to_sm90_ptx(no_device_needed, basis, n_out, shared, policy,
                                              eps, dtype):
    from numba import cuda, types

    from zeroproof_nb.kernels.rational_cuda import forward_kernel

    kernel = forward_kernel(basis, 3, 2, n_out, shared, policy, eps, True)
    ft = getattr(types, dtype)
    sig = (types.Array(ft, 1, "C"), types.Array(ft, 2, "C"), types.Array(ft, 2, "C"), ft, ft,
           ft, ft, ft, ft, types.Array(ft, 2, "C"), types.Array(types.uint8, 2, "C"),
           types.Array(ft, 2, "C"))
    try:
        ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(9, 0))
    except Exception as exc:  # pragma: no cover - no NVVM in this install
        if "NVVM" in str(exc) or "libnvvm" in str(exc).lower():
            pytest.skip(f"no NVVM: {exc}")
        raise
    assert ".target sm_90" in ptx and ".entry" in ptx
    assert "st.global.u8" in ptx  # the tag store


@pytest.mark.parametrize("qdtype", ["float64", "float32"])
def test_weight_and_draw_kernels_compile_to_sm90_ptx(no_device_needed, qdtype):
    from numba import cuda, types

    from zeroproof_nb.kernels import weights_cuda as kwc

    f8 = types.float64
    qa = types.Array(getattr(types, qdtype), 1, "C")
    ea = types.Array(f8, 1, "C")
    sums_sig = (qa, ea, types.boolean, f8, f8, f8, f8, types.Array(f8, 1, "C"))
    draw_sig = (qa, ea, types.boolean, f8, f8, f8, f8, types.Array(f8, 1, "C"), types.int64,
                types.uint64, types.Array(types.int64, 1, "C"))
    for kernel, sig in ((kwc.weight_block_sums_kernel, sums_sig), (kwc.draw_kernel, draw_sig)):
        try:
            ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(9, 0))
        except Exception as exc:  # pragma: no cover - no NVVM in this install
            if "NVVM" in str(exc) or "libnvvm" in str(exc).lower():
                pytest.skip(f"no NVVM: {exc}")
            raise
        assert ".target sm_90" in ptx and ".entry" in ptx
