"""Cases of the fused-pass comparison CPU vs CUDA (shared by tests/test_cuda_backend.py, which
computes the CPU reference, and the simulator test that runs the CUDA kernel)."""
from __future__ import annotations

import numpy as np

CASES = {
    "mask_real_mse": dict(dp=3, dq=2, n_out=1, kw={}),
    "saturating_huber_weights": dict(dp=2, dq=2, n_out=1, weights=True,
                                     kw=dict(mode="saturating", saturation_bound=0.5,
                                             loss="huber", huber_delta=0.3)),
    "hybrid_rejection_cheb": dict(dp=3, dq=3, n_out=1, basis="chebyshev", domain=(-2.0, 2.0),
                                  kw=dict(mode="hybrid", delta=0.2, lambda_rej=0.5,
                                          rejection_threshold=0.3)),
    "tukey_anchored": dict(dp=4, dq=3, n_out=1, basis="chebyshev_anchored", domain=(-1.5, 2.0),
                           kw=dict(loss="tukey", huber_delta=0.4)),
    "heads_separate_q": dict(dp=2, dq=2, n_out=3, shared=False, kw=dict(mode="hybrid", delta=0.1)),
    "heads_shared_q_many_points": dict(dp=2, dq=1, n_out=2, n=400, kw={}),
}


def case_data(name: str) -> dict:
    c = CASES[name]
    rng = np.random.default_rng(sorted(CASES).index(name))
    n = c.get("n", 150)
    dom = c.get("domain", (-1.0, 1.0))
    x = rng.uniform(dom[0], dom[1], n)
    x[5] = np.nan
    n_out = c["n_out"]
    theta = rng.normal(size=(c["dp"] + 1,) if n_out == 1 else (n_out, c["dp"] + 1))
    if n_out == 1 or c.get("shared", True):
        phi = 0.4 * rng.normal(size=c["dq"])
    else:
        phi = 0.4 * rng.normal(size=(n_out, c["dq"]))
    shape = (n,) if n_out == 1 else (n, n_out)
    target = rng.normal(size=shape)
    target.reshape(n, -1)[7, 0] = np.inf  # a labelled pole
    kw = dict(c["kw"], basis=c.get("basis", "monomial"), domain=dom)
    if c.get("weights"):
        kw["sample_weight"] = rng.uniform(0.1, 2.0, n)
    return dict(x=x, target=target, theta=theta, phi=phi, kw=kw)
