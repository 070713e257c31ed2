"""SGD and Adam against hand-written update formulas."""
import json

import numpy as np
import pytest

from zeroproof_nb.optim import SGD, Adam


def test_sgd_closed_form_on_quadratic():
    # f(p) = 1/2 a p^2: p_t = (1 - lr a)^t p_0
    a, lr = 3.0, 0.1
    p = np.array([2.0, -1.0])
    opt = SGD([p], lr=lr)
    for _ in range(7):
        opt.step([a * p])
    np.testing.assert_allclose(p, (1 - lr * a) ** 7 * np.array([2.0, -1.0]), rtol=1e-14)


def test_sgd_momentum_matches_recurrence():
    # heavy ball on f = 1/2 a p^2: v_t = mu v_{t-1} + a p_{t-1}; p_t = p_{t-1} - lr v_t,
    # i.e. p_t = (1 + mu - lr a) p_{t-1} - mu p_{t-2} (a second-order linear recurrence)
    a, lr, mu = 2.0, 0.05, 0.9
    p = np.array([1.0])
    opt = SGD([p], lr=lr, momentum=mu)
    seq = [1.0]
    for _ in range(10):
        opt.step([a * p])
        seq.append(float(p[0]))
    expect = [1.0, 1.0 - lr * a]
    for _ in range(9):
        expect.append((1 + mu - lr * a) * expect[-1] - mu * expect[-2])
    np.testing.assert_allclose(seq, expect, rtol=1e-12)


def test_sgd_nesterov_and_weight_decay_first_steps():
    p = np.array([1.0, 2.0])
    g1, g2 = np.array([0.5, -1.0]), np.array([0.25, 0.5])
    opt = SGD([p], lr=0.1, momentum=0.5, nesterov=True, weight_decay=0.2)
    p0 = p.copy()
    d1 = g1 + 0.2 * p0
    v1 = d1
    p1 = p0 - 0.1 * (d1 + 0.5 * v1)
    opt.step([g1])
    np.testing.assert_allclose(p, p1, rtol=1e-15)
    d2 = g2 + 0.2 * p1
    v2 = 0.5 * v1 + d2
    p2 = p1 - 0.1 * (d2 + 0.5 * v2)
    opt.step([g2])
    np.testing.assert_allclose(p, p2, rtol=1e-15)


def test_adam_first_steps_paper_formula():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    theta = np.array([0.3, -0.2, 0.1])
    phi = np.array([[0.5, 0.25]])
    opt = Adam([theta, phi], lr=lr, betas=(b1, b2), eps=eps)
    ref = [theta.copy(), phi.copy()]
    m = [np.zeros(3), np.zeros((1, 2))]
    v = [np.zeros(3), np.zeros((1, 2))]
    rng = np.random.default_rng(0)
    for t in range(1, 5):
        grads = [rng.normal(size=3), rng.normal(size=(1, 2))]
        for i in range(2):
            m[i] = b1 * m[i] + (1 - b1) * grads[i]
            v[i] = b2 * v[i] + (1 - b2) * grads[i] ** 2
            mhat = m[i] / (1 - b1**t)
            vhat = v[i] / (1 - b2**t)
            ref[i] = ref[i] - lr * mhat / (np.sqrt(vhat) + eps)
        opt.step(grads)
        np.testing.assert_allclose(theta, ref[0], rtol=1e-13)
        np.testing.assert_allclose(phi, ref[1], rtol=1e-13)
    # the first Adam step moves every coordinate by ~lr (sign of -g)
    p = np.array([0.0, 0.0])
    Adam([p], lr=0.01).step([np.array([3.0, -1e-3])])
    np.testing.assert_allclose(p, [-0.01, 0.01], rtol=1e-4)


def test_adam_minimises_quadratic():
    p = np.array([3.0, -2.0])
    opt = Adam([p], lr=0.05)
    for _ in range(2000):
        opt.step([p - np.array([1.0, 0.5])])
    np.testing.assert_allclose(p, [1.0, 0.5], atol=1e-3)


