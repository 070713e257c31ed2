"""TRRational: init, forward against numpy.polynomial, poles, persistence, regulariser, training."""
import numpy as np
import numpy.polynomial as npoly
import pytest
from numpy.polynomial import chebyshev as C
from numpy.polynomial import polynomial as Pn

from zeroproof_nb import TRRational as TopLevelTRRational
from zeroproof_nb.core import TRTag
from zeroproof_nb.layers import TRRational
from zeroproof_nb.optim import Adam
from zeroproof_nb.rational import TRPolicy, monomial_exponents, rational_loss_and_grad

SQ3 = np.sqrt(3.0)


# ---------------------------------------------------------------------------------- init
def test_upstream_init_golden():
    layer = TRRational(2, 1, basis="monomial")
    np.testing.assert_allclose(layer.theta, [-0.1, 0.1, -0.1], rtol=1e-15)
    np.testing.assert_allclose(layer.phi, [0.017320508], rtol=1e-8)
    layer = TRRational(3, 2, basis="monomial")
    c = 0.1 * 2 * SQ3 * 0.5 / 2.0
    np.testing.assert_allclose(layer.theta, [-c, c, -c, c], rtol=1e-15)
    d = 0.01 * 2 * SQ3 * 0.5 / np.sqrt(2.0)
    np.testing.assert_allclose(layer.phi, [d, -d], rtol=1e-15)
    assert TopLevelTRRational is TRRational


def test_init_shapes_multi_head_nd_and_random():
    shared = TRRational(2, 1, n_outputs=3, basis="monomial")
    assert shared.theta.shape == (3, 3) and shared.phi.shape == (1,)
    np.testing.assert_allclose(shared.theta, np.tile([-0.1, 0.1, -0.1], (3, 1)))
    assert shared.num_parameters() == 10
    per_head = TRRational(2, 1, n_outputs=3, shared_q=False, basis="monomial")
    assert per_head.phi.shape == (3, 1) and per_head.num_parameters() == 12
    nd = TRRational(2, 1, input_dim=2, basis="monomial")
    assert nd.theta.shape == (6,) and nd.phi.shape == (2,)
    poly = TRRational(3, 0, basis="monomial")
    assert poly.phi.shape == (0,) and poly.num_parameters() == 4
    r1 = TRRational(2, 2, init="random", seed=7, basis="monomial")
    r2 = TRRational(2, 2, init="random", seed=7, basis="monomial")
    r3 = TRRational(2, 2, init="random", seed=8, basis="monomial")
    np.testing.assert_array_equal(r1.theta, r2.theta)
    assert not np.array_equal(r1.phi, r3.phi)
    assert np.all(np.abs(r1.phi) < 0.1) and np.all(np.abs(r1.theta) < 1.0)
    f32 = TRRational(2, 1, dtype=np.float32, basis="monomial")
    assert f32.theta.dtype == np.float32 and f32.phi.dtype == np.float32


def test_constructor_validation():
    with pytest.raises(ValueError, match="basis"):
        TRRational(2, 1, basis="fourier")
    with pytest.raises(ValueError, match="init"):
        TRRational(2, 1, init="zeros", basis="monomial")
    with pytest.raises(TypeError, match="dtype"):
        TRRational(2, 1, dtype=np.int32, basis="monomial")
    with pytest.raises(ValueError, match="d_p"):
        TRRational(-1, 1, basis="monomial")
    with pytest.raises(ValueError, match="domain"):
        TRRational(2, 1, domain=(1, -1), basis="monomial")
    with pytest.raises(TypeError, match="adaptive_loss_policy"):
        TRRational(2, 1, adaptive_loss_policy=object(), basis="monomial")
    with pytest.raises(TypeError, match="policy"):
        TRRational(2, 1, policy={"tau_q_on": 1e-3}, basis="monomial")


