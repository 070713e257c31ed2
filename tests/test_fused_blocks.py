"""Block structure of the forward and fused kernels against independent references.

The kernels process points in blocks inside fixed chunks, keep the gradient sums of few terms
in registers (else they read feature rows), and store values and tags into the transreal
records eight at a time (else element by element). These tests cover each of those paths with
batches that span several blocks and chunks, against NumPy evaluations of the documented
formulas (``docs/losses.md``): values and tags bit for bit, gradients to rounding.
"""
import numba
import numpy as np
import pytest

from zeroproof_nb.core import tr_dtype
from zeroproof_nb.kernels.tags import CHUNK
from zeroproof_nb.rational import rational_eval, rational_loss_and_grad

REAL, PINF, NINF, PHI = 0, 1, 2, 3


def _horner(c, x):
    acc = np.full_like(x, c[-1])
    for ck in c[-2::-1]:
        acc = acc * x + ck
    return acc


def _numpy_forward(x, theta, phi):
    """Values and transreal tags of P/Q (monomial Horner, one output) with NumPy, and the
    feature matrix psi_k(x) = x^k."""
    with np.errstate(all="ignore"):
        V = np.vander(x, max(len(theta), len(phi) + 1), increasing=True)
        p = _horner(theta, x)
        q = _horner(phi, x) * x + 1.0 if len(phi) else np.ones_like(x)
        y = p / q
    tag = np.zeros(x.shape, np.uint8)
    tag[np.isposinf(y)] = PINF
    tag[np.isneginf(y)] = NINF
    tag[np.isnan(y)] = PHI
    return y, tag, p, q, V


def _numpy_mask_real_grads(x, t, theta, phi):
    """Mask-REAL gradients of the mean of 1/2 (y - t)^2 over REAL outputs (docs/losses.md)."""
    y, tag, p, q, V = _numpy_forward(x, theta, phi)
    real = tag == REAL
    g = np.where(real, y - t, 0.0) / x.shape[0]
    with np.errstate(all="ignore"):
        dp = np.where(real, g / q, 0.0)
        dq = np.where(real, -g * y / q, 0.0)
    return dp @ V[:, :len(theta)], dq @ V[:, 1:len(phi) + 1]


@pytest.mark.parametrize("dp,dq", [(3, 2), (10, 10)], ids=["registers", "feature-rows"])
def test_gradients_over_many_blocks_and_chunks(rng, dp, dq):
    n = 2 * CHUNK + 4100 + 3  # several chunks, blocks and a ragged tail
    x = rng.uniform(-1, 1, n)
    t = np.sin(3 * x)
    theta = rng.normal(size=dp + 1) * 0.3
    phi = rng.uniform(-1, 1, dq)
    phi *= 0.5 / np.abs(phi).sum()
    res = rational_loss_and_grad(x, t, theta, phi)
    gt, gp = _numpy_mask_real_grads(x, t, theta, phi)
    np.testing.assert_allclose(res.grad_theta, gt, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(res.grad_phi, gp, rtol=1e-10, atol=1e-15)
    y, tag, _, q, _ = _numpy_forward(x, theta, phi)
    np.testing.assert_array_equal(res.y["value"], y)
    np.testing.assert_array_equal(res.tags, tag)
    np.testing.assert_array_equal(res.q, q)


@pytest.mark.parametrize("dp,dq,n_out", [(10, 10, 1), (3, 2, 4)], ids=["rows", "multi-rows"])
def test_feature_row_path_does_not_depend_on_thread_count(rng, dp, dq, n_out):
    n = 3 * CHUNK + 77
    x = rng.uniform(-1, 1, n)
    x[::997] = 0.5
    theta = rng.normal(size=(n_out, dp + 1)) * 0.3 if n_out > 1 else rng.normal(size=dp + 1) * 0.3
    phi = rng.uniform(-1, 1, dq) * 0.05
    phi[0] = -2.0  # a pole at x = 0.5 (approximately)
    t = rng.normal(size=(n, n_out)) if n_out > 1 else rng.normal(size=n)
    saved = numba.get_num_threads()
    results = []
    try:
        for k in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(k)
            results.append(rational_loss_and_grad(x, t, theta, phi, mode="hybrid", delta=0.3,
                                                  lambda_rej=0.1))
    finally:
        numba.set_num_threads(saved)
    a, b = results[0], results[-1]
    assert a.loss == b.loss
    np.testing.assert_array_equal(a.grad_theta, b.grad_theta)
    np.testing.assert_array_equal(a.grad_phi, b.grad_phi)
    assert np.all(np.isfinite(a.grad_theta)) and np.all(np.isfinite(a.grad_phi))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [5, 8, 517, CHUNK + 13])
def test_records_packed_and_strided_outputs(rng, dtype, n):
    x = rng.uniform(-1.5, 1.5, n).astype(dtype)
    x[::11] = np.nan
    x[3::13] = 0.5  # Q = 0 exactly: +-inf or PHI tags
    theta = np.array([0.25, -1.0, 0.5, 0.125], dtype)
    phi = np.array([-2.0, 0.0], dtype)
    with np.errstate(all="ignore"):
        p = ((theta[3] * x + theta[2]) * x + theta[1]) * x + theta[0]
        q = (phi[1] * x + phi[0]) * x + dtype(1.0)
        y = p / q
    tag = np.zeros(n, np.uint8)
    tag[np.isposinf(y)] = PINF
    tag[np.isneginf(y)] = NINF
    tag[np.isnan(y)] = PHI
    packed = rational_eval(x, theta, phi)
    np.testing.assert_array_equal(packed["value"], y)
    np.testing.assert_array_equal(packed["tag"], tag)
    # a strided output view (records not contiguous) takes the element-wise path
    base = np.zeros(2 * n, dtype=tr_dtype(dtype))
    rational_eval(x, theta, phi, out=base[::2])
    np.testing.assert_array_equal(base[::2]["value"], y)
    np.testing.assert_array_equal(base[::2]["tag"], tag)
    assert np.all(base[1::2]["value"] == 0) and np.all(base[1::2]["tag"] == 0)
    # the fused pass writes the same records
    res = rational_loss_and_grad(x, np.zeros(n), theta, phi)
    np.testing.assert_array_equal(res.y["value"], y)
    np.testing.assert_array_equal(res.tags, tag)


def test_multi_output_records_match_single_heads(rng):
    n = 1000 + 3
    x = rng.uniform(-1, 1, n)
    theta = rng.normal(size=(3, 4))
    phi = np.array([-0.4, 0.3])
    y, q = rational_eval(x, theta, phi, return_q=True)
    for j in range(3):
        yj, qj = rational_eval(x, theta[j], phi, return_q=True)
        np.testing.assert_array_equal(y[:, j]["value"], yj["value"])
        np.testing.assert_array_equal(y[:, j]["tag"], yj["tag"])
        np.testing.assert_array_equal(q[:, j], qj)


def test_non_finite_x_gets_no_rejection_term_even_with_finite_q():
    # without a denominator (d_q = 0) Q = 1 also at a NaN input; a labelled pole (non-REAL
    # target) adds lambda * |Q| per point with finite x only: here one of the two points
    res = rational_loss_and_grad(np.array([0.2, np.nan]), np.array([np.nan, np.nan]), [1.0],
                                 np.zeros(0), lambda_rej=1.0)
    assert res.rejection_loss == pytest.approx(0.5)
    assert np.all(res.grad_theta == 0.0)