@pytest.mark.parametrize("make", [
    lambda ps: SGD(ps, lr=0.05, momentum=0.8, weight_decay=1e-3),
    lambda ps: Adam(ps, lr=0.02, betas=(0.8, 0.99), weight_decay=1e-3),
])
def test_state_round_trip_continues_identically(make, tmp_path):
    rng = np.random.default_rng(1)
    grads = [[rng.normal(size=3), rng.normal(size=2)] for _ in range(8)]
    a = [np.array([0.1, 0.2, 0.3]), np.array([-0.5, 0.5])]
    opt_a = make(a)
    for g in grads[:4]:
        opt_a.step(g)
    # .npz round trip (no pickle)
    np.savez(tmp_path / "opt.npz", **opt_a.state_dict())
    with np.load(tmp_path / "opt.npz", allow_pickle=False) as f:
        state = dict(f)
    b = [x.copy() for x in a]
    opt_b = make(b)
    opt_b.lr = 123.0  # overwritten by the state
    opt_b.load_state_dict(state)
    # JSON round trip too
    js = json.loads(json.dumps({k: (v.tolist() if isinstance(v, np.ndarray) else v)
                                for k, v in opt_a.state_dict().items()}))
    c = [x.copy() for x in a]
    opt_c = make(c)
    opt_c.load_state_dict(js)
    assert opt_b.lr == opt_a.lr and opt_b.step_count == 4
    for g in grads[4:]:
        opt_a.step(g)
        opt_b.step(g)
        opt_c.step(g)
    for x, y, z in zip(a, b, c):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(x, z)


def test_updates_in_place_and_float32():
    p = np.ones(3, dtype=np.float32)
    ref = p
    SGD([p], lr=0.5).step([np.ones(3)])
    assert ref is p and p.dtype == np.float32
    np.testing.assert_array_equal(p, np.full(3, 0.5, dtype=np.float32))


def test_lr_setter_and_validation():
    p = np.zeros(2)
    opt = Adam([p])
    opt.lr = 0.5
    assert opt.lr == 0.5
    with pytest.raises(ValueError, match="lr"):
        opt.lr = -1.0
    with pytest.raises(ValueError, match="grads"):
        opt.step([np.zeros(2), np.zeros(2)])
    with pytest.raises(ValueError, match=r"grads\[0\]"):
        opt.step([np.zeros(3)])
    with pytest.raises(ValueError, match=r"grads\[0\]"):
        opt.step([np.array([np.nan, 0.0])])
    with pytest.raises(TypeError, match=r"params\[0\]"):
        SGD([[1.0, 2.0]])
    with pytest.raises(TypeError, match=r"params\[0\]"):
        SGD([np.zeros(2, dtype=np.int64)])
    with pytest.raises(ValueError, match="momentum"):
        SGD([p], momentum=1.0)
    with pytest.raises(ValueError, match="nesterov"):
        SGD([p], nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        Adam([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="eps"):
        Adam([p], eps=0.0)
    with pytest.raises(ValueError, match="SGD"):
        Adam([p]).load_state_dict(SGD([p]).state_dict())
    with pytest.raises(ValueError, match="shape"):
        Adam([np.zeros(3)]).load_state_dict(Adam([p]).state_dict())


def _numpy_adam_steps(params, grads_seq, lr, b1, b2, eps, wd):
    """The Adam update written as NumPy array expressions (float32 stays float32)."""
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for t, grads in enumerate(grads_seq, start=1):
        bc1, bc2 = 1.0 - b1**t, 1.0 - b2**t
        for p, g, mi, vi in zip(params, grads, m, v):
            d = g.astype(p.dtype) + wd * p
            mi *= b1
            mi += (1.0 - b1) * d
            vi *= b2
            vi += (1.0 - b2) * d * d
            p -= lr * (mi / bc1) / (np.sqrt(vi / bc2) + eps)


def test_float32_parameters_follow_float32_numpy_arithmetic_exactly():
    rng = np.random.default_rng(3)
    grads_seq = [[rng.normal(size=3).astype(np.float32), rng.normal(size=(2, 2)).astype(np.float32)]
                 for _ in range(5)]
    ours = [np.array([0.3, -0.2, 0.1], np.float32), np.array([[0.5, 0.25], [-1, 2]], np.float32)]
    ref = [p.copy() for p in ours]
    opt = Adam(ours, lr=1e-2, weight_decay=1e-3)
    for grads in grads_seq:
        opt.step(grads)
    _numpy_adam_steps(ref, grads_seq, 1e-2, 0.9, 0.999, 1e-8, 1e-3)
    for a, b in zip(ours, ref):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)
    sgd_p = [np.array([1.0, -2.0], np.float32)]
    sgd_ref = sgd_p[0].copy()
    buf = np.zeros_like(sgd_ref)
    sgd = SGD(sgd_p, lr=0.1, momentum=0.9, nesterov=True)
    for grads in grads_seq:
        g = grads[0][:2]
        sgd.step([g])
        buf *= 0.9
        buf += g
        sgd_ref -= 0.1 * (g + 0.9 * buf)
    np.testing.assert_array_equal(sgd_p[0], sgd_ref)


def test_non_contiguous_parameters_are_rejected():
    p = np.zeros((4, 2))[:, 0]
    with pytest.raises(ValueError, match="params\\[0\\] must be C-contiguous"):
        Adam([p])