# ---------------------------------------------------------------------------------- forward
def test_forward_monomial_matches_numpy_polynomial(rng):
    layer = TRRational(3, 2, init="random", seed=3, basis="monomial")
    layer.phi[:] = [0.4, -0.3]
    x = rng.uniform(-1, 1, 257)
    y = layer(x)
    p = Pn.polyval(x, layer.theta)
    q = Pn.polyval(x, np.r_[1.0, layer.phi])
    assert np.all(y["tag"] == TRTag.REAL)
    np.testing.assert_allclose(y["value"], p / q, rtol=1e-12)
    np.testing.assert_allclose(layer.q_values(x), np.abs(q), rtol=1e-13)
    assert layer.q_min(x) == pytest.approx(np.abs(q).min(), rel=1e-13)
    # scalar and (N, 1) input
    assert layer(0.25).shape == (1,)
    np.testing.assert_array_equal(layer(x[:, None])["value"], y["value"])


def test_forward_chebyshev_domain_matches_numpy(rng):
    dom = (-2.0, 3.0)
    layer = TRRational(3, 2, basis="chebyshev", domain=dom, init="random", seed=4, denominator="unit_constant")
    layer.phi[:] = [0.3, 0.2]
    x = rng.uniform(*dom, 200)
    p = npoly.Chebyshev(layer.theta, domain=list(dom))(x)
    q = npoly.Chebyshev(np.r_[1.0, layer.phi], domain=list(dom))(x)
    np.testing.assert_allclose(layer.forward(x)["value"], p / q, rtol=1e-11)


def test_forward_exact_pole_and_nan_tags():
    layer = TRRational(2, 1, basis="monomial")
    layer.set_parameters([[1.0, 1.0, 0.0], [-2.0]])  # Q = 1 - 2x: zero at x = 0.5, P(0.5) = 1.5
    y = layer(np.array([0.5, 0.0, np.nan]))
    assert list(y["tag"]) == [TRTag.PINF, TRTag.REAL, TRTag.PHI]
    assert y["value"][1] == 1.0
    qv = layer.q_values(np.array([0.5, np.nan, 1.0]))
    np.testing.assert_array_equal(qv, [0.0, np.nan, 1.0])  # a NaN Q stays NaN (nan_policy sees it)
    assert layer.q_min(np.array([np.nan, 1.0])) == 1.0
    assert layer.q_min(np.array([np.nan])) == np.inf
    # a policy reports |Q| < tau_q_on as non-REAL, value kept
    pol = TRRational(2, 1, policy=TRPolicy(tau_q_on=0.1, tau_q_off=0.2), basis="monomial")
    pol.set_parameters(layer.parameters())
    y = pol(np.array([0.49, 0.0]))
    assert list(y["tag"]) == [TRTag.PINF, TRTag.REAL]
    assert y["value"][0] == pytest.approx(1.49 / 0.02)


def test_forward_multi_head_and_nd(rng):
    layer = TRRational(2, 1, n_outputs=2, shared_q=False, init="random", seed=5, basis="monomial")
    x = rng.uniform(-1, 1, 50)
    y = layer(x)
    assert y.shape == (50, 2)
    for j in range(2):
        ref = Pn.polyval(x, layer.theta[j]) / Pn.polyval(x, np.r_[1.0, layer.phi[j]])
        np.testing.assert_allclose(y["value"][:, j], ref, rtol=1e-12)
    q_heads = np.stack([np.abs(Pn.polyval(x, np.r_[1.0, layer.phi[j]])) for j in range(2)], 1)
    np.testing.assert_allclose(layer.q_values(x), q_heads, rtol=1e-13)
    shared = TRRational(2, 1, n_outputs=2, init="random", seed=5, basis="monomial")
    np.testing.assert_allclose(shared.q_values(x), np.abs(Pn.polyval(x, np.r_[1.0, shared.phi])),
                               rtol=1e-13)
    # n-D: total-degree products, ordered as monomial_exponents
    nd = TRRational(2, 1, input_dim=2, init="random", seed=6, basis="monomial")
    X = rng.uniform(-1, 1, (40, 2))
    ep, eq = monomial_exponents(2, 2), monomial_exponents(2, 1)
    P = (np.prod(X[:, None, :] ** ep[None], axis=2)) @ nd.theta
    Q = 1 + (np.prod(X[:, None, :] ** eq[None], axis=2))[:, 1:] @ nd.phi
    np.testing.assert_allclose(nd(X)["value"], P / Q, rtol=1e-12)
    np.testing.assert_allclose(nd(X[0])["value"], (P / Q)[:1], rtol=1e-12)
    with pytest.raises(ValueError, match="x"):
        nd(rng.uniform(size=(4, 3)))
    with pytest.raises(ValueError, match="x"):
        layer(rng.uniform(size=(4, 2)))


