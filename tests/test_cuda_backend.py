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


def _cpu_reference(path: Path) -> None:
    """The CPU pass of every fused case and the CPU Trainer epochs, for the simulator run
    (which cannot run the CPU kernels: NUMBA_DISABLE_JIT)."""
    import numpy as np

    from tests.cuda_sim.fused_cases import CASES, case_data
    from zeroproof_nb import rational_loss_and_grad

    out = {}
    for name in CASES:
        d = case_data(name)
        r = rational_loss_and_grad(d["x"], d["target"], d["theta"], d["phi"], **d["kw"])
        ref = dict(loss=r.loss, data_loss=r.data_loss, grad_theta=r.grad_theta,
                   grad_phi=r.grad_phi, value=r.y["value"], tag=r.y["tag"], q=r.q,
                   tag_counts=r.stats["tag_counts"], n_saturating=r.stats["n_saturating"],
                   n_mask_real=r.stats["n_mask_real"], q_min=r.stats["q_min"])
        out.update({f"{name}/{k}": np.asarray(v) for k, v in ref.items()})
    from tests.cuda_sim.trainer_cases import cpu_reference as trainer_reference

    out.update(trainer_reference())  # the Trainer epochs of tests/cuda_sim/test_trainer_cuda.py
    np.savez(path, **out)


def test_cuda_kernels_in_the_simulator(tmp_path):
    ref = tmp_path / "cpu_reference.npz"
    _cpu_reference(ref)
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", NUMBA_DISABLE_JIT="1",
               ZP_CUDA_REFERENCE=str(ref),
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


def _ptx(kernel, sig):
    from numba import cuda

    try:
        ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(9, 0))
    except Exception as exc:  # pragma: no cover - no NVVM in this install
        if "NVVM" in str(exc) or "libnvvm" in str(exc).lower():
            pytest.skip(f"no NVVM: {exc}")
        raise
    assert ".target sm_90" in ptx and ".entry" in ptx
    return ptx


@pytest.mark.parametrize("basis,n_out,shared,policy,eps", [
    (0, 1, True, False, False), (1, 3, False, True, False), (2, 1, True, False, True),
    (2, 2, True, True, True),
])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_forward_kernels_compile_to_sm90_ptx(no_device_needed, basis, n_out, shared, policy,
                                              eps, dtype):
    from numba import types

    from zeroproof_nb.kernels.rational_cuda import forward_kernel

    kernel = forward_kernel(basis, 3, 2, n_out, shared, policy, eps, True)
    ft = getattr(types, dtype)
    sig = (types.Array(ft, 1, "C"), types.Array(ft, 2, "C"), types.Array(ft, 2, "C"), ft, ft,
           ft, ft, ft, ft, types.Array(ft, 2, "C"), types.Array(types.uint8, 2, "C"),
           types.Array(ft, 2, "C"))
    ptx = _ptx(kernel, sig)
    assert "st.global.u8" in ptx  # the tag store


@pytest.mark.parametrize("qdtype", ["float64", "float32"])
def test_weight_and_draw_kernels_compile_to_sm90_ptx(no_device_needed, qdtype):
    from numba import types

    from zeroproof_nb.kernels import weights_cuda as kwc

    f8 = types.float64
    qa = types.Array(getattr(types, qdtype), 1, "C")
    ea = types.Array(f8, 1, "C")
    sums_sig = (qa, ea, types.boolean, f8, f8, f8, f8, types.Array(f8, 1, "C"))
    draw_sig = (qa, ea, types.boolean, f8, f8, f8, f8, types.Array(f8, 1, "C"), types.int64,
                types.uint64, types.Array(types.int64, 1, "C"))
    for kernel, sig in ((kwc.weight_block_sums_kernel, sums_sig), (kwc.draw_kernel, draw_sig)):
        _ptx(kernel, sig)


@pytest.mark.parametrize("basis,n_out,shared,tukey", [(0, 1, True, False), (1, 2, False, False),
                                                      (2, 1, True, True)])