def test_float32_layer(rng):
    layer = TRRational(2, 1, dtype=np.float32, init="random", seed=2, basis="monomial")
    ref = TRRational(2, 1, init="random", seed=2, basis="monomial")
    x = rng.uniform(-1, 1, 10)
    y = layer(x)
    assert y["value"].dtype == np.float32
    np.testing.assert_allclose(y["value"], ref(x)["value"], rtol=1e-5)


# ---------------------------------------------------------------------------------- poles
def test_poles_monomial_known_roots():
    layer = TRRational(2, 2, basis="monomial")
    # Q = (1 - x/0.3)(1 + x/0.7)(constant term 1) -> roots 0.3, -0.7
    coef = Pn.polyfromroots([0.3, -0.7])
    layer.phi[:] = (coef / coef[0])[1:]
    np.testing.assert_allclose(layer.poles(), [-0.7, 0.3], rtol=1e-12)
    np.testing.assert_allclose(layer.q_values(layer.poles()), 0.0, atol=1e-14)
    coef = Pn.polyfromroots([0.3, 2.0])  # 2.0 lies outside the domain
    layer.phi[:] = (coef / coef[0])[1:]
    np.testing.assert_allclose(layer.poles(), [0.3], rtol=1e-12)
    layer.phi[:] = [0.0, 1.0]  # Q = 1 + x^2: complex roots only
    assert layer.poles().size == 0
    assert TRRational(2, 1, basis="monomial").poles().size == 0  # pole at -1/phi = -57.7, outside
    assert TRRational(3, 0, basis="monomial").poles().size == 0
    # a double root counts once per multiplicity and is reported as real
    coef = Pn.polyfromroots([0.5, 0.5])
    layer.phi[:] = (coef / coef[0])[1:]
    np.testing.assert_allclose(layer.poles(), [0.5, 0.5], atol=1e-7)


def test_poles_chebyshev_domain_mapping():
    dom = (0.0, 4.0)
    layer = TRRational(2, 2, basis="chebyshev", domain=dom, denominator="unit_constant")
    # roots x = 1 and 3.5 -> t = x/2 - 1 = -0.5, 0.75 on [-1, 1]
    cheb = C.poly2cheb(Pn.polyfromroots([-0.5, 0.75]))
    layer.phi[:] = (cheb / cheb[0])[1:]
    np.testing.assert_allclose(layer.phi, [-2.0, 4.0], rtol=1e-12)  # worked by hand
    np.testing.assert_allclose(layer.poles(), [1.0, 3.5], rtol=1e-12)
    np.testing.assert_allclose(layer.q_values(np.array([1.0, 3.5])), 0.0, atol=1e-13)


def test_poles_per_head_and_nd_error():
    layer = TRRational(1, 1, n_outputs=2, shared_q=False, basis="monomial")
    layer.phi[:] = [[-2.0], [4.0]]  # poles at 0.5 and -0.25
    poles = layer.poles()
    assert isinstance(poles, list) and len(poles) == 2
    np.testing.assert_allclose(poles[0], [0.5])
    np.testing.assert_allclose(poles[1], [-0.25])
    with pytest.raises(ValueError, match="input_dim"):
        TRRational(1, 1, input_dim=2, basis="monomial").poles()


# ---------------------------------------------------------------------------------- params
def test_parameters_are_updated_in_place_by_optimizer():
    layer = TRRational(2, 1, basis="monomial")
    theta, phi = layer.parameters()
    assert theta is layer.theta and phi is layer.phi
    opt = Adam(layer.parameters(), lr=0.1)
    opt.step([np.ones(3), np.ones(1)])
    np.testing.assert_allclose(layer.theta, [-0.2, 0.0, -0.2], atol=1e-7)
    layer.set_parameters([[1.0, 2.0, 3.0], [0.5]])
    assert layer.theta is theta and theta[2] == 3.0
    with pytest.raises(ValueError, match="theta"):
        layer.set_parameters([[1.0, 2.0], [0.5]])
    with pytest.raises(ValueError, match="phi"):
        layer.set_parameters([[1.0, 2.0, 3.0], [np.inf]])


def test_save_load_round_trip(tmp_path, rng):
    layer = TRRational(3, 2, basis="chebyshev", domain=(-2, 3), n_outputs=2, shared_q=False,
                       alpha_phi=0.05, l1_projection=2.5, init="random", seed=11,
                       policy=TRPolicy(tau_q_on=1e-3, tau_q_off=2e-3), denominator="unit_constant")
    path = tmp_path / "layer.npz"
    layer.save(path)
    back = TRRational.load(path)
    np.testing.assert_array_equal(back.theta, layer.theta)
    np.testing.assert_array_equal(back.phi, layer.phi)
    assert (back.basis, back.domain, back.n_outputs, back.shared_q) == ("chebyshev", (-2.0, 3.0), 2, False)
    assert back.alpha_phi == 0.05 and back.l1_projection == 2.5 and back.policy == layer.policy
    x = rng.uniform(-2, 3, 30)
    np.testing.assert_array_equal(back(x), layer(x))
    # state_dict into an existing layer; mismatched structure is refused
    other = TRRational(3, 2, basis="chebyshev", domain=(-2, 3), n_outputs=2, shared_q=False, denominator="unit_constant")
    other.load_state_dict(layer.state_dict())
    np.testing.assert_array_equal(other.phi, layer.phi)
    with pytest.raises(ValueError, match="d_p"):
        TRRational(2, 2, n_outputs=2, shared_q=False, basis="monomial").load_state_dict(layer.state_dict())
    f32 = TRRational(2, 1, dtype=np.float32, init="random", seed=1, basis="monomial")
    f32.save(tmp_path / "f32.npz")
    back = TRRational.load(tmp_path / "f32.npz")
    assert back.dtype == np.float32 and back.policy is None and back.l1_projection is None
    np.testing.assert_array_equal(back.theta, f32.theta)


# ---------------------------------------------------------------------------------- regulariser
def test_regularization_value_and_gradient_fd():
    layer = TRRational(2, 3, alpha_phi=0.3, init="random", seed=2, basis="monomial")
    value, grad = layer.regularization()
    assert value == pytest.approx(0.15 * np.sum(layer.phi**2), rel=1e-14)
    h = 1e-6
    base = layer.phi.copy()
    fd = np.empty_like(base)
    for k in range(base.size):
        layer.phi[:] = base
        layer.phi[k] += h
        up = layer.regularization()[0]
        layer.phi[k] -= 2 * h
        down = layer.regularization()[0]
        fd[k] = (up - down) / (2 * h)
    layer.phi[:] = base
    np.testing.assert_allclose(grad, fd, rtol=1e-7, atol=1e-12)


def test_l1_projection_rule():
    layer = TRRational(2, 2, l1_projection=0.7, basis="monomial")
    layer.phi[:] = [0.6, -0.8]
    assert layer.project_phi() == pytest.approx(0.5)
    np.testing.assert_allclose(layer.phi, [0.3, -0.4], rtol=1e-15)
    assert layer.project_phi() == 1.0  # now on the boundary: unchanged
    np.testing.assert_allclose(layer.phi, [0.3, -0.4], rtol=1e-15)
    off = TRRational(2, 2, basis="monomial")
    off.phi[:] = [5.0, 5.0]
    assert off.project_phi() == 1.0 and off.phi[0] == 5.0
    heads = TRRational(1, 2, n_outputs=2, shared_q=False, l1_projection=1.0, basis="monomial")
    heads.phi[:] = [[0.5, 0.25], [2.0, -2.0]]
    heads.project_phi()
    np.testing.assert_allclose(heads.phi, [[0.5, 0.25], [0.5, -0.5]], rtol=1e-15)


# ---------------------------------------------------------------------------------- loss
def _fd_grad(layer, x, t, h=1e-6, **kw):
    out = []
    for arr in layer.parameters():
        g = np.empty_like(arr)
        flat, gf = arr.reshape(-1), g.reshape(-1)
        for k in range(flat.size):
            old = flat[k]
            flat[k] = old + h
            up = layer.loss_and_grad(x, t, **kw).loss
            flat[k] = old - h
            down = layer.loss_and_grad(x, t, **kw).loss
            flat[k] = old
            gf[k] = (up - down) / (2 * h)
        out.append(g)
    return out