def test_fused_kernel_compiles_to_sm90_ptx(no_device_needed, basis, n_out, shared, tukey):
    from numba import types

    from zeroproof_nb.kernels.rational_cuda import fused_kernel

    kernel = fused_kernel(basis, 3, 2, n_out, shared, False, False, tukey)
    f8, i8 = types.float64, types.int64
    a1, a2 = types.Array(f8, 1, "C"), types.Array(f8, 2, "C")
    sig = (a1, a2, a2, types.boolean, f8, a2, a2, f8, f8, f8, f8, f8, f8, i8, f8, f8, i8, f8,
           f8, f8, f8, a2, types.Array(types.uint8, 2, "C"), a2, a2, types.Array(i8, 2, "C"))
    ptx = _ptx(kernel, sig)
    assert "bar.sync" in ptx and "atom.global.add" in ptx
    assert "atom.global.add.f64" not in ptx  # float sums: fixed-order tile sums, no atomics


@pytest.mark.parametrize("basis,dp,dq,n_out,shared,want_h", [
    (0, 3, 2, 1, True, True), (1, 2, 3, 2, False, True), (2, 3, 2, 1, True, True),
    (2, 1, 1, 3, True, False),
])
def test_normal_equations_kernel_compiles_to_sm90_ptx(no_device_needed, basis, dp, dq, n_out,
                                                      shared, want_h):
    from numba import types

    from zeroproof_nb.kernels.least_squares_cuda import normal_equations_kernel

    f8, i8, b1 = types.float64, types.int64, types.boolean
    a1, a2 = types.Array(f8, 1, "C"), types.Array(f8, 2, "C")
    sig = (a1, a2, a2, b1, f8, a2, a2, f8, f8, b1, f8, b1, f8, f8, i8, f8, f8, i8, f8, f8, f8, a2,
           types.Array(i8, 2, "C"))
    ptx = _ptx(normal_equations_kernel(basis, dp, dq, n_out, shared, want_h), sig)
    assert "bar.sync" in ptx and "atom.global.add" in ptx
    assert "atom.global.add.f64" not in ptx  # float sums: fixed-order tile sums, no atomics


@pytest.mark.parametrize("qdtype", ["float64", "float32"])
def test_sampling_kernels_compile_to_sm90_ptx(no_device_needed, qdtype):
    from numba import types

    from zeroproof_nb.kernels import weights_cuda as kwc

    f8, i8, u8, b1 = types.float64, types.int64, types.uint64, types.boolean
    f1, i1, u1 = (types.Array(t, 1, "C") for t in (f8, i8, u8))
    qa = types.Array(getattr(types, qdtype), 1, "C")
    for kernel, sig in (
        (kwc.weights_kernel, (qa, f1, b1, f8, f8, f8, f8, f1)),
        (kwc.exponential_keys_kernel, (f1, u8, f1)),
        (kwc.exclude_kernel, (f1, i1)),
        (kwc.radix_histogram_kernel, (u1, u8, u8, u8, i1)),
        (kwc.gather_at_most_kernel, (u1, u8, i1, u1, i1)),
        (kwc.bitonic_step_kernel, (u1, i1, i8, i8)),
        (kwc.alias_draw_kernel, (u1, u8, i1)),
    ):
        _ptx(kernel, sig)


def test_marking_and_tag_count_kernels_compile_to_sm90_ptx(no_device_needed):
    from numba import types

    from zeroproof_nb.kernels.refine_cuda import mark_cells_kernel
    from zeroproof_nb.kernels.tags_cuda import count_tags_kernel

    f1 = types.Array(types.float64, 1, "C")
    sig = (f1, types.Array(types.boolean, 1, "C"), types.Array(types.int32, 1, "C"),
           types.int64, types.float64, f1, types.Array(types.uint8, 1, "C"))
    _ptx(mark_cells_kernel, sig)
    ptx = _ptx(count_tags_kernel, (types.Array(types.uint8, 1, "C"),
                                   types.Array(types.int64, 1, "C")))
    assert "atom.shared.add" in ptx