def test_loss_and_grad_adds_regulariser_and_matches_fd(rng):
    layer = TRRational(2, 1, alpha_phi=0.2, init="random", seed=9, basis="monomial")
    layer.phi[:] = [0.4]
    x = rng.uniform(-1, 1, 64)
    t = np.sin(3 * x)
    res = layer.loss_and_grad(x, t)
    raw = rational_loss_and_grad(x, t, layer.theta, layer.phi)
    reg, reg_grad = layer.regularization()
    assert res.loss == pytest.approx(raw.loss + reg, rel=1e-14)
    assert res.data_loss == raw.data_loss
    np.testing.assert_allclose(res.grad_phi, raw.grad_phi + reg_grad, rtol=1e-14)
    np.testing.assert_array_equal(res.grad_theta, raw.grad_theta)
    # independent check: central differences of the total loss
    fd_theta, fd_phi = _fd_grad(layer, x, t)
    np.testing.assert_allclose(res.grad_theta, fd_theta, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(res.grad_phi, fd_phi, rtol=1e-6, atol=1e-9)
    with pytest.raises(TypeError, match="basis"):
        layer.loss_and_grad(x, t, basis="chebyshev")


def test_adaptive_loss_policy_reads_lambda_and_receives_tags():
    class FakeLambda:
        def __init__(self):
            self.lambda_rej = 0.5
            self.seen = []

        def update(self, tags):
            self.seen.append(np.array(tags, copy=True))

    fake = FakeLambda()
    layer = TRRational(2, 1, alpha_phi=0.0, adaptive_loss_policy=fake, basis="monomial")
    layer.set_parameters([[1.0, 1.0, 0.0], [-2.0]])  # exact pole at x = 0.5
    x = np.array([0.5, 0.0, -0.5, 0.25])
    t = np.array([1.0, 1.0, np.inf, 1.0])  # a REAL target at the pole, a labelled pole at -0.5
    res = layer.loss_and_grad(x, t)
    ref = rational_loss_and_grad(x, t, layer.theta, layer.phi, lambda_rej=0.5)
    assert res.rejection_loss > 0 and res.loss == pytest.approx(ref.loss, rel=1e-14)
    np.testing.assert_array_equal(res.grad_phi, ref.grad_phi)
    assert len(fake.seen) == 1
    np.testing.assert_array_equal(fake.seen[0], res.tags)
    assert fake.seen[0][0] == TRTag.PINF
    # an explicit lambda_rej wins over the policy's
    res0 = layer.loss_and_grad(x, t, lambda_rej=0.0)
    assert res0.rejection_loss == 0.0 and len(fake.seen) == 2


def test_hybrid_context_drives_the_layer(rng):
    from zeroproof_nb.gradients import HybridGradientContext, create_default_schedule

    layer = TRRational(2, 1, alpha_phi=0.0, basis="monomial")
    layer.set_parameters([[1.0, 1.0, 0.0], [-2.0]])  # pole at 0.5
    x = np.r_[rng.uniform(-1, 1, 40), 0.5 + 1e-3, 0.5 - 5e-4]
    t = np.cos(x)
    ctx = HybridGradientContext(create_default_schedule(), tau_q_on=1e-2, tau_q_off=2e-2)
    ctx.update_epoch(0)  # delta = 1e-2
    kw = ctx.kernel_kwargs()
    assert kw["mode"] == "hybrid"
    res = layer.loss_and_grad(x, t, **kw)
    q = np.abs(1 - 2 * x)
    n_near = int(np.sum(q <= 1e-2))
    assert n_near >= 2
    assert res.stats["n_saturating"] == n_near
    assert res.stats["n_saturating"] + res.stats["n_mask_real"] == x.size
    ctx.record_result(res)
    st = ctx.get_statistics()
    assert st["saturating_activations"] == n_near and st["total_gradient_calls"] == x.size
    assert st["q_min_batch"] == pytest.approx(q.min(), rel=1e-12)
    assert st["q_p10"] == pytest.approx(np.percentile(q, 10), rel=1e-12)
    ctx.end_batch()
    assert ctx.policy_mode == ("SAT" if np.percentile(q, 10) <= 1e-2 else "MR")
    # in SAT state every point uses the Saturating rule
    ctx.policy_mode = "SAT"
    res = layer.loss_and_grad(x, t, **ctx.kernel_kwargs())
    assert res.stats["n_saturating"] == x.size
    assert np.all(np.isfinite(res.grad_theta)) and np.all(np.isfinite(res.grad_phi))


# ---------------------------------------------------------------------------------- training
@pytest.mark.parametrize("n_grid, init, seed", [(40, "upstream", None), (64, "random", 3)])
def test_training_recovers_pole(n_grid, init, seed):
    """Adam on y = 1/(x - 0.3) + x sampled on a grid of [-1, 1] (no sample at the pole).

    Exactly representable with d_p = 2, d_q = 1: Q = 1 - x/0.3, P = -(x^2 - 0.3x + 1)/0.3.
    Gradient descent cannot move a pole across a data point (the loss is infinite there), so the
    pole starts inside the data cell that holds the true pole, at the midpoint of the pair of
    neighbouring samples where the target changes sign with the largest |y| (0.0077 and 0.0143
    off for these grids); θ starts from the layer's init. θ and φ get their own Adam
    (lr 0.05 and 0.005) so that the pole stays in its cell while P grows to its scale.
    """
    x = np.linspace(-1.0, 1.0, n_grid)
    y = 1.0 / (x - 0.3) + x
    k = np.nonzero(np.sign(y[:-1]) != np.sign(y[1:]))[0]
    k = k[np.argmax(np.abs(y[k]))]
    start = 0.5 * (x[k] + x[k + 1])
    assert 0.005 < abs(start - 0.3) < 0.02
    layer = TRRational(2, 1, alpha_phi=0.0, init=init, seed=seed, basis="monomial")
    layer.phi[:] = -1.0 / start
    opt_theta = Adam([layer.theta], lr=0.05)
    opt_phi = Adam([layer.phi], lr=0.005)
    for _ in range(2000):
        res = layer.loss_and_grad(x, y)
        opt_theta.step([res.grad_theta])
        opt_phi.step([res.grad_phi])
    poles = layer.poles()
    assert poles.size == 1
    assert abs(poles[0] - 0.3) < 1e-3
    assert np.all(layer(x)["tag"] == TRTag.REAL)


@pytest.mark.parametrize("basis", ["monomial", "chebyshev"])
def test_poles_with_residues_match_the_partial_fractions(basis):
    """y = 0.1 + 2/(x − 0.3) − 0.5/(x + 0.55): poles 0.3, −0.55 with residues 2, −0.5."""
    x = np.linspace(-1, 1, 801)
    x = x[(np.abs(x - 0.3) > 1e-3) & (np.abs(x + 0.55) > 1e-3)]
    y = 0.1 + 2.0 / (x - 0.3) - 0.5 / (x + 0.55)
    layer = TRRational(2, 2, basis=basis, domain=(-1, 1)).fit_linearized(x, y)
    poles, res = layer.poles(return_residues=True)
    np.testing.assert_allclose(poles, [-0.55, 0.3], atol=1e-9)
    np.testing.assert_allclose(res, [-0.5, 2.0], rtol=1e-7)


def test_poles_near_the_axis_on_request():
    """Q = (x − 0.2)² + 0.01: no real pole; complex pair 0.2 ± 0.1i when asked."""
    layer = TRRational(0, 2, domain=(-1, 1), basis="monomial")
    # Q = 1 + φ1 x + φ2 x² ∝ x² − 0.4x + 0.05: divide by 0.05
    layer.set_parameters([np.array([1.0]), np.array([-8.0, 20.0])])
    assert layer.poles().size == 0
    near = layer.poles(near_axis=0.2)
    np.testing.assert_allclose(np.sort(near.imag), [-0.1, 0.1], atol=1e-12)
    np.testing.assert_allclose(near.real, [0.2, 0.2], atol=1e-12)
    assert layer.poles(near_axis=0.05).size == 0
    with pytest.raises(ValueError, match="input_dim=1"):
        TRRational(1, 1, input_dim=2, basis="monomial").poles()
